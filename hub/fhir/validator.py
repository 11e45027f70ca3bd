"""The hub's FHIR validator: structure, then profiles, from the official packages.

For each resource (and each Bundle entry and contained resource, by its own rights):
1. structure against the R4 core definitions (`hub.fhir.structure`);
2. every profile that applies: those in `meta.profile`, those a loaded ImplementationGuide declares `global`
   for the type, and those asked for, always the core definition of the type: cardinality, fixed and pattern
   values, slicing (value, pattern, type, profile and exists discriminators; open and closed), extension
   profiles, type profiles (one of several is enough; also on nested resources, `Bundle.entry.resource`), the
   target types of references, required and extensible bindings (and R5's additional ones), R5's
   `mustHaveValue` and `valueAlternatives`, and every constraint's FHIRPath expression (`hub.fhir.fhirpath`).

Each finding goes into one Outcome: severity, IssueType code, FHIRPath location, diagnostics, and the rule (the
constraint key or the element id) that raised it.

Written policies (README, "Validation policy"):
- `ele-1` (every element has a value or children) and `ext-1` (an extension has a value or extensions, not
  both) sit on every element; they are checked natively, with the same meaning, instead of by FHIRPath: `ele-1`
  is the structure check's "must not be empty", `ext-1` is checked where an Extension is walked.
- A profile that is not in the loaded packages is reported once per input, as a warning, not as an error.
- An invariant that fails while `resolve()` met references to resources not in the input (a standalone
  resource whose author is in another file) is a warning that it could not be checked, naming the references.
- A value set the hub cannot expand (filters, or a code system it does not have) is reported as information:
  the binding is not checked, and the finding says so.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from hub.core.outcome import Issue, Outcome, Severity
from hub.fhir import io, narrative
from hub.fhir.bundle import check_bundle
from hub.fhir.definitions import discriminator_faults
from hub.fhir.extensions import ExtensionContexts
from hub.fhir.fhirpath import InvariantEngine, Unresolvable, resolve_reference
from hub.fhir.limits import Unchecked
from hub.fhir.limits import check as limits_check
from hub.fhir.message_definition import check_message
from hub.fhir.native import NATIVE_CHECKS, NATIVE_RULES
from hub.fhir.options import ValidationOptions
from hub.fhir.packages import PackageSet, Terminology
from hub.fhir.parts import WHOLE, Part, Share, merge
from hub.fhir.paths import values_at
from hub.fhir.profile import Constraint, ElementDef, Limits, Profile, compile_profile, element_by_id, elements_of
from hub.fhir.slicing import Item, SliceMatching
from hub.fhir.snapshot import SnapshotError, snapshot
from hub.fhir.structure import CORE, Node, StructureValidator, choice_name
from hub.fhir.values import (
    HOLDERS,
    codings,
    folded,
    matches_pattern,
    parameter_resources,
    show,
    type_in_reference,
)
from hub.fhir.xml_reader import XmlReader

log = logging.getLogger("hub.validator")




@dataclass(frozen=True, slots=True)
class _Plan:
    """How the values of one element definition are walked, worked out once: the invariants to evaluate, the
    children that can yield a finding (the others, with no rule beyond what the structure check enforces, are
    not walked at all) and the JSON names that lead to them, and the type profiles walked for a value without
    inline children: all of them, but for a type naming several profiles (`alternatives`, with their urls),
    one of which is enough. `inert`: a value of this element can yield no finding."""

    constraints: tuple[tuple[Constraint, frozenset[str] | None], ...]  # each with the names it needs to fail
    keys: dict[str, tuple[ElementDef, str | None, str]]  # JSON name → child, the type it says, the plain name
    counted: tuple[ElementDef, ...]  # the children whose number (or whose required slices) must be checked
    type_roots: dict[str, tuple[ElementDef, ...]]
    alternatives: dict[str, tuple[str, ...]]
    inert: bool
    # the choice children (`value[x]`): their name without `[x]`, and the JSON names of the types they allow
    choices: tuple[tuple[str, ElementDef, frozenset[str]], ...] = ()
    unknown: dict[str, tuple[str, ...]] = field(default_factory=dict)  # type → its profiles not loaded


_CYCLE = _Plan((), {}, (), {}, {}, False)

# One value of an element in the instance: the value, where it is (relative to its parent) and its type if a
# choice name says it. A plain tuple: the walk makes one for every value.


@dataclass(slots=True)
class _Run:
    """One validation: the outcome and what was said once already."""

    out: Outcome
    root: Any
    part: Part = WHOLE  # of the root's Bundle entries, the part this run walks
    said: dict[str, Issue] = field(default_factory=dict)
    evaluated: set[tuple[str, str, str]] = field(default_factory=set)
    containers: dict[int, dict[str, Any]] = field(default_factory=dict)  # id of a contained resource → container

    def once(self, key: str, severity: Severity, code: str, text: str, where: str, rule: str) -> None:
        """A finding about the validation itself (a profile or value set missing), said once per input."""
        if key not in self.said:
            self.out.add(severity, code, text, where, rule=rule)
            self.said[key] = self.out.issues[-1]

    def missing_profile(self, canonical: str, where: str) -> None:
        self.once(canonical, "warning", "not-found", f"Profile {canonical} is not in the loaded packages; not "
                  "checked", where, "profile")


class Validator(SliceMatching):
    """Validates resources against the loaded packages. Thread-safe; build one per process."""

    def __init__(self, packages: PackageSet, structure: StructureValidator | None = None,
                 terminology: Terminology | None = None, compiled_invariants: bool = True,
                 options: ValidationOptions = ValidationOptions()) -> None:
        """`options` (`hub.fhir.options`): those of the structure check apply when no `structure` is given."""
        self.packages = packages
        self.options = options
        self.structure = structure or StructureValidator(packages, options)
        self.terminology = terminology or Terminology(packages)
        self.invariants = InvariantEngine(self.terminology, compiled_invariants)
        self.invariants.conforms = lambda resource, canonical: self._conforms(resource, canonical, None)
        self._profiles: dict[tuple[str, str | None], Profile | None] = {}
        self._lock = threading.Lock()
        self._plan_lock = threading.RLock()
        self._elements_at: dict[tuple[int, str], ElementDef | None] = {}  # ids of long-lived compiled profiles
        self._slice_indexes: dict[int, tuple[str, dict[str, int]] | None] = {}  # by id, as _elements_at
        self._checking = threading.local()  # the (item, profile) conformance checks under way in this thread
        self.reader = XmlReader(self.structure)
        self.extension_contexts = ExtensionContexts(packages, self.structure, self.invariants)

    def parse(self, body: bytes, content_type: str | None) -> dict[str, Any]:
        """A resource's bytes read as this validator sees FHIR: XML by the hub's own reader, into the same form as
        JSON (`hub.fhir.xml_reader`)."""
        return io.parse(body, content_type, self.reader)

    # --- profiles -----------------------------------------------------------------------------------------

    def profile(self, canonical: str, context: str | None = None) -> Profile | None:
        """The compiled profile for a canonical (`url` or `url|version`) as seen from the package `context`
        (the package of the definition that names it), or None if no package has it."""
        key = (canonical, context)
        found = self._profiles.get(key)
        if found is None and key not in self._profiles:
            located = self.packages.locate(canonical, "StructureDefinition", context)
            compiled = None
            if located is not None:
                compiled = self._compile(located[0], located[1])
            with self._lock:
                self._profiles[key] = found = compiled
        return found

    def _compile(self, sd: dict[str, Any], package: str) -> Profile | None:
        """The profile's element tree; one published with its differential only gets its snapshot made first
        (`hub.fhir.snapshot`). None when that cannot be done: the profile is then reported as unusable."""
        if sd.get("snapshot", {}).get("element"):
            return self._linked(compile_profile(sd, package))
        try:
            elements = snapshot(sd, self.packages, package)
        except SnapshotError as exc:
            log.warning("no snapshot can be made for %s: %s", sd.get("url"), exc)
            return None
        return self._linked(compile_profile({**sd, "snapshot": {"element": elements}}, package))

    def _linked(self, prof: Profile) -> Profile:
        """An element whose type names an element of a profile (the `elementdefinition-profile-element`
        extension: the section `Composition.section:codeA` of a library of sections) gets that element's
        children. A profile being linked already in this thread (two naming each other) is not compiled again."""
        linking: set[str] = self._checking.__dict__.setdefault("linking", set())
        linking.add(prof.url)
        try:
            for ed in list(elements_of(prof.root)):
                for canonical, element_id in (e for t in ed.types for e in t.elements):
                    url = canonical.split("|")[0]
                    other = prof if url == prof.url else None if url in linking else self.profile(canonical,
                                                                                                  prof.package)
                    target = element_by_id(other.root, element_id) if other is not None else None
                    if target is not None and target is not ed:
                        ed.children = target.children
                        break
        finally:
            linking.discard(prof.url)
        return prof

    def _is_resource_type(self, name: str) -> bool:
        node = self.structure.definition(name)
        return isinstance(node, Node) and node.is_resource

    # --- entry point --------------------------------------------------------------------------------------

    def validate(self, resource: Any, profiles: list[str] | tuple[str, ...] = (),
                 expected_type: str | None = None, context: str | None = None) -> Outcome:
        """Validate one resource. `context` (`name#version` of a loaded package) resolves unversioned
        canonicals as that package sees them; without it, the newest loaded version is used, and the resources
        inside a Bundle or contained resolve as the package of their container's profile sees them."""
        return merge([self.validate_part(resource, WHOLE, profiles, expected_type, context)])

    def validate_part(self, resource: Any, part: Part, profiles: list[str] | tuple[str, ...] = (),
                      expected_type: str | None = None, context: str | None = None) -> Share:
        """One part of `validate` (`hub.fhir.parts`): parts other than `WHOLE` only for what `partable`
        allows. A resource the structure check faults still gets the profile checks (bindings, invariants,
        slicing), so every error is reported at once; a finding at a place the structure check has spoken for
        is its, and only values the walk cannot read (a property of the wrong JSON type) keep the rest from
        being checked."""
        out = self.structure.check(resource, expected_type, part)
        if out.ok:
            return self._profiles_part(resource, profiles, context, part, out.issues)
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            return Share(out.issues)
        try:
            more = self._profiles_part(resource, profiles, context, part)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError):  # shapes the walk cannot read
            return Share(out.issues)
        faulted = {(i.expression, i.rule) for i in out.issues if i.severity in ("error", "fatal")}
        keep = [i for i in more.walk if (i.expression, i.rule) not in faulted]
        return Share(out.issues + keep, [i for i in more.after if (i.expression, i.rule) not in faulted],
                     {k: i for k, i in more.once.items() if (i.expression, i.rule) not in faulted})

    def partable(self, resource: Any, profiles: list[str] | tuple[str, ...] = (), context: str | None = None) -> bool:
        """Whether `resource` may be validated in parts: a Bundle of entries each on its own (not a document
        or message, whose entries the Bundle's rules tie together), whose profiles do not slice its entries."""
        if not isinstance(resource, dict) or resource.get("resourceType") != "Bundle" \
                or resource.get("type") in ("document", "message") or "_entry" in resource:
            return False
        entries = resource.get("entry")
        if not isinstance(entries, list) or len(entries) < 2 or not all(isinstance(e, dict) for e in entries):
            return False
        for canonical in self._declared(resource) + list(profiles):
            prof = self.profile(canonical, context)
            entry = prof.root.children.get("entry") if prof is not None else None
            if entry is not None and entry.slicing is not None:
                return False
        return True

    def check_profiles(self, resource: dict[str, Any], profiles: list[str] | tuple[str, ...] = (),
                       context: str | None = None, out: Outcome | None = None) -> Outcome:
        """The profile part of `validate`, for a resource that has passed the structure check already (the
        booking edge answers structure errors and profile errors with different statuses). Findings are added
        to `out` when given."""
        merged = merge([self._profiles_part(resource, profiles, context, WHOLE, out.issues if out is not None else [])])
        if out is None:
            return merged
        out.issues = merged.issues
        return out

    def _profiles_part(self, resource: dict[str, Any], profiles: list[str] | tuple[str, ...], context: str | None,
                       part: Part, before: list[Issue] | None = None) -> Share:
        out = Outcome(list(before or ()))
        run = _Run(out, resource, part)
        self._checking.memo = {}
        self._resource(resource, resource.get("resourceType", ""), list(profiles), run, context)
        walked = len(out.issues)
        self.extension_contexts.check(resource, out, context, part)
        if part.owns_root:
            check_bundle(resource, out, self._is_resource_type)
        if resource.get("resourceType") == "StructureDefinition":
            for where, text in discriminator_faults(resource, self.structure):
                out.error("invalid", text, where, rule="sd-discriminator")
        return Share(out.issues[:walked], out.issues[walked:], run.said)

    def _declared(self, resource: dict[str, Any]) -> list[str]:
        """The profiles a resource declares, and those the loaded guides apply to every resource of its type."""
        declared = [p for p in resource.get("meta", {}).get("profile", []) if isinstance(p, str)]
        declared.extend(self.packages.global_profiles(resource["resourceType"]))
        return declared

    def _resource(self, resource: dict[str, Any], where: str, extra_profiles: list[str], run: _Run,
                  context: str | None) -> None:
        rtype = resource["resourceType"]
        declared = self._declared(resource)
        inner = context  # what nested resources resolve in: the package of this resource's own profile
        applied = 0
        for canonical in dict.fromkeys(declared + extra_profiles):
            prof = self.profile(canonical, context)
            if prof is None:
                run.missing_profile(canonical, where)
                continue
            if prof.type != rtype:
                run.out.error("invalid", f"Profile {canonical} is for {prof.type}, not {rtype}", where,
                              rule="profile")
                continue
            inner = inner or prof.package
            self._object(prof.root, resource, where, resource, run)
            applied += 1
        if not applied:
            # A profile's snapshot carries everything its base requires, so the core definition is walked only
            # when no profile applies (walking both would also report a binding the profile replaced).
            core = self.profile(CORE + rtype)
            if core is not None:
                self._object(core.root, resource, where, resource, run)
        self._narrative_links(resource, where, run)
        for i, contained in enumerate(resource.get("contained", []) or [] if self.options.contained else []):
            if isinstance(contained, dict):
                run.containers[id(contained)] = run.containers.get(id(resource), resource)
            self._resource(contained, f"{where}.contained[{i}]", [], run, inner)
        if rtype == "Bundle" and resource.get("type") == "message":
            check_message(resource, where, self.packages, inner, run.out, run.once, self._conforms)
        if rtype == "Parameters":
            for at, held in parameter_resources(resource.get("parameter"), f"{where}.parameter"):
                self._resource(held, at, [], run, inner)
        if rtype == "Bundle":
            seen: dict[str, int] = {}  # entries of each type so far, for the options' `Type:index` rules
            for i, entry in enumerate(resource.get("entry", []) or []):
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    kind = str(entry["resource"].get("resourceType"))
                    n = seen[kind] = seen.get(kind, -1) + 1
                    if resource is run.root and not run.part.takes(i):
                        continue  # another part's
                    extra = [p for rule, p in self.options.bundle_profiles if rule in (f"{kind}:{n}", f"{kind}:*")] \
                        if resource is run.root else []
                    self._resource(entry["resource"], f"{where}.entry[{i}].resource", extra, run, inner)

    @staticmethod
    def _narrative_links(resource: dict[str, Any], where: str, run: _Run) -> None:
        """The narrative's links within the resource resolve, as the HL7 validator requires: each `#x` names an
        anchor of the narrative or a contained resource. Written policy: not inside a Bundle, whose narratives
        are shown together and link to each other's anchors (MedCom's generated narratives do)."""
        if resource is not run.root and isinstance(run.root, dict) and run.root.get("resourceType") == "Bundle":
            return
        text = resource.get("text")
        div = text.get("div") if isinstance(text, dict) else None
        if not isinstance(div, str) or "#" not in div or "href" not in div:
            return
        targets = {str(c.get("id")) for c in resource.get("contained", []) or [] if isinstance(c, dict)}
        for link in narrative.unresolved_links(div, targets):
            run.out.error("structure", f"The narrative's link {link} does not resolve (no anchor or contained "
                          "resource has that id)", f"{where}.text.div", rule="narrative-link")

    # --- the walk -----------------------------------------------------------------------------------------

    def _object(self, ed: ElementDef, value: dict[str, Any], where: str, resource: dict[str, Any],
                run: _Run) -> None:
        """`value` (a JSON object) against `ed` and its children."""
        plan = ed.plan or self._plan(ed)
        part = run.part if value is run.root and run.part.parted else None  # a Bundle walked in parts
        own = part is None or part.owns_root  # the object's own rules, and its values other than entries
        if plan.constraints and own:
            self._constraints(ed, plan.constraints, value, where, resource, run)
        if not plan.keys:
            return
        found: dict[str, tuple[ElementDef, list[Item]]] = {}
        # values counted but not walked: a choice's values in a type it does not allow, other parts' entries
        unwalked: dict[str, int] = {}
        for key, got in value.items():
            if part is not None:
                if key == "entry":
                    unwalked[key] = sum(1 for i in range(len(got)) if not part.takes(i))
                    got = [g if part.takes(i) else None for i, g in enumerate(got)]
                elif not own:
                    continue
            hit = plan.keys.get(key)
            if hit is None and plan.choices and key[0] != "_":
                self._other_type(plan, key, where, run, unwalked)
            if hit is None or (key[0] == "_" and key[1:] in value):
                continue  # not walked, or a primitive's `_name` beside its value
            child, type_code, name = hit
            entry = found.get(child.name)
            if entry is None:
                entry = found[child.name] = (child, [])
            if isinstance(got, list):
                entry[1].extend((g, f"{name}[{i}]", type_code) for i, g in enumerate(got) if g is not None)
            elif got is not None:
                entry[1].append((got, name, type_code))
        for child in plan.counted if own else ():
            entry = found.get(child.name)
            count = (len(entry[1]) if entry is not None else 0) + unwalked.get(child.name, 0)
            if count < child.min or (child.max is not None and count > child.max):
                self._cardinality(child, count, where, run)
            if entry is None and child.slicing is not None and child.slices:
                self._sliced(child, [], resource, run, where)  # an absent element: its required slices
        for child, items in found.values():
            if child.slicing is not None and child.slices:
                self._sliced(child, items, resource, run, where)
            elif not (child.plan or self._plan(child)).inert:
                for got, at, type_code in items:
                    self._value(child, got, f"{where}.{at}", resource, run, type_code)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - the validator lives as long as the process
    def _core_types(self, path: str) -> int:
        """How many types R4 core allows the element at `path` (`Observation.value[x]`: 11); 0 when unknown."""
        steps_ = path.split(".")
        core = self.profile(CORE + steps_[0])
        node = core.root if core is not None else None
        for step in steps_[1:]:
            node = node.children.get(step) if node is not None else None
        return len(node.types) if node is not None else 0

    @staticmethod
    def _other_type(plan: _Plan, key: str, where: str, run: _Run, counts: dict[str, int]) -> None:
        """A JSON name of a choice element in a type the profile does not allow (`valueString` where only
        `valueQuantity` is): an error at it, as the HL7 validator places it."""
        for base, child, allowed in plan.choices:
            if key.startswith(base) and key[len(base):][:1].isupper() and key not in allowed:
                run.out.error("structure", f"{child.path}: the type {key[len(base):]} is not allowed here "
                              f"(allowed: {', '.join(sorted(t.code for t in child.types))})", f"{where}.{key}",
                              rule=child.id)
                counts[child.name] = counts.get(child.name, 0) + 1
                return

    # --- plans --------------------------------------------------------------------------------------------

    def _plan(self, ed: ElementDef, building: frozenset[int] = frozenset()) -> _Plan:
        """The walk plan of an element, made once. Elements on a cycle being planned (Identifier.assigner →
        Reference.identifier → Identifier) count as not inert: the plan then walks them, never skips them."""
        if ed.plan is not None:
            return ed.plan  # type: ignore[no-any-return]
        if id(ed) in building:
            return _CYCLE
        with self._plan_lock:
            if ed.plan is None:
                ed.plan = self._make_plan(ed, building | {id(ed)})
        return ed.plan  # type: ignore[no-any-return]

    def _make_plan(self, ed: ElementDef, building: frozenset[int]) -> _Plan:
        evaluated = [c for c in ed.constraints if c.key in NATIVE_CHECKS or (
            c.expression and c.key not in NATIVE_RULES and not self.invariants.always_holds(c.expression))]
        constraints = tuple((c, None if c.key in NATIVE_CHECKS else self.invariants.holds_without(c.expression or ""))
                            for c in evaluated)
        keys: dict[str, tuple[ElementDef, str | None, str]] = {}
        counted = []
        choices = []
        for child in ed.children.values():
            if child.name == "resourceType":
                continue
            if child.name.endswith("[x]") and child.types and len(child.types) < self._core_types(child.path):
                choices.append((child.name[:-3], child, frozenset(choice_name(child.name[:-3], t.code)
                                                                  for t in child.types)))
            numbered = (child.min > 0 or (child.max is not None and child.max != child.base_max)
                        or any(s.min > 0 for s in child.slices))
            if numbered:
                counted.append(child)
            if not (numbered or (child.slicing is not None and child.slices) or not self._inert(child, building)):
                continue  # its values can yield no finding: not walked at all
            if child.name.endswith("[x]"):
                for t in child.types:
                    key = choice_name(child.name[:-3], t.code)
                    keys[key] = keys["_" + key] = (child, t.code, key)
            else:
                keys[child.name] = keys["_" + child.name] = (child, None, child.name)
        type_roots: dict[str, tuple[ElementDef, ...]] = {}
        alternatives: dict[str, tuple[str, ...]] = {}
        unknown = {t.code: missing for t in ed.types if t.code != "Extension"  # extensions: hub.fhir.extensions
                   and (missing := tuple(c for c in t.profiles if self.profile(c, ed.package) is None))}
        if not ed.children:
            for t in ed.types:
                roots = []
                canonicals = t.profiles or ((CORE + t.code,) if t.code[:1].isupper() else ())
                for canonical in canonicals:
                    prof = self.profile(canonical, ed.package)
                    if prof is not None and not self._plan(prof.root, building).inert:
                        roots.append(prof.root)
                if len(canonicals) > 1:  # a value conforms to one of the profiles (ElementDefinition.type.profile)
                    if len(roots) < len(canonicals):
                        roots = []  # one asks nothing of the value (or is unknown): nothing to choose
                    elif roots:
                        alternatives[t.code] = canonicals
                type_roots[t.code] = tuple(roots)
        inert = not (constraints or keys or ed.fixed or ed.pattern
                     or ed.binding is not None or ed.limits is not None or ed.language_control is not None
                     or ed.must_have_value or ed.value_alternatives is not None or bool(ed.additional_bindings)
                     or any(t.code == "Extension" or (t.code == "Reference" and t.target_profiles) for t in ed.types)
                     or any(type_roots.values()) or bool(unknown))
        return _Plan(constraints, keys, tuple(counted), type_roots, alternatives, inert and not choices,
                     tuple(choices), unknown)

    def _inert(self, ed: ElementDef, building: frozenset[int]) -> bool:
        return self._plan(ed, building).inert

    @staticmethod
    def _cardinality(ed: ElementDef, count: int, where: str, run: _Run) -> None:
        label = f"{ed.path}:{ed.slice_name}" if ed.slice_name else ed.path
        # At the element holding the values, as the HL7 validator places a cardinality finding.
        if count < ed.min:
            run.out.error("required", f"{label}: minimum required = {ed.min}, found {count}", where, rule=ed.id)
        elif ed.max is not None and count > ed.max:
            text = "is not allowed" if ed.max == 0 else f"allows at most {ed.max}, found {count}"
            run.out.error("structure", f"{label} {text}", where, rule=ed.id)

    def _sliced(self, ed: ElementDef, items: list[Item], resource: dict[str, Any], run: _Run,
                where: str) -> None:
        """Each value into the first slice it matches; then the slices' cardinalities, and for an ordered
        slicing the order of the slices, and for `openAtEnd` that unmatched values come last."""
        assert ed.slicing is not None
        counts = {s.slice_name: 0 for s in ed.slices}
        last, unmatched = -1, False
        lookup = self._slice_index(ed)
        for item in items:
            if lookup is not None:
                path, keys = lookup
                hit = min((keys[v] for v in values_at(item[0], path, run.root) if type(v) is str and v in keys),
                          default=None)
                found = (hit, ed.slices[hit]) if hit is not None else None
            else:
                found = next(((i, s) for i, s in enumerate(ed.slices) if self._in_slice(ed, s, item, run.root)), None)
            got, relative, type_code = item
            at = f"{where}.{relative}"
            if found is None:
                unmatched = True
                if ed.slicing.rules == "closed":
                    run.out.error("structure", f"{ed.path}: this value matches none of the slices of a closed "
                                  "slicing", at, rule=ed.id)
                self._value(ed, got, at, resource, run, type_code)
                continue
            index, match = found
            if ed.slicing.ordered and index < last:
                run.out.error("structure", f"{ed.path}: the slicing is ordered, and slice {match.slice_name} "
                              f"comes after slice {ed.slices[last].slice_name}", at, rule=ed.id)
            if ed.slicing.rules == "openAtEnd" and unmatched:
                run.out.error("structure", f"{ed.path}: values that match no slice come after the sliced ones "
                              "(openAtEnd)", at, rule=ed.id)
            last = max(last, index)
            counts[match.slice_name] += 1
            self._value(match, got, at, resource, run, type_code)
        for s in ed.slices:
            self._cardinality(s, counts[s.slice_name], where, run)

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - the validator lives as long as the process
    def _derives(self, declared: str, canonical: str, context: str | None) -> bool:
        """Whether the profile `declared` is `canonical` or constrains it (through its baseDefinitions): a
        resource declaring it is validated against it, and so against `canonical`, by its own rights."""
        seen: set[str] = set()
        url: str | None = declared
        wanted = canonical.split("|")[0]
        while url and url not in seen:
            if url.split("|")[0] == wanted:
                return True
            seen.add(url)
            found = self.packages.locate(url, "StructureDefinition", context)
            url = found[0].get("baseDefinition") if found is not None else None
        return False

    def _conforms(self, item: Any, canonical: str, context: str | None, root: Any = None) -> bool:
        """Whether `item` conforms to the profile; `root` is what its references resolve in (the Bundle around
        it). A check already under way for the same item and profile (a patient linked to a patient linked back)
        counts as conforming: the check that began it decides."""
        prof = self.profile(canonical, context)
        if prof is None:
            return False
        if isinstance(item, dict) and isinstance(item.get("resourceType"), str) and item["resourceType"] != prof.type:
            return False  # a resource conforms only to profiles of its own type (a Practitioner to no Patient's)
        key = (id(item), canonical)
        checking: set[tuple[int, str]] = self._checking.__dict__.setdefault("keys", set())
        if key in checking:
            return True
        # Each item and profile is checked once per validation (a message's Patient is the target of many
        # references); the memo is emptied when a validation starts (`check_profiles`).
        memo: dict[tuple[int, str, int], tuple[Any, bool]] = self._checking.__dict__.setdefault("memo", {})
        known = memo.get((id(item), canonical, id(root)))
        if known is not None and known[0] is item:
            return known[1]
        checking.add(key)
        try:
            run = _Run(Outcome(), item if root is None else root)
            if isinstance(item, dict):
                self._object(prof.root, item, "", item, run)
            else:  # a primitive against a profile of its type (`string` with a fixed value)
                self._value(prof.root, item, "", {}, run)
            memo[(id(item), canonical, id(root))] = (item, run.out.ok)
            return run.out.ok
        finally:
            checking.discard(key)

    # --- values -------------------------------------------------------------------------------------------

    def _value(self, ed: ElementDef, item: Any, where: str, resource: dict[str, Any], run: _Run,
               choice_type: str | None = None) -> None:
        plan = ed.plan or self._plan(ed)
        if plan.inert:
            return
        if ed.fixed is not None and item != ed.fixed[1]:
            run.out.error("value", f"{ed.path}: must be exactly {show(ed.fixed[1])}", where, rule=ed.id)
        if ed.pattern is not None and not matches_pattern(item, ed.pattern[1]):
            run.out.error("value", f"{ed.path}: must match the pattern {show(ed.pattern[1])}", where, rule=ed.id)
        if ed.binding is not None:
            self._binding(ed, item, where, run)
        for strength, valueset in ed.additional_bindings:
            self._binding(ed, item, where, run, (strength, valueset), ", additional")
        if ed.limits is not None:
            self._limits(ed, ed.limits, item, where, run)
        if ed.language_control is not None and isinstance(item, dict) and isinstance(item.get("div"), str):
            broken = narrative.language_control(ed.language_control, item["div"], resource.get("language"))
            if broken is not None:
                run.out.error("business-rule", f"{ed.path}: {broken}", where, rule=ed.id)
        type_code = choice_type or (ed.types[0].code if len(ed.types) == 1 else "")
        if (ed.must_have_value or ed.value_alternatives is not None) and isinstance(item, dict) \
                and type_code[:1].islower():
            self._absent_value(ed, item, where, run)  # a primitive's `_name` alone: extensions, no value
        if type_code == "Reference" and isinstance(item, dict):
            self._reference(ed, item, where, resource, run)
        if type_code == "Extension" and isinstance(item, dict):
            has_value = any(k.startswith("value") for k in item)
            if has_value == ("extension" in item):
                run.out.error("invariant", "An extension has a value or extensions, not both and not neither",
                              where, rule="ext-1")
        for canonical in plan.unknown.get(type_code or (ed.types[0].code if ed.types else ""), ()):
            self._unknown_type_profile(ed, canonical, where, run)
        if not isinstance(item, dict):
            if plan.constraints:
                self._constraints(ed, plan.constraints, item, where, resource, run)
            return
        if item.get("resourceType"):
            # A nested resource is validated by its own rights (contained, Bundle entries, parameters); what is
            # left is what this element's type profiles add (`Bundle.entry.resource` typed with a profile).
            self._nested(ed, item, where, run)
            return
        if ed.children:
            self._object(ed, item, where, resource, run)
            return
        if plan.constraints:
            self._constraints(ed, plan.constraints, item, where, resource, run)
        roots = plan.type_roots.get(type_code)
        if roots is None and ed.types:
            type_code = ed.types[0].code
            roots = plan.type_roots.get(type_code, ())
        if type_code in plan.alternatives and roots:
            self._one_of(roots, plan.alternatives[type_code], item, where, resource, run)
            return
        for root in roots or ():
            self._object(root, item, where, resource, run)

    def _unknown_type_profile(self, ed: ElementDef, canonical: str, where: str, run: _Run) -> None:
        """A profile the element's type names that no loaded package holds: the value cannot be checked
        against it. Where every package the naming profile's package depends on is loaded, the profile is
        missing indeed: an error where the value is, as the HL7 validator has it; else it is likely in a
        dependency left out (`PackageSet.missing`), and a warning by written policy, as a profile not loaded."""
        if self._missing_indeed(canonical, ed.package):
            run.out.error("not-found", f"{ed.path}: the profile {canonical} its type names is in none of the "
                          "packages its profile depends on; the value is not checked against it", where,
                          rule="profile")
        else:
            run.missing_profile(canonical, where)

    def _missing_indeed(self, canonical: str, context: str | None) -> bool:
        """A profile no loaded package holds, named from a package whose dependencies are all loaded (one that
        is held but cannot be used, its snapshot impossible, is said where it is used)."""
        return self.packages.complete(context) and self.packages.locate(canonical, "StructureDefinition",
                                                                        context) is None

    @staticmethod
    def _absent_value(ed: ElementDef, item: dict[str, Any], where: str, run: _Run) -> None:
        """A primitive without a value where the profile says it must have one (R5's `mustHaveValue`), or
        where only the extensions of `valueAlternatives` may stand for it."""
        if ed.must_have_value:
            run.out.error("required", f"{ed.path}: the profile requires a value here, not only extensions",
                          where, rule=ed.id)
        elif ed.value_alternatives is not None:
            urls = {x.get("url") for x in item.get("extension", []) if isinstance(x, dict)}
            if urls.isdisjoint(ed.value_alternatives):
                run.out.error("required", f"{ed.path}: without a value, the profile requires one of the extensions "
                              f"{', '.join(ed.value_alternatives)}", where, rule=ed.id)

    def _nested(self, ed: ElementDef, item: dict[str, Any], where: str, run: _Run) -> None:
        """A resource inside a resource against the profiles its element's types name for its type (or for
        `Resource`): one of them, when they are several, as for any type profile."""
        rtype = item["resourceType"]
        allowed: set[str] = set()
        for t in ed.types:
            if t.code not in ("Resource", "DomainResource"):
                allowed.add(t.code)
            elif not t.profiles:
                return  # any resource may stand here: it is validated by its own rights
            else:
                allowed |= {p.type for c in t.profiles if (p := self.profile(c, ed.package)) is not None}
        if allowed and rtype not in allowed:
            run.out.error("structure", f"{ed.path}: the type {rtype} is not allowed here (allowed: "
                          f"{', '.join(sorted(allowed))})", where, rule=ed.id)
            return
        canonicals = [p for t in ed.types if t.code in (rtype, "Resource", "DomainResource") for p in t.profiles]
        roots, named, unknown = [], [], False
        for canonical in canonicals:
            prof = self.profile(canonical, ed.package)
            if prof is None:
                run.missing_profile(canonical, where)
                unknown = True
            elif prof.type == rtype:
                roots.append(prof.root)
                named.append(canonical)
        if unknown and len(canonicals) > 1:
            return  # one of them is enough, and one is not known: nothing to choose (as `_make_plan`)
        if len(roots) > 1:
            self._one_of(tuple(roots), tuple(named), item, where, item, run)
        elif roots:
            self._object(roots[0], item, where, item, run)

    def _one_of(self, roots: tuple[ElementDef, ...], canonicals: tuple[str, ...], item: dict[str, Any],
                where: str, resource: dict[str, Any], run: _Run) -> None:
        """A value of a type naming several profiles conforms to one of them: the findings of the first it
        conforms to, or, when none, an error and each profile's findings (to say why)."""
        tried = []
        for root in roots:
            trial = _Run(Outcome(), run.root, said=run.said)
            self._object(root, item, where, resource, trial)
            if trial.out.ok:
                run.out.issues.extend(trial.out.issues)
                return
            tried.extend(trial.out.issues)
        run.out.error("structure", f"{where} conforms to none of the profiles it may conform to: "
                      f"{', '.join(canonicals)}", where, rule="profile")
        run.out.issues.extend(tried)

    def _constraints(self, ed: ElementDef, constraints: tuple[tuple[Constraint, frozenset[str] | None], ...],
                     node: Any, where: str, resource: dict[str, Any], run: _Run) -> None:
        for c, needs in constraints:
            if needs is not None and type(node) is dict and needs.isdisjoint(node):
                continue  # an object without the names it reads: it holds, as on an empty object
            if c.key == "dom-3" and not self.options.contained:
                continue  # the contained resources are not looked at
            # The core definition and the profiles restate the same invariants: each is evaluated once a place.
            done = (c.key, c.expression or "", where)
            if done in run.evaluated:
                continue
            run.evaluated.add(done)
            native = NATIVE_CHECKS.get(c.key)
            faults: list[tuple[str, str]] = []
            try:
                if native is not None:
                    faults = native(node)
                    holds = not faults
                else:
                    assert c.expression is not None
                    # %rootResource: the container of a contained resource, else the resource itself (a Bundle's
                    # entry is not contained in it); resolve() looks in the whole input
                    holds = self.invariants.holds(c.expression, node, resource,
                                                  run.containers.get(id(resource), resource), ed.path, run.root,
                                                  ed.types[0].code if len(ed.types) == 1 else None)
            except Unresolvable as exc:
                run.out.add("warning", "not-found", f"{c.key}: not checked: it follows references to resources "
                            f"that are not in this input ({exc})", where, rule=c.key)
                continue
            except Exception as exc:
                run.once(f"{c.key}|{c.expression}", "warning", "not-supported", f"{c.key}: the expression could "
                         f"not be evaluated ({type(exc).__name__}: {show(str(exc))}); not checked", where, c.key)
                continue
            severity: Severity = "warning" if c.severity == "warning" else "error"
            if not holds and not faults:
                run.out.add(severity, "invariant", f"{c.key}: {c.human}", where, rule=c.key)
            for place in dict.fromkeys(p for p, _ in faults):  # a native check's faults, one finding a place
                said = "; ".join(t for p, t in faults if p == place)
                run.out.add(severity, "invariant", f"{c.key}: {c.human} ({said})", where + place, rule=c.key)

    @staticmethod
    def _limits(ed: ElementDef, limits: Limits, item: Any, where: str, run: _Run) -> None:
        try:
            broken = limits_check(limits, item)
        except Unchecked as exc:
            run.out.add("warning", "not-supported", f"{ed.path}: the bounds are not checked: {exc}", where,
                        rule=ed.id)
            return
        for text in broken:
            run.out.error("value", f"{ed.path}: {text}", where, rule=ed.id)

    def _binding(self, ed: ElementDef, item: Any, where: str, run: _Run,
                 binding: tuple[str, str] | None = None, label: str = "") -> None:
        """`item` against the element's binding, or against `binding` (one of its additional bindings)."""
        strength, valueset = binding or ed.binding or ("", "")
        if binding is None:
            self._known_codes(ed, item, where, run)
        if strength not in ("required", "extensible"):
            return
        found = codings(item)
        if found is None:
            return
        try:
            codes = self.terminology.codes(valueset, ed.package)
        except Exception as exc:
            run.once(valueset, "information", "not-supported", f"The value set {valueset} cannot be expanded "
                     f"here ({exc}); the binding of {ed.path} is not checked", where, ed.id)
            return
        if not found:
            return
        ok = any((system, code) in codes if system is not None else
                 code in self.terminology.bare_codes(valueset, ed.package) for system, code in found)
        if not ok:
            shown = ", ".join(f"{s}#{c}" if s else c for s, c in found)
            text = f"{ed.path}: {shown} is not in the value set {valueset} ({strength} binding{label})"
            if strength == "required":
                run.out.error("code-invalid", text, where, rule=ed.id)
            else:
                run.out.add("warning", "code-invalid", text, where, rule=ed.id)

    def _known_codes(self, ed: ElementDef, item: Any, where: str, run: _Run) -> None:
        """Codings of a bound element whose code system is loaded: the code must be in it (error), and a
        display must be one the code system gives the code (warning), compared without case and spacing."""
        if not isinstance(item, dict):
            return
        codings = item.get("coding") if "coding" in item else [item] if "system" in item else []
        for i, coding in enumerate(codings if isinstance(codings, list) else []):
            system, code = coding.get("system"), coding.get("code")
            if not isinstance(system, str) or not isinstance(code, str):
                continue
            found = self.terminology.lookup(system, code, ed.package)
            if found is None:
                continue
            at = f"{where}.coding[{i}]" if "coding" in item else where
            known, displays = found
            if not known:
                run.out.error("code-invalid", f"Unknown code {system}#{code}: the code system {system} does not "
                              "have it", f"{at}.code", rule=ed.id)
                continue
            display = coding.get("display")
            if isinstance(display, str) and displays and folded(display) not in {
                    folded(d) for d in displays | self._bound_displays(ed, system, code)}:
                expected = " or ".join(f"'{d}'" for d in sorted(displays))
                run.out.add("warning" if self.options.display_warnings else "error", "invalid",
                            f"Wrong display '{display}' for {system}#{code}: the code system gives {expected}",
                            f"{at}.display", rule=ed.id)

    def _bound_displays(self, ed: ElementDef, system: str, code: str) -> frozenset[str]:
        """The displays the element's bound value set gives the code (its translations), if it can be read."""
        try:
            return self.terminology.displays(ed.binding[1], ed.package).get((system, code), frozenset()) \
                if ed.binding is not None else frozenset()
        except LookupError:
            return frozenset()

    def _reference(self, ed: ElementDef, item: dict[str, Any], where: str, resource: dict[str, Any],
                   run: _Run) -> None:
        targets = [p for t in ed.types if t.code == "Reference" for p in t.target_profiles]
        ref = item.get("reference")
        if not targets or not isinstance(ref, str):
            return
        allowed: set[str] = set()
        for canonical in targets:
            prof = self.profile(canonical, ed.package)
            if prof is None and not canonical.startswith(CORE):
                # as a type's profile (`_unknown_type_profile`): an error where the packages are complete
                run.once(canonical, "error" if self._missing_indeed(canonical, ed.package) else "warning",
                         "not-found",
                         f"Profile {canonical} (a target profile of {ed.path}) is not in the loaded packages; the "
                         "reference is not checked against it", where, ed.id)
                return  # the types it allows are not known
            allowed.add(prof.type if prof is not None else canonical.rsplit("/", 1)[-1])
        if "Resource" in allowed:
            return
        found = resolve_reference(run.containers.get(id(resource), resource), ref) if ref.startswith("#") else \
            resolve_reference(run.root, ref) if ref.startswith("urn:") else None
        rtype = found.get("resourceType") if found else type_in_reference(ref) if self.options.rest_types else None
        if rtype is None and isinstance(run.root, dict) and run.root.get("resourceType") in HOLDERS:
            found = resolve_reference(run.root, ref)
            rtype = found.get("resourceType") if found else None
        if found is None and self.options.resolve_references and ("://" not in ref or ref.startswith("urn:")):
            found = resolve_reference(run.containers.get(id(resource), resource) if ref.startswith("#") else
                                      run.root, ref)
            if found is None:
                run.out.error("not-found", f"{ed.path}: the reference {ref} does not resolve to a resource in the "
                              "input", where, rule=ed.id)
                return
            rtype = found.get("resourceType")
        if rtype is not None and rtype not in allowed:
            run.out.error("structure", f"{ed.path}: a reference to {rtype} is not allowed here (allowed: "
                          f"{', '.join(sorted(allowed))})", where, rule=ed.id)
            return
        profiled = [c for c in targets if not c.startswith(CORE)]
        if profiled and found is None and isinstance(run.root, dict) and run.root.get("resourceType") in HOLDERS:
            found = resolve_reference(run.root, ref)
        if found is not None and profiled:
            # A target in the input is checked against the target profiles: it must conform to one of them. One
            # that declares one of them is validated against it by its own rights, and says so there if not.
            of_type = [c for c in profiled if (p := self.profile(c, ed.package)) is not None and p.type == rtype]
            declared = (found.get("meta") or {}).get("profile") if isinstance(found.get("meta"), dict) else None
            if of_type and isinstance(declared, list) and any(
                    self._derives(d, c, ed.package) for d in declared if isinstance(d, str) for c in of_type):
                return
            if of_type and not any(self._conforms(found, c, ed.package, run.root) for c in of_type):
                run.out.error("structure", f"{ed.path}: {ref} conforms to none of the target profiles "
                              f"{', '.join(of_type)}", where, rule=ed.id)
