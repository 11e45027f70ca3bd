"""Conformance resources (StructureDefinitions, ValueSets, CodeSystems) from the FHIR packages in the store.

Packages are indexed once through their `.index.json` and resources are read on first use, so start-up stays
fast. Several versions of one canonical may be loaded (see `PackageSet` for how one is chosen).

Policy for canonical collisions (shared/standards/fut/README.md): FUT ships CodeSystem supplements that reuse
the URL of the R4 core CodeSystem they supplement. A supplement never replaces the CodeSystem it supplements:
an entry with `content = supplement` is only used when nothing else carries the URL.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("hub.packages")


@dataclass(frozen=True, slots=True)
class _Entry:
    file: Path
    resource_type: str
    url: str
    version: str | None
    supplement: bool
    package: str  # name#version of the package it is in


def version_key(version: str | None) -> tuple[int, ...]:
    """Order of versions like 4.0.2 and 5.3.0-ballot-tc1 (the numeric part; a pre-release sorts first)."""
    if not version:
        return ()
    head, _, pre = version.partition("-")
    return (*(int(p) if p.isdigit() else 0 for p in head.split(".")), 0 if pre else 1)


class PackageSet:
    """All conformance resources of a list of unpacked packages, looked up by canonical URL.

    Several versions of a package may be loaded side by side (MedCom's current packages pin older versions of
    their dependencies). A canonical is resolved:
    - with `|version`: that version;
    - in the context of a package (the package of the profile that refers to it): from that package or its
      dependencies at the versions it pins, nearest first, as the IG Publisher resolved it when it built them;
    - otherwise: the newest version loaded.
    A dependency a package pins that is not loaded (HL7's terminology and extension packages, FUT's SDC) is
    listed in `missing`, logged once at loading, and not fatal: what it would define is reported where used.
    """

    def __init__(self, package_dirs: list[Path]) -> None:
        self._by_url: dict[str, list[_Entry]] = {}
        self._cache: dict[Path, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.packages: list[tuple[str, str]] = []
        self._pins: dict[str, dict[str, str]] = {}
        self._closures: dict[str, tuple[str, ...]] = {}
        for pdir in package_dirs:
            self._index(pdir)
        loaded = {f"{n}#{v}" for n, v in self.packages}
        self.missing = sorted({f"{d}#{v}" for pins in self._pins.values() for d, v in pins.items()} - loaded)
        if self.missing:
            log.warning("dependencies not loaded (what they define is not checked): %s", ", ".join(self.missing))

    def _index(self, pdir: Path) -> None:
        meta = json.loads((pdir / "package.json").read_text(encoding="utf-8"))
        key = f"{meta['name']}#{meta['version']}"
        self.packages.append((meta["name"], meta["version"]))
        self._pins[key] = dict(meta.get("dependencies") or {})
        index_file = pdir / ".index.json"
        files = json.loads(index_file.read_text(encoding="utf-8"))["files"] if index_file.exists() else []
        for f in files:
            url = f.get("url")
            if not url:
                continue
            entry = _Entry(
                pdir / f["filename"],
                f["resourceType"],
                url,
                f.get("version"),
                f.get("content") == "supplement" or bool(f.get("supplements")),
                key,
            )
            self._by_url.setdefault(url, []).append(entry)

    def closure(self, package: str) -> tuple[str, ...]:
        """The package and the loaded packages it depends on at their pinned versions, nearest first."""
        found = self._closures.get(package)
        if found is None:
            order: list[str] = []
            todo = [package]
            while todo:
                current = todo.pop(0)
                if current in order or current not in self._pins:
                    continue
                order.append(current)
                todo.extend(f"{d}#{v}" for d, v in self._pins[current].items())
            found = self._closures[package] = tuple(order)
        return found

    def _read(self, entry: _Entry) -> dict[str, Any]:
        with self._lock:
            doc = self._cache.get(entry.file)
            if doc is None:
                doc = json.loads(entry.file.read_text(encoding="utf-8"))
                self._cache[entry.file] = doc
            return doc

    def locate(self, canonical: str, resource_type: str | None = None,
               context: str | None = None) -> tuple[dict[str, Any], str] | None:
        """The resource a canonical names and the package it comes from (rules in the class docstring)."""
        url, _, version = canonical.partition("|")
        entries = [e for e in self._by_url.get(url, []) if resource_type in (None, e.resource_type)]
        if version:
            entries = [e for e in entries if e.version == version]
        entries = [e for e in entries if not e.supplement] or entries
        if not entries:
            return None
        chosen: _Entry | None = None
        if context is not None and not version:
            rank = {p: i for i, p in enumerate(self.closure(context))}
            in_scope = [e for e in entries if e.package in rank]
            if in_scope:
                chosen = min(in_scope, key=lambda e: rank[e.package])
        if chosen is None:
            chosen = max(entries, key=lambda e: (version_key(e.version), version_key(e.package.split("#")[1])))
        return self._read(chosen), chosen.package

    def get(self, canonical: str, resource_type: str | None = None,
            context: str | None = None) -> dict[str, Any] | None:
        found = self.locate(canonical, resource_type, context)
        return found[0] if found is not None else None

    def require(self, canonical: str, resource_type: str | None = None,
                context: str | None = None) -> tuple[dict[str, Any], str]:
        """Like `locate`, raising LookupError when nothing carries the canonical."""
        found = self.locate(canonical, resource_type, context)
        if found is None:
            raise LookupError(f"{resource_type or 'resource'} {canonical} is not in the loaded packages")
        return found


def _concepts(concepts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in concepts:
        out.append(c)
        out.extend(_concepts(c.get("concept", [])))
    return out


class Terminology:
    """Membership of codes in ValueSets defined by concept lists and whole code systems.

    Enough for the bindings the booking rules check; the package-driven validator extends it with filters.
    """

    def __init__(self, packages: PackageSet) -> None:
        self.packages = packages
        self._expansions: dict[tuple[str, str | None], frozenset[tuple[str, str]]] = {}

    def codes(self, valueset: str, context: str | None = None) -> frozenset[tuple[str, str]]:
        """Every (system, code) pair the ValueSet contains, as seen from package `context` (the package of the
        binding; see PackageSet); computed once per ValueSet and context."""
        key = (valueset, context)
        found = self._expansions.get(key)
        if found is None:
            vs, where = self.packages.require(valueset, "ValueSet", context)
            compose = vs.get("compose", {})
            included = set().union(*[self._include(i, where) for i in compose.get("include", [])] or [set()])
            excluded = set().union(*[self._include(i, where) for i in compose.get("exclude", [])] or [set()])
            found = frozenset(included - excluded)
            self._expansions[key] = found
        return found

    def _include(self, inc: dict[str, Any], context: str) -> set[tuple[str, str]]:
        system = inc.get("system")
        out: set[tuple[str, str]] = set()
        if system and inc.get("concept"):
            out = {(system, c["code"]) for c in inc["concept"]}
        elif system and not inc.get("filter"):
            cs, _ = self.packages.require(system, "CodeSystem", context)
            out = {(system, c["code"]) for c in _concepts(cs.get("concept", []))}
        elif inc.get("filter"):
            raise LookupError(f"ValueSet filters on {system} are not supported here")
        for other in inc.get("valueSet", []):
            nested = set(self.codes(other, context))
            out = out & nested if out else nested
        return out

    def display(self, system: str, code: str) -> str | None:
        cs = self.packages.get(system, "CodeSystem")
        for c in _concepts(cs.get("concept", [])) if cs else []:
            if c["code"] == code:
                return c.get("display")
        return None
