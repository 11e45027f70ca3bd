"""StructureDefinition snapshots compiled into element trees the profile validator walks.

One `ElementDef` per snapshot element: cardinality, types with their profiles and target profiles, fixed and
pattern values, binding, constraints, slicing with its slices, and the children by name. Element ids carry the
slice names (`Appointment.extension:responsible.value[x]`), so the tree is built from ids, not paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TypeRef:
    code: str
    profiles: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()
    elements: tuple[tuple[str, str], ...] = ()  # (profile, element id): a profile's element, not its root, is meant


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    severity: str  # error | warning
    human: str
    expression: str | None


@dataclass(frozen=True, slots=True)
class Slicing:
    discriminators: tuple[tuple[str, str], ...]  # (type, path): value | pattern | type | profile | exists
    rules: str  # open | closed | openAtEnd
    ordered: bool


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds an element's values keep: `(JSON name, value)` of minValue[x] / maxValue[x], and lengths."""

    min_value: tuple[str, Any] | None = None
    max_value: tuple[str, Any] | None = None
    min_length: int | None = None
    max_length: int | None = None


# What R4's ElementDefinition says only by extension: a string's minimum length, and a narrative's languages.
MIN_LENGTH = "http://hl7.org/fhir/StructureDefinition/minLength"
LANGUAGE_CONTROL = "http://hl7.org/fhir/StructureDefinition/narrative-language-control"
PROFILE_ELEMENT = "http://hl7.org/fhir/StructureDefinition/elementdefinition-profile-element"
# R5's ElementDefinition.mustHaveValue and .valueAlternatives, in R4 by their cross-version extensions: a
# primitive that must have a value, or whose value, when absent, must be replaced by one of these extensions.
MUST_HAVE_VALUE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.mustHaveValue"
ADDITIONAL_BINDING = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.binding.additional"
VALUE_ALTERNATIVES = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ElementDefinition.valueAlternatives"


def _extension(e: dict[str, Any], url: str, value: str) -> Any:
    return next((x.get(value) for x in e.get("extension", ()) if isinstance(x, dict) and x.get("url") == url), None)


@dataclass(slots=True)
class ElementDef:
    id: str
    path: str
    name: str  # the last path segment, e.g. `extension` or `value[x]`
    min: int
    max: int | None  # None: unbounded; 0: prohibited
    types: tuple[TypeRef, ...]
    fixed: tuple[str, Any] | None  # (JSON name of the fixed[x] element, its value)
    pattern: tuple[str, Any] | None
    binding: tuple[str, str] | None  # (strength, value set canonical)
    constraints: tuple[Constraint, ...]
    slicing: Slicing | None = None
    slice_name: str | None = None
    slices: list[ElementDef] = field(default_factory=list)
    children: dict[str, ElementDef] = field(default_factory=dict)
    content_reference: str | None = None
    package: str | None = None  # where the definition comes from: the context its canonicals resolve in
    base_max: int | None = None  # the max of the base definition (the structure check enforces 0..1 vs 0..*)
    limits: Limits | None = None  # minValue[x], maxValue[x], maxLength and the minLength extension
    language_control: str | None = None  # a Narrative's language sections (`hub.fhir.narrative`)
    must_have_value: bool = False  # a primitive with only extensions (no value) is not enough
    value_alternatives: tuple[str, ...] | None = None  # the extensions that may stand for an absent value
    additional_bindings: tuple[tuple[str, str], ...] = ()  # R5's additional bindings checked as bindings
    plan: Any = None  # the validator's walk plan, made on first use (`hub.fhir.validator`)


@dataclass(slots=True)
class Profile:
    url: str
    version: str | None
    type: str
    root: ElementDef
    package: str | None = None


def _typed(element: dict[str, Any], prefix: str) -> tuple[str, Any] | None:
    for key, value in element.items():
        if key.startswith(prefix) and key != prefix:
            return key, value
    return None


def _type(t: dict[str, Any]) -> TypeRef:
    profiles = tuple(t.get("profile", ()))
    elements = tuple((p, str(element)) for p, extra in zip(profiles, t.get("_profile") or (), strict=False)
                     if isinstance(extra, dict) and (element := _extension(extra, PROFILE_ELEMENT, "valueString")))
    return TypeRef(t["code"], profiles, tuple(t.get("targetProfile", ())), elements)


def _limits(e: dict[str, Any]) -> Limits | None:
    min_length = _extension(e, MIN_LENGTH, "valueInteger")
    limits = Limits(_typed(e, "minValue"), _typed(e, "maxValue"),
                    min_length if isinstance(min_length, int) else None,
                    e["maxLength"] if isinstance(e.get("maxLength"), int) else None)
    return None if limits == Limits() else limits


def _additional_bindings(binding: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """(strength, value set) of the additional bindings (R5, by their cross-version extension) whose purpose
    is a binding strength: `required` codes must come from the value set, `extensible` ones should."""
    found = []
    for x in (binding or {}).get("extension", ()):
        if isinstance(x, dict) and x.get("url") == ADDITIONAL_BINDING:
            parts = {p.get("url"): p for p in x.get("extension", ()) if isinstance(p, dict)}
            purpose = parts.get("purpose", {}).get("valueCode")
            valueset = parts.get("valueSet", {}).get("valueCanonical")
            if purpose in ("required", "extensible") and isinstance(valueset, str):
                found.append((purpose, valueset))
    return tuple(found)


def _max(raw: str) -> int | None:
    return None if raw == "*" else int(raw)


def _element(e: dict[str, Any], package: str | None, url: str = "") -> ElementDef:
    path: str = e["path"]
    max_raw = e.get("max", "*")
    binding = e.get("binding")
    valueset = binding.get("valueSet") if binding else None
    if isinstance(valueset, str) and valueset.startswith("#"):
        valueset = url + valueset  # a value set contained in the profile: `url#id`, a canonical's fragment
    return ElementDef(
        id=e.get("id") or path,
        path=path,
        name=path.rsplit(".", 1)[-1],
        min=int(e.get("min", 0)),
        max=_max(max_raw),
        types=tuple(_type(t) for t in e.get("type", ())),
        fixed=_typed(e, "fixed"),
        pattern=_typed(e, "pattern"),
        binding=(binding["strength"], valueset) if binding and valueset else None,
        constraints=tuple(Constraint(c["key"], c.get("severity", "error"), c.get("human", ""), c.get("expression"))
                          for c in e.get("constraint", ())),
        slicing=Slicing(tuple((d["type"], d["path"]) for d in e["slicing"].get("discriminator", ())),
                        e["slicing"].get("rules", "open"), bool(e["slicing"].get("ordered")))
        if "slicing" in e else None,
        slice_name=e.get("sliceName"),
        content_reference=e.get("contentReference"),
        package=package,
        base_max=_max(e.get("base", {}).get("max", max_raw)),
        limits=_limits(e),
        language_control=_extension(e, LANGUAGE_CONTROL, "valueCode"),
        must_have_value=_extension(e, MUST_HAVE_VALUE, "valueBoolean") is True,
        value_alternatives=tuple(x["valueCanonical"] for x in e.get("extension", ())
                                 if isinstance(x, dict) and x.get("url") == VALUE_ALTERNATIVES
                                 and isinstance(x.get("valueCanonical"), str)) or None,
        additional_bindings=_additional_bindings(binding),
    )


def _parent_id(element_id: str) -> tuple[str, bool]:
    """The id an element hangs under, and whether it is a slice of it (`A.b:s` is a slice of `A.b`)."""
    head, _, last = element_id.rpartition(".")
    if ":" in last:
        return (f"{head}.{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]), True
    return head, False


def compile_profile(sd: dict[str, Any], package: str | None = None) -> Profile:
    """The element tree of a StructureDefinition's snapshot; `package` is the one it was read from."""
    elements = sd.get("snapshot", {}).get("element", [])
    if not elements:
        raise ValueError(f"{sd.get('url')} has no snapshot")
    by_id: dict[str, ElementDef] = {}
    root: ElementDef | None = None
    for raw in elements:
        ed = _element(raw, package, str(sd.get("url", "")))
        by_id[ed.id] = ed
        if root is None:
            root = ed
            continue
        parent_id, is_slice = _parent_id(ed.id)
        parent = by_id.get(parent_id)
        if parent is None:
            continue  # a malformed snapshot: the element has no parent before it
        if is_slice and ed.slice_name is not None:
            parent.slices.append(ed)
        else:
            parent.children[ed.name] = ed
    assert root is not None
    for ed in by_id.values():  # `Questionnaire.item.item`: the children of the element it refers to
        target = by_id.get((ed.content_reference or "").lstrip("#"))
        if target is not None and not ed.children:
            ed.children = target.children
    return Profile(sd["url"], sd.get("version"), sd["type"], root, package)


def element_by_id(root: ElementDef, element_id: str) -> ElementDef | None:
    """The element of a compiled tree with that id (`Composition.section:codeA.code`), by its steps."""
    steps = element_id.split(".")
    if steps[0] != root.id:
        return None
    node: ElementDef | None = root
    for step in steps[1:]:
        name, _, slice_name = step.partition(":")
        node = node.children.get(name) if node is not None else None
        if node is not None and slice_name:
            node = next((s for s in node.slices if s.slice_name == slice_name), None)
        if node is None:
            return None
    return node


def elements_of(root: ElementDef) -> Iterator[ElementDef]:
    """Every element of a compiled tree once (the children of a `contentReference` are shared)."""
    seen: set[int] = set()
    todo = [root]
    while todo:
        ed = todo.pop()
        if id(ed) in seen:
            continue
        seen.add(id(ed))
        yield ed
        todo.extend([*ed.children.values(), *ed.slices])
