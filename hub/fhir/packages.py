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
import re
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


_PARTIAL = re.compile(r"\d+(\.\d+)?")  # a SemVer version without its patch (or minor) part


def version_key(version: str | None) -> tuple[int, ...]:
    """Order of versions like 4.0.2 and 5.3.0-ballot-tc1 (the numeric part; a pre-release sorts first)."""
    if not version:
        return ()
    head, _, pre = version.partition("-")
    return (*(int(p) if p.isdigit() else 0 for p in head.split(".")), 0 if pre else 1)


def write_package(folder: Path, name: str, resources: list[dict[str, Any]],
                  dependencies: dict[str, str] | None = None, version: str = "1.0.0") -> Path:
    """Conformance resources laid out as an unpacked package (`package.json`, `.index.json`, a file each), so a
    `PackageSet` loads them beside the official ones: the reference suite's cases, a tester's own profiles."""
    files = []
    for n, resource in enumerate(resources):
        filename = f"{n}.json"
        (folder / filename).write_text(json.dumps(resource), encoding="utf-8")
        files.append({"filename": filename, "resourceType": resource.get("resourceType"), "url": resource.get("url"),
                      "version": resource.get("version")})
    (folder / "package.json").write_text(json.dumps({"name": name, "version": version,
                                                     "dependencies": dependencies or {}}), encoding="utf-8")
    (folder / ".index.json").write_text(json.dumps({"files": files}), encoding="utf-8")
    return folder


class PackageSet:
    """All conformance resources of a list of unpacked packages, looked up by canonical URL.

    Several versions of a package may be loaded side by side (MedCom's current packages pin older versions of
    their dependencies). A canonical is resolved:
    - with `|version`: that version; a partial SemVer version (`|0.2`, `|1`) names the newest release it is the
      start of (`0.2.1`), as FHIR's canonical references allow;
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
        self._globals: dict[str, tuple[str, ...]] | None = None
        for pdir in package_dirs:
            self._index(pdir)
        loaded = {f"{n}#{v}" for n, v in self.packages}
        self.missing = sorted({f"{d}#{v}" for pins in self._pins.values() for d, v in pins.items()} - loaded)
        if self.missing:
            # said once a process, quietly: where a missing definition matters, the validation says so itself
            log.info("dependencies not loaded (what they define is not checked): %s", ", ".join(self.missing))

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

    def complete(self, package: str | None) -> bool:
        """Whether every package `package` depends on (at the versions pinned, all the way down) is loaded: then
        what it names and no loaded package holds is missing indeed, not merely in a dependency left out."""
        if package is None or package not in self._pins:
            return False
        missing = set(self.missing)
        return not any(f"{d}#{v}" in missing for p in self.closure(package) for d, v in self._pins[p].items())

    def _read(self, entry: _Entry) -> dict[str, Any]:
        with self._lock:
            doc = self._cache.get(entry.file)
            if doc is None:
                doc = json.loads(entry.file.read_text(encoding="utf-8"))
                self._cache[entry.file] = doc
            return doc

    def locate(self, canonical: str, resource_type: str | None = None,
               context: str | None = None) -> tuple[dict[str, Any], str] | None:
        """The resource a canonical names and the package it comes from (rules in the class docstring). A
        fragment names a resource contained in the one the canonical names (`…/StructureDefinition/x#vs1`)."""
        if "#" in canonical and canonical not in self._by_url:
            outer, _, fragment = canonical.partition("#")
            found = self.locate(outer, None, context) if outer else None
            held = [c for c in (found[0].get("contained") or []) if isinstance(c, dict) and c.get("id") == fragment
                    and resource_type in (None, c.get("resourceType"))] if found is not None else []
            return (held[0], found[1]) if held and found is not None else None
        url, _, version = canonical.partition("|")
        entries = [e for e in self._by_url.get(url, []) if resource_type in (None, e.resource_type)]
        if version:
            exact = [e for e in entries if e.version == version]
            entries = exact or [e for e in entries if _PARTIAL.fullmatch(version) and (e.version or "").startswith(
                version + ".")]
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

    def global_profiles(self, resource_type: str) -> tuple[str, ...]:
        """The profiles the loaded ImplementationGuides declare `global` for a type: every resource of that
        type they cover must conform to them (ImplementationGuide.global)."""
        if self._globals is None:
            found: dict[str, list[str]] = {}
            for entries in list(self._by_url.values()):
                for entry in entries:
                    if entry.resource_type == "ImplementationGuide":
                        for g in self._read(entry).get("global", []) or []:
                            if isinstance(g, dict) and isinstance(g.get("type"), str) and isinstance(
                                    g.get("profile"), str):
                                found.setdefault(g["type"], []).append(g["profile"])
            self._globals = {t: tuple(dict.fromkeys(p)) for t, p in found.items()}
        return self._globals.get(resource_type, ())

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


def _property_values(concept: dict[str, Any], name: str) -> list[str]:
    """A concept's values of one property, as strings (`valueCode`, `valueString`, `valueBoolean`, …)."""
    out: list[str] = []
    for prop in concept.get("property", []) or []:
        if prop.get("code") == name:
            out.extend(str(v).lower() if isinstance(v, bool) else str(v)
                       for k, v in prop.items() if k.startswith("value"))
    return out


class _Hierarchy:
    """A CodeSystem's concepts and their subsumption: nested `concept`s, and the `parent`/`subsumedBy`
    properties some code systems use instead."""

    def __init__(self, cs: dict[str, Any]) -> None:
        self.fragment = cs.get("content") == "fragment"
        self.concepts = {c["code"]: c for c in _concepts(cs.get("concept", [])) if "code" in c}
        self.children: dict[str, set[str]] = {code: set() for code in self.concepts}

        def nest(concepts: list[dict[str, Any]], parent: str | None) -> None:
            for c in concepts:
                if parent is not None and "code" in c:
                    self.children.setdefault(parent, set()).add(c["code"])
                nest(c.get("concept", []), c.get("code"))
        nest(cs.get("concept", []), None)
        for code, c in self.concepts.items():
            for parent in _property_values(c, "parent") + _property_values(c, "subsumedBy"):
                self.children.setdefault(parent, set()).add(code)

    def descendants(self, code: str) -> set[str]:
        out: set[str] = set()
        todo = list(self.children.get(code, ()))
        while todo:
            current = todo.pop()
            if current not in out:
                out.add(current)
                todo.extend(self.children.get(current, ()))
        return out

    def ancestors(self, code: str) -> set[str]:
        return {c for c in self.concepts if code in self.descendants(c)}

    def select(self, flt: dict[str, Any]) -> set[str]:
        """The codes one `compose.include.filter` selects; LookupError for an operation not implemented."""
        prop, op, value = flt.get("property"), flt.get("op"), str(flt.get("value", ""))
        codes = set(self.concepts)
        if prop in ("concept", "code") and op in ("is-a", "descendent-of", "is-not-a", "generalizes"):
            if value not in self.concepts:
                return set()
            if op == "generalizes":
                return self.ancestors(value) | {value}
            below = self.descendants(value)
            return {"is-a": below | {value}, "descendent-of": below, "is-not-a": codes - below - {value}}[op]
        def values(code: str) -> list[str]:
            return [code] if prop in ("concept", "code") else _property_values(self.concepts[code], prop or "")

        if op in ("in", "not-in"):
            listed = {v.strip() for v in value.split(",")}
            return {c for c in codes if bool(listed & set(values(c))) == (op == "in")}
        if op == "regex":
            pattern = re.compile(value)
            return {c for c in codes if any(pattern.fullmatch(v) for v in values(c))}
        if op == "=":
            return {c for c in codes if value in values(c)}
        if op == "exists":
            return {c for c in codes if bool(_property_values(self.concepts[c], prop or "")) == (value == "true")}
        raise LookupError(f"the filter operation '{op}' is not supported")


class Terminology:
    """Membership of codes in ValueSets, and the displays of codes, from the loaded packages.

    A ValueSet is expanded from its compose: include/exclude of concept lists, whole code systems, nested value
    sets and filters (is-a, descendent-of, is-not-a, generalizes over the code system's hierarchy; =, in,
    not-in, regex and exists over concept properties). A code system that is not loaded, or loaded without its
    concepts, makes the ValueSet unexpandable (LookupError), which callers report.
    """

    def __init__(self, packages: PackageSet) -> None:
        self.packages = packages
        self._expansions: dict[tuple[str, str | None], frozenset[tuple[str, str]]] = {}
        self._displays: dict[tuple[str, str | None], dict[tuple[str, str], frozenset[str]]] = {}
        self._bare: dict[tuple[str, str | None], frozenset[str]] = {}
        self._hierarchies: dict[tuple[str, str | None], _Hierarchy | None] = {}

    def codes(self, valueset: str, context: str | None = None) -> frozenset[tuple[str, str]]:
        """Every (system, code) pair the ValueSet contains, as seen from package `context` (the package of the
        binding; see PackageSet); computed once per ValueSet and context."""
        key = (valueset, context)
        found = self._expansions.get(key)
        if found is None:
            vs, where = self.packages.require(valueset, "ValueSet", context)
            compose = vs.get("compose")
            if not isinstance(compose, dict) and isinstance(vs.get("expansion"), dict):
                found = frozenset(self.displays(valueset, context))  # published expanded only
            else:
                compose = compose or {}
                included = set().union(*[self._include(i, where) for i in compose.get("include", [])] or [set()])
                excluded = set().union(*[self._include(i, where) for i in compose.get("exclude", [])] or [set()])
                found = frozenset(included - excluded)
            self._expansions[key] = found
        return found

    def bare_codes(self, valueset: str, context: str | None = None) -> frozenset[str]:
        """The codes of `codes` without their systems: what a `code` element (which has none) is looked up in."""
        key = (valueset, context)
        found = self._bare.get(key)
        if found is None:
            found = self._bare[key] = frozenset(code for _, code in self.codes(valueset, context))
        return found

    def displays(self, valueset: str, context: str | None = None) -> dict[tuple[str, str], frozenset[str]]:
        """The displays the ValueSet itself gives its codes (each `(system, code)` it lists): those of its
        expansion and of the concepts its compose names, with their designations. A display the value set
        gives is as good as the code system's, as the HL7 validator takes it (a value set of translations)."""
        key = (valueset, context)
        found = self._displays.get(key)
        if found is None:
            vs, _ = self.packages.require(valueset, "ValueSet", context)
            given: dict[tuple[str, str], set[str]] = {}

            def add(system: Any, concept: dict[str, Any]) -> None:
                if isinstance(system, str) and isinstance(concept.get("code"), str):
                    shown = given.setdefault((system, concept["code"]), set())
                    shown.update(d for d in [concept.get("display")] + [
                        g.get("value") for g in concept.get("designation", []) or [] if isinstance(g, dict)]
                        if isinstance(d, str) and d)

            def contains(items: list[dict[str, Any]]) -> None:
                for item in items:
                    add(item.get("system"), item)
                    contains(item.get("contains", []) or [])

            contains((vs.get("expansion") or {}).get("contains", []) or [])
            for inc in (vs.get("compose") or {}).get("include", []) or []:
                for concept in inc.get("concept", []) or []:
                    add(inc.get("system"), concept)
            found = self._displays[key] = {k: frozenset(v) for k, v in given.items()}
        return found

    def hierarchy(self, system: str, context: str | None = None) -> _Hierarchy | None:
        """The concepts of a loaded, complete CodeSystem (None when it is not loaded or lists no concepts). With
        a `context`, only as that package sees it: a code system that only an unrelated package carries (FUT's
        four-code extract of SKS, seen from dk-core) is not the code system the context's authors meant."""
        key = (system, context)
        if key not in self._hierarchies:
            found = self.packages.locate(system, "CodeSystem", context)
            if found is not None and context is not None and found[1] not in self.packages.closure(context):
                found = None
            cs = found[0] if found is not None else None
            usable = cs is not None and cs.get("content", "complete") in ("complete", "fragment") \
                and cs.get("concept")
            self._hierarchies[key] = _Hierarchy(cs) if usable and cs is not None else None
        return self._hierarchies[key]

    def _include(self, inc: dict[str, Any], context: str) -> set[tuple[str, str]]:
        system = inc.get("system")
        out: set[tuple[str, str]] = set()
        if system and inc.get("concept"):
            out = {(system, c["code"]) for c in inc["concept"]}
        elif system:
            tree = self.hierarchy(system, context)
            if tree is None:
                raise LookupError(f"the code system {system} is not in the loaded packages")
            chosen = set(tree.concepts)
            for flt in inc.get("filter", []):
                chosen &= tree.select(flt)
            out = {(system, c) for c in chosen}
        for other in inc.get("valueSet", []):
            nested = set(self.codes(other, context))
            out = out & nested if (out or system) else nested
        return out

    def lookup(self, system: str, code: str, context: str | None = None) -> tuple[bool, set[str]] | None:
        """Whether a loaded CodeSystem has the code, and the displays it may carry (display and designations;
        empty when it defines none). None when that cannot be said: the code system is not loaded, or is a
        fragment that does not list the code."""
        tree = self.hierarchy(system, context)
        if tree is None:
            return None
        concept = tree.concepts.get(code)
        if concept is None:
            return None if tree.fragment else (False, set())
        found = {concept["display"]} if concept.get("display") else set()
        return True, found | {d["value"] for d in concept.get("designation", []) or [] if d.get("value")}


def load_store(store: Path) -> PackageSet:
    """The FHIR packages of the standards store, indexed (`hub schemas sync` fills the store)."""
    from hub.core.standards import package_dirs

    return PackageSet(package_dirs(store))
