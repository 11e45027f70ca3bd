"""The hub's FHIR validator: structure, then profiles, from the official packages.

For each resource (and each Bundle entry and contained resource, by its own rights):
1. structure against the R4 core definitions (`hub.fhir.structure`);
2. every profile that applies: those in `meta.profile` and those asked for, always the core definition of the
   type: cardinality, fixed and pattern values, slicing (value, pattern, type, profile and exists
   discriminators; open and closed), extension profiles, the target types of references, required and
   extensible bindings, and every constraint's FHIRPath expression (`hub.fhir.fhirpath`).

Each finding goes into one Outcome: severity, IssueType code, FHIRPath location, diagnostics, and the rule (the
constraint key or the element id) that raised it.

Written policies (README, "Validation policy"):
- `ele-1` (every element has a value or children) and `ext-1` (an extension has a value or extensions, not
  both) sit on every element; they are checked natively, with the same meaning, instead of by FHIRPath: `ele-1`
  is the structure check's "must not be empty", `ext-1` is checked where an Extension is walked.
- A profile that is not in the loaded packages is reported once per input, as a warning, not as an error.
- A value set the hub cannot expand (filters, or a code system it does not have) is reported as information:
  the binding is not checked, and the finding says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from hub.core.outcome import Outcome, Severity
from hub.fhir.fhirpath import InvariantEngine, resolve_reference
from hub.fhir.packages import PackageSet, Terminology
from hub.fhir.profile import ElementDef, Profile, compile_profile
from hub.fhir.structure import CORE, StructureValidator, choice_name

NATIVE_RULES = frozenset({"ele-1", "ext-1"})
_CODED = {"code", "Coding", "CodeableConcept", "string", "uri"}


@dataclass(slots=True)
class _Run:
    """One validation: the outcome and what was said once already."""

    out: Outcome
    root: Any
    said: set[str] = field(default_factory=set)

    def once(self, key: str, severity: Severity, code: str, text: str, where: str, rule: str) -> None:
        """A finding about the validation itself (a profile or value set missing), said once per input."""
        if key not in self.said:
            self.said.add(key)
            self.out.add(severity, code, text, where, rule=rule)


class Validator:
    """Validates resources against the loaded packages. Thread-safe; build one per process."""

    def __init__(self, packages: PackageSet, structure: StructureValidator | None = None,
                 terminology: Terminology | None = None) -> None:
        self.packages = packages
        self.structure = structure or StructureValidator(packages)
        self.terminology = terminology or Terminology(packages)
        self.invariants = InvariantEngine(self.terminology)
        self._profiles: dict[str, Profile | None] = {}
        self._lock = threading.Lock()

    # --- profiles -----------------------------------------------------------------------------------------

    def profile(self, canonical: str) -> Profile | None:
        """The compiled profile for a canonical (`url` or `url|version`), or None if no package has it."""
        found = self._profiles.get(canonical)
        if found is None and canonical not in self._profiles:
            sd = self.packages.get(canonical, "StructureDefinition")
            compiled = compile_profile(sd) if sd is not None and sd.get("snapshot") else None
            with self._lock:
                self._profiles[canonical] = found = compiled
        return found

    # --- entry point --------------------------------------------------------------------------------------

    def validate(self, resource: Any, profiles: list[str] | tuple[str, ...] = (),
                 expected_type: str | None = None) -> Outcome:
        out = self.structure.check(resource, expected_type)
        if not out.ok:
            return out  # the profile walk assumes the JSON shapes the structure check guarantees
        run = _Run(out, resource)
        self._resource(resource, resource.get("resourceType", ""), list(profiles), run)
        # A rule the profile restates from its base (a binding, a cardinality) is one finding, not two.
        out.issues = list(dict.fromkeys(out.issues))
        return out

    def _resource(self, resource: dict[str, Any], where: str, extra_profiles: list[str], run: _Run) -> None:
        rtype = resource["resourceType"]
        declared = [p for p in resource.get("meta", {}).get("profile", []) if isinstance(p, str)]
        wanted = [CORE + rtype, *dict.fromkeys(declared + extra_profiles)]
        for canonical in wanted:
            prof = self.profile(canonical)
            if prof is None:
                run.once(canonical, "warning", "not-found", f"Profile {canonical} is not in the loaded packages; "
                         "not checked", where, "profile")
                continue
            if prof.type != rtype:
                run.out.error("invalid", f"Profile {canonical} is for {prof.type}, not {rtype}", where,
                              rule="profile")
                continue
            self._object(prof.root, resource, where, resource, run)
        for i, contained in enumerate(resource.get("contained", []) or []):
            self._resource(contained, f"{where}.contained[{i}]", [], run)
        if rtype == "Bundle":
            for i, entry in enumerate(resource.get("entry", []) or []):
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    self._resource(entry["resource"], f"{where}.entry[{i}].resource", [], run)

    # --- the walk -----------------------------------------------------------------------------------------

    def _object(self, ed: ElementDef, value: dict[str, Any], where: str, resource: dict[str, Any],
                run: _Run) -> None:
        """`value` (a JSON object) against `ed` and its children."""
        self._constraints(ed, value, where, resource, run)
        for child in ed.children.values():
            if child.name in ("resourceType",):
                continue
            items = self._items(child, value)
            self._cardinality(child, len(items), where, run)
            if not items:
                continue
            if child.slicing is not None and child.slices:
                self._sliced(child, items, resource, run, where)
            else:
                for item, item_where in items:
                    self._value(child, item, f"{where}.{item_where}", resource, run)

    def _items(self, child: ElementDef, value: dict[str, Any]) -> list[tuple[Any, str]]:
        """The instance's values for an element, each with its location relative to the parent."""
        if child.name.endswith("[x]"):
            base = child.name[:-3]
            names = [choice_name(base, t.code) for t in child.types] or \
                    [k for k in value if k.startswith(base)]
        else:
            names = [child.name]
        items: list[tuple[Any, str]] = []
        for name in names:
            got = value.get(name)
            if got is None:
                if "_" + name in value:  # a primitive with only an id or extensions is present
                    items.append((value["_" + name], name))
                continue
            if isinstance(got, list):
                items.extend((g, f"{name}[{i}]") for i, g in enumerate(got) if g is not None)
            else:
                items.append((got, name))
        return items

    @staticmethod
    def _cardinality(ed: ElementDef, count: int, where: str, run: _Run) -> None:
        label = f"{ed.path}:{ed.slice_name}" if ed.slice_name else ed.path
        if count < ed.min:
            run.out.error("required", f"{label}: minimum required = {ed.min}, found {count}",
                          f"{where}.{ed.name}", rule=ed.id)
        elif ed.max is not None and count > ed.max:
            text = "is not allowed" if ed.max == 0 else f"allows at most {ed.max}, found {count}"
            run.out.error("structure", f"{label} {text}", f"{where}.{ed.name}", rule=ed.id)

    def _sliced(self, ed: ElementDef, items: list[tuple[Any, str]], resource: dict[str, Any], run: _Run,
                where: str) -> None:
        assert ed.slicing is not None
        counts = {s.slice_name: 0 for s in ed.slices}
        for item, item_where in items:
            match = next((s for s in ed.slices if self._in_slice(ed, s, item)), None)
            if match is None:
                if ed.slicing.rules == "closed":
                    run.out.error("structure", f"{ed.path}: this value matches none of the slices of a closed "
                                  "slicing", f"{where}.{item_where}", rule=ed.id)
                self._value(ed, item, f"{where}.{item_where}", resource, run)
            else:
                counts[match.slice_name] += 1
                self._value(match, item, f"{where}.{item_where}", resource, run)
        for s in ed.slices:
            self._cardinality(s, counts[s.slice_name], where, run)

    # --- slices -------------------------------------------------------------------------------------------

    def _in_slice(self, base: ElementDef, slice_ed: ElementDef, item: Any) -> bool:
        assert base.slicing is not None
        for kind, path in base.slicing.discriminators:
            if not self._discriminated(kind, path, slice_ed, item):
                return False
        return bool(base.slicing.discriminators)

    def _discriminated(self, kind: str, path: str, slice_ed: ElementDef, item: Any) -> bool:
        if kind in ("value", "pattern"):
            # The value is set by the element's fixed value, its pattern, or its required binding (FHIR's
            # definition of the value discriminator), found in the slice or in the profile of its type.
            target = self._element_at(slice_ed, path)
            if target is None:
                return False
            found = _values_at(item, path)
            if target.fixed is not None or target.pattern is not None:
                expected = target.fixed[1] if target.fixed is not None else target.pattern[1]  # type: ignore[index]
                return any(_matches_pattern(v, expected) for v in found)
            if target.binding is not None and target.binding[0] == "required":
                try:
                    codes = self.terminology.codes(target.binding[1])
                except Exception:
                    return False
                return any(any(c == _code_of(v) for _, c in codes) for v in found)
            return False
        if kind == "exists":
            target = self._element_at(slice_ed, path)
            present = bool(_values_at(item, path))
            return present if target is None or target.min > 0 else (not present if target.max == 0 else True)
        if kind == "type":
            type_codes = {t.code for t in (self._element_at(slice_ed, path) or slice_ed).types}
            return _json_type_of(item) in type_codes if isinstance(item, dict) else True
        if kind == "profile":
            ed = self._element_at(slice_ed, path) or slice_ed
            targets = [p for t in ed.types for p in t.profiles]
            return any(self._conforms(item, p) for p in targets)
        return False

    def _conforms(self, item: Any, canonical: str) -> bool:
        prof = self.profile(canonical)
        if prof is None or not isinstance(item, dict):
            return False
        run = _Run(Outcome(), item)
        self._object(prof.root, item, "", item, run)
        return run.out.ok

    def _element_at(self, ed: ElementDef, path: str) -> ElementDef | None:
        node: ElementDef | None = ed
        for step in [] if path == "$this" else path.split("."):
            if node is None:
                return None
            node = node.children.get(step) or self._type_root(node, step)
        return node

    def _type_root(self, ed: ElementDef, step: str) -> ElementDef | None:
        """A child defined not inline but by the element's type profile (e.g. an extension's `url`)."""
        for t in ed.types:
            for canonical in t.profiles or (CORE + t.code,):
                prof = self.profile(canonical)
                if prof is not None and step in prof.root.children:
                    return prof.root.children[step]
        return None

    # --- values -------------------------------------------------------------------------------------------

    def _value(self, ed: ElementDef, item: Any, where: str, resource: dict[str, Any], run: _Run) -> None:
        if ed.fixed is not None and not _equal(item, ed.fixed[1]):
            run.out.error("value", f"{ed.path}: must be exactly {_show(ed.fixed[1])}", where, rule=ed.id)
        if ed.pattern is not None and not _matches_pattern(item, ed.pattern[1]):
            run.out.error("value", f"{ed.path}: must match the pattern {_show(ed.pattern[1])}", where, rule=ed.id)
        if ed.binding is not None:
            self._binding(ed, item, where, run)
        type_code = ed.types[0].code if len(ed.types) == 1 else _json_type_of(item) if isinstance(item, dict) else ""
        if type_code == "Reference" and isinstance(item, dict):
            self._reference(ed, item, where, run)
        if type_code == "Extension" and isinstance(item, dict):
            has_value = any(k.startswith("value") for k in item)
            if has_value == ("extension" in item):
                run.out.error("invariant", "An extension has a value or extensions, not both and not neither",
                              where, rule="ext-1")
        if not isinstance(item, dict):
            self._constraints(ed, item, where, resource, run)
            return
        if item.get("resourceType"):
            return  # a nested resource: validated by its own rights (contained, Bundle entries)
        if ed.children:
            self._object(ed, item, where, resource, run)
            return
        self._constraints(ed, item, where, resource, run)
        for t in ed.types[:1]:
            for canonical in t.profiles or ((CORE + t.code,) if t.code[:1].isupper() else ()):
                prof = self.profile(canonical)
                if prof is not None:
                    self._object(prof.root, item, where, resource, run)

    def _constraints(self, ed: ElementDef, node: Any, where: str, resource: dict[str, Any], run: _Run) -> None:
        for c in ed.constraints:
            if c.key in NATIVE_RULES or not c.expression:
                continue
            try:
                holds = self.invariants.holds(c.expression, node, resource, run.root)
            except Exception as exc:
                run.once(f"{c.key}|{c.expression}", "warning", "not-supported", f"{c.key}: the expression could "
                         f"not be evaluated ({type(exc).__name__}: {exc}); not checked", where, c.key)
                continue
            if not holds:
                if c.severity == "warning":
                    run.out.add("warning", "invariant", f"{c.key}: {c.human}", where, rule=c.key)
                else:
                    run.out.error("invariant", f"{c.key}: {c.human}", where, rule=c.key)

    def _binding(self, ed: ElementDef, item: Any, where: str, run: _Run) -> None:
        assert ed.binding is not None
        strength, valueset = ed.binding
        if strength not in ("required", "extensible"):
            return
        codings = _codings(item)
        if codings is None:
            return
        try:
            codes = self.terminology.codes(valueset)
        except Exception as exc:
            run.once(valueset, "information", "not-supported", f"The value set {valueset} cannot be expanded "
                     f"here ({exc}); the binding of {ed.path} is not checked", where, ed.id)
            return
        if not codings:
            return
        ok = any((system, code) in codes if system is not None else any(c == code for _, c in codes)
                 for system, code in codings)
        if not ok:
            shown = ", ".join(f"{s}#{c}" if s else c for s, c in codings)
            text = f"{ed.path}: {shown} is not in the value set {valueset} ({strength} binding)"
            if strength == "required":
                run.out.error("code-invalid", text, where, rule=ed.id)
            else:
                run.out.add("warning", "code-invalid", text, where, rule=ed.id)

    def _reference(self, ed: ElementDef, item: dict[str, Any], where: str, run: _Run) -> None:
        targets = [p for t in ed.types if t.code == "Reference" for p in t.target_profiles]
        ref = item.get("reference")
        if not targets or not isinstance(ref, str):
            return
        allowed: set[str] = set()
        for canonical in targets:
            prof = self.profile(canonical)
            allowed.add(prof.type if prof is not None else canonical.rsplit("/", 1)[-1])
        if "Resource" in allowed:
            return
        found = resolve_reference(run.root, ref) if ref.startswith("#") or ref.startswith("urn:") else None
        rtype = found.get("resourceType") if found else _type_in_reference(ref)
        if rtype is None and isinstance(run.root, dict) and run.root.get("resourceType") == "Bundle":
            found = resolve_reference(run.root, ref)
            rtype = found.get("resourceType") if found else None
        if rtype is not None and rtype not in allowed:
            run.out.error("structure", f"{ed.path}: a reference to {rtype} is not allowed here (allowed: "
                          f"{', '.join(sorted(allowed))})", f"{where}.reference", rule=ed.id)


# --- helpers over JSON values ---------------------------------------------------------------------------------


def _values_at(item: Any, path: str) -> list[Any]:
    values = [item]
    if path == "$this":
        return values
    for step in path.split("."):
        step = step.removesuffix("[x]")
        nxt: list[Any] = []
        for v in values:
            if not isinstance(v, dict):
                continue
            got = v.get(step)
            if got is None and not path.endswith("[x]"):
                got = next((v[k] for k in v if k.startswith(step) and k[len(step):][:1].isupper()), None)
            if isinstance(got, list):
                nxt.extend(got)
            elif got is not None:
                nxt.append(got)
        values = nxt
    return values


def _code_of(value: Any) -> Any:
    return value.get("code") if isinstance(value, dict) else value


def _equal(value: Any, fixed: Any) -> bool:
    return bool(value == fixed)


def _matches_pattern(value: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: every element the pattern has is in the value, with the same content."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and _matches_pattern(value[k], p) for k, p in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(value, list):
            value = [value]
        return all(any(_matches_pattern(v, p) for v in value) for p in pattern)
    return bool(value == pattern)


def _codings(item: Any) -> list[tuple[str | None, str]] | None:
    """The (system, code) pairs a coded value carries; None for values that are not codes."""
    if isinstance(item, str):
        return [(None, item)]
    if not isinstance(item, dict):
        return None
    if "coding" in item or "text" in item:
        return [(c.get("system"), c["code"]) for c in item.get("coding", []) if isinstance(c, dict) and "code" in c]
    if "code" in item and isinstance(item["code"], str):
        return [(item.get("system"), item["code"])]
    return None


def _json_type_of(item: dict[str, Any]) -> str:
    if "resourceType" in item:
        return str(item["resourceType"])
    if "reference" in item or "identifier" in item and len(item) <= 3:
        return "Reference"
    return ""


def _type_in_reference(ref: str) -> str | None:
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2]
    return None


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 80 else text[:80] + "…"
