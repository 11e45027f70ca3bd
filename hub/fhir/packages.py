"""Conformance resources (StructureDefinitions, ValueSets, CodeSystems) from the FHIR packages in the store.

Packages are indexed once through their `.index.json` and resources are read on first use, so start-up stays
fast. Several versions of one canonical may be loaded; `url|version` picks one.

Policy for canonical collisions (shared/standards/fut/README.md): FUT ships CodeSystem supplements that reuse
the URL of the R4 core CodeSystem they supplement. A supplement never replaces the CodeSystem it supplements:
an entry with `content = supplement` is only used when nothing else carries the URL.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class _Entry:
    file: Path
    resource_type: str
    url: str
    version: str | None
    supplement: bool


class PackageSet:
    """All conformance resources of a list of unpacked packages, looked up by canonical URL."""

    def __init__(self, package_dirs: list[Path]) -> None:
        self._by_url: dict[str, list[_Entry]] = {}
        self._cache: dict[Path, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.packages: list[tuple[str, str]] = []
        for pdir in package_dirs:
            self._index(pdir)

    def _index(self, pdir: Path) -> None:
        meta = json.loads((pdir / "package.json").read_text(encoding="utf-8"))
        self.packages.append((meta["name"], meta["version"]))
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
            )
            self._by_url.setdefault(url, []).append(entry)

    def _read(self, entry: _Entry) -> dict[str, Any]:
        with self._lock:
            doc = self._cache.get(entry.file)
            if doc is None:
                doc = json.loads(entry.file.read_text(encoding="utf-8"))
                self._cache[entry.file] = doc
            return doc

    def get(self, canonical: str, resource_type: str | None = None) -> dict[str, Any] | None:
        """The resource a canonical (`url` or `url|version`) names; the newest loaded version otherwise."""
        url, _, version = canonical.partition("|")
        entries = [e for e in self._by_url.get(url, []) if resource_type in (None, e.resource_type)]
        if version:
            entries = [e for e in entries if e.version == version]
        if not entries:
            return None
        full = [e for e in entries if not e.supplement] or entries
        return self._read(full[-1])

    def require(self, canonical: str, resource_type: str | None = None) -> dict[str, Any]:
        doc = self.get(canonical, resource_type)
        if doc is None:
            raise LookupError(f"{resource_type or 'resource'} {canonical} is not in the loaded packages")
        return doc


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
        self._expansions: dict[str, frozenset[tuple[str, str]]] = {}

    def codes(self, valueset: str) -> frozenset[tuple[str, str]]:
        """Every (system, code) pair the ValueSet contains; computed once per ValueSet."""
        found = self._expansions.get(valueset)
        if found is None:
            vs = self.packages.require(valueset, "ValueSet")
            compose = vs.get("compose", {})
            included = set().union(*[self._include(i) for i in compose.get("include", [])] or [set()])
            excluded = set().union(*[self._include(i) for i in compose.get("exclude", [])] or [set()])
            found = frozenset(included - excluded)
            self._expansions[valueset] = found
        return found

    def _include(self, inc: dict[str, Any]) -> set[tuple[str, str]]:
        system = inc.get("system")
        out: set[tuple[str, str]] = set()
        if system and inc.get("concept"):
            out = {(system, c["code"]) for c in inc["concept"]}
        elif system and not inc.get("filter"):
            cs = self.packages.require(system, "CodeSystem")
            out = {(system, c["code"]) for c in _concepts(cs.get("concept", []))}
        elif inc.get("filter"):
            raise LookupError(f"ValueSet filters on {system} are not supported here")
        for other in inc.get("valueSet", []):
            out = out & set(self.codes(other)) if out else set(self.codes(other))
        return out

    def display(self, system: str, code: str) -> str | None:
        cs = self.packages.get(system, "CodeSystem")
        for c in _concepts(cs.get("concept", [])) if cs else []:
            if c["code"] == code:
                return c.get("display")
        return None
