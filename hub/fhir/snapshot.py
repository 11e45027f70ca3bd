"""A profile's snapshot made from its differential, as the HL7 tools make it, for profiles published without one.

Many profiles (most of HL7's own test profiles, and what authors write by hand) carry only a `differential`; the
validator walks snapshots. The snapshot starts as a copy of the base definition's (made the same way when the base
has none either), and each differential element, in order, then
- constrains the snapshot element with its id (`min`, `max`, `type`, `binding`, `fixed[x]`, `pattern[x]`,
  `slicing`, …; its `constraint`s and `mapping`s are added to the base's);
- or adds a slice (`Patient.identifier:mrn`): a copy of the sliced element and its children, placed after the
  slices before it, then constrained;
- or reaches into a data type the snapshot has not unfolded (`Patient.identifier.system`,
  `Observation.value[x].code`): the type's own elements are unfolded under the element first.
A choice element named by one of its types (`Observation.valueQuantity`) is `value[x]` restricted to that type.
Only constraints are made (`derivation: constraint`): a new type (`specialization`) is not a profile to apply.
A "specialization" of the very type it names (`type` Patient, base Patient) defines no new type: it is a
constraint misdeclared (hand-written profiles do that), made as one, as the HL7 tools do.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from hub.fhir.packages import PackageSet
from hub.fhir.structure import CORE

_APPENDED = ("constraint", "mapping")
_KEPT = ("id", "path")
_CHOICE = re.compile(r"^(?P<base>[a-z][A-Za-z0-9]*?)(?P<type>[A-Z][A-Za-z0-9]*)$")


class SnapshotError(ValueError):
    """The differential cannot be applied to its base (an element that is nowhere, a base that is missing)."""


def snapshot(sd: dict[str, Any], packages: PackageSet, context: str | None = None,
             _seen: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The snapshot elements of `sd`: its own when it has them, else made from its differential."""
    if sd.get("snapshot", {}).get("element"):
        return list(sd["snapshot"]["element"])
    if not sd.get("baseDefinition"):
        raise SnapshotError(f"{sd.get('url')} is not a constraint on a base definition")
    url = str(sd.get("url"))
    if url in _seen:
        raise SnapshotError(f"{url} is its own base")
    located = packages.locate(sd["baseDefinition"], "StructureDefinition", context)
    if located is None:
        raise SnapshotError(f"the base {sd['baseDefinition']} of {url} is not loaded")
    if sd.get("derivation", "constraint") != "constraint" and located[0].get("type") != sd.get("type"):
        raise SnapshotError(f"{url} is not a constraint on a base definition")
    elements = copy.deepcopy(snapshot(located[0], packages, located[1], _seen | {url}))
    differential = sd.get("differential", {}).get("element", [])
    for diff, element_id in zip(differential, _ids(differential), strict=True):
        _apply(elements, diff, element_id, packages, context)
    return elements


def _apply(elements: list[dict[str, Any]], diff: dict[str, Any], element_id: str, packages: PackageSet,
           context: str | None) -> None:
    wanted = _choice_ids(elements, element_id, diff)
    index = _find(elements, wanted)
    if index is None:
        parent, _, last = wanted.rpartition(".")
        if ":" in last:  # a new slice of `parent.name`
            index = _slice(elements, parent, last)
        else:
            _unfold(elements, parent, packages, context)
            index = _find(elements, wanted)
        if index is None:
            raise SnapshotError(f"the differential element {wanted} has no place in the snapshot")
    _merge(elements[index], diff)


def _ids(differential: list[dict[str, Any]]) -> list[str]:
    """The id of each differential element. One written without an id belongs to the slice opened last on any of
    its ancestors' paths (`Observation.category` with `sliceName` slice1, then `Observation.category.coding`, is
    `Observation.category:slice1.coding`), until that path comes again without a slice name."""
    open_slices: dict[str, str] = {}  # path → the slice its later descendants belong to
    ids = []
    for diff in differential:
        path = str(diff.get("path", ""))
        if diff.get("id"):
            ids.append(str(diff["id"]))
            continue
        for opened in [p for p in open_slices if p == path or p.startswith(path + ".")]:
            del open_slices[opened]  # the path again (a new slice, or the base element): its slice is closed
        parts = path.split(".")
        id_parts = [f"{part}:{open_slices[p]}" if (p := ".".join(parts[:i + 1])) in open_slices else part
                    for i, part in enumerate(parts)]
        if diff.get("sliceName"):
            id_parts[-1] += f":{diff['sliceName']}"
            open_slices[path] = str(diff["sliceName"])
        ids.append(".".join(id_parts))
    return ids


def _choice_ids(elements: list[dict[str, Any]], wanted: str, diff: dict[str, Any]) -> str:
    """`Observation.valueQuantity…` as `Observation.value[x]…` when the snapshot has the choice element; the
    type it names is then the element's type (set on `diff` when it names none)."""
    parts = wanted.split(".")
    for i in range(1, len(parts)):
        name, _, slice_name = parts[i].partition(":")
        match = _CHOICE.match(name)
        if match is None:
            continue
        choice = ".".join([*parts[:i], match["base"] + "[x]"])
        if _find(elements, choice) is None:
            continue
        parts[i] = match["base"] + "[x]" + (f":{slice_name}" if slice_name else "")
        if i == len(parts) - 1 and "type" not in diff:
            element = elements[_find(elements, choice) or 0]
            named = match["type"].lower()  # `String` names `string`, `Quantity` names `Quantity`
            known = [t for t in element.get("type", []) if str(t.get("code", "")).lower() == named]
            diff["type"] = known or [{"code": match["type"]}]
    return ".".join(parts)


def _find(elements: list[dict[str, Any]], wanted: str) -> int | None:
    return next((i for i, e in enumerate(elements) if e.get("id") == wanted), None)


def _descendants_end(elements: list[dict[str, Any]], index: int) -> int:
    """The index after the element at `index`, its children and its slices."""
    own = str(elements[index]["id"])
    end = index + 1
    while end < len(elements):
        other = str(elements[end]["id"])
        if not (other.startswith(own + ".") or other.startswith(own + ":")):
            break
        end += 1
    return end


def _slice(elements: list[dict[str, Any]], parent: str, last: str) -> int:
    """A new slice `parent.last` (`last` = `name:slice`, or `name:slice/reslice`): a copy of the sliced element
    and its children, after the slices before it."""
    name, _, slice_name = last.rpartition(":")
    sliced_id = f"{parent}.{name}" if parent else name
    sliced = _find(elements, sliced_id)
    if sliced is None:
        raise SnapshotError(f"the sliced element {sliced_id} is not in the snapshot")
    own_end = sliced + 1
    while own_end < len(elements) and str(elements[own_end]["id"]).startswith(sliced_id + "."):
        own_end += 1
    copies = copy.deepcopy(elements[sliced:own_end])
    for made in copies:
        made["id"] = f"{sliced_id}:{slice_name}" + str(made["id"])[len(sliced_id):]
    copies[0].pop("slicing", None)  # the slice is not sliced itself unless the differential says so
    copies[0]["min"] = 0  # the sliced element's minimum counts all its values: a slice needs none unless it says so
    copies[0]["sliceName"] = slice_name.rpartition("/")[2]
    at = _descendants_end(elements, sliced)
    elements[at:at] = copies
    return at


def _unfold(elements: list[dict[str, Any]], parent: str, packages: PackageSet, context: str | None) -> None:
    """Unfold the data type of `parent` (and of its ancestors, as far as needed) under it."""
    index = _find(elements, parent)
    if index is None:
        grand = parent.rpartition(".")[0]
        if not grand:
            return
        _unfold(elements, grand, packages, context)
        index = _find(elements, parent)
        if index is None:
            return
    if index + 1 < len(elements) and str(elements[index + 1]["id"]).startswith(parent + "."):
        return  # unfolded already
    element = elements[index]
    types = element.get("type", [])
    if len(types) != 1:
        return
    profiles = [*types[0].get("profile", []), CORE + str(types[0]["code"])]  # a type's profile, else the type
    type_sd = next((found for url in profiles if (found := packages.get(url, "StructureDefinition", context))),
                   None)
    if type_sd is None:
        return
    own = snapshot(type_sd, packages, context)
    root_path = str(own[0]["path"])
    children = []
    for child in own[1:]:
        made = copy.deepcopy(child)
        made["id"] = parent + str(child.get("id", child["path"]))[len(root_path):]
        made["path"] = str(element["path"]) + str(child["path"])[len(root_path):]
        children.append(made)
    elements[index + 1:index + 1] = children


def _merge(element: dict[str, Any], diff: dict[str, Any]) -> None:
    for key, value in diff.items():
        if key in _KEPT:
            continue
        if key in _APPENDED:
            known = {c.get("key") for c in element.get(key, [])}
            element[key] = [*element.get(key, []), *(c for c in value if c.get("key") not in known or
                                                     c.get("key") is None)]
        else:
            element[key] = copy.deepcopy(value)
