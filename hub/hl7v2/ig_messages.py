"""The V2-to-FHIR IG's message sheets applied as data: which segments of a message become which resources.

A message sheet (`ADT_A01`, `SIU_S12`) says, for each segment of the message structure, which resource it becomes
(`Patient[1]`), by which segment sheet (`PID[Patient]`, applied by `hub.hl7v2.ig_mapping`), if which condition
holds (`IF NK1-3.1 NOT IN ("EMR", …)`), and how the resources refer to each other
(`RelatedPerson[2].patient.reference=Patient[1].id`). Read so:
- A row's segment sheet reads the segment it is named for (`MSH[Provenance-Operator]` reads MSH, though its row
  is EVN's). A target is made by the segment its first row reads, one resource an occurrence of that segment
  (each NK1 its RelatedPerson); the rows of other segments add to the first (PV2 to PV1's Encounter,
  NK1[Patient] to the Patient): lists extended, other elements where it has none.
- Only the rows whose segment sheet the caller applies (`applied`) are applied; `unapplied` lists the others.
- Where a sheet makes several targets of one type from one segment (ADT_A17's `Patient[1]` and `Patient[2]` from
  its two PIDs), each target is its occurrence of the segment, in the order the sheet names them.
- A reference names an element of the row's target and what it refers to (`Patient[2]`; `Patient[PID]`): that
  target's resource, else the first resource of that type; an element already there is left as it is.
The message's sheet is its structure's (MSH-9.3), else the one `mappings/hl7v2-message-sheets.json` names for
its trigger. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from hub.core.mappings import table
from hub.hl7v2.ig_mapping import IgMapping, condition_fault
from hub.hl7v2.ig_tables import MessageRow
from hub.hl7v2.message import Hl7Message

SHEETS = "hl7v2-message-sheets.json"  # in mappings/: the message sheet a trigger is read by
_REFERENCE = re.compile(r"^\w+(?:\[\w+\])?\.([\w.]+?)(?:\.reference)?=(\w+)(?:\[(\w+)\])?(?:\.id)?$")
Ident = Callable[[str, int], str]  # a target (`Patient[1]`) and its occurrence → the id of its resource


@dataclass
class Made:
    """What a message became: the resources of each target (`RelatedPerson[2]`: one an NK1), in the order the
    sheet names them, and the resources their rows made and refer to (Locations, Practitioners)."""

    targets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    made: dict[str, dict[str, Any]] = field(default_factory=dict)

    def first(self, target: str) -> dict[str, Any] | None:
        found = self.targets.get(target)
        return found[0] if found else None

    def of_type(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for resources in self.targets.values() for r in resources if r["resourceType"] == resource_type]


def sheet_for(message: Hl7Message, mapping: IgMapping) -> str | None:
    """The message sheet `message` is read by: its structure's, else its trigger's; None when there is none."""
    structure = message.get("MSH.9.3")
    if structure and mapping.tables.messages(structure) is not None:
        return structure
    found = table(SHEETS)["sheets"].get(f"{message.message_type}^{message.trigger}")
    return found if isinstance(found, str) else None


def unapplied(rows: list[MessageRow], applied: Collection[str]) -> list[MessageRow]:
    """The rows of a message sheet that are not applied: their segment sheet is not one the caller applies, or
    their condition or references cannot be read."""
    return [row for row in rows if row.sheet not in applied or _unreadable(row)]


def apply(message: Hl7Message, mapping: IgMapping, sheet: str, applied: Collection[str], ident: Ident) -> Made:
    """The resources `message` becomes by the message sheet `sheet`, each with the id `ident` gives it."""
    rows = [row for row in mapping.tables.messages(sheet) or [] if row.sheet in applied and not _unreadable(row)]
    out = Made()
    primary: dict[str, str] = {}  # a target → the segment whose occurrences make its resources
    made: dict[tuple[str, int], dict[str, Any]] = {}  # (target, occurrence of its primary segment) → resource
    numbered = _numbered(rows)
    for row in rows:
        segment = row.sheet.split("[", 1)[0]  # the segment the sheet reads (EVN's row may read MSH)
        first = primary.setdefault(row.target, segment)
        for number, fields in enumerate(message.segments(segment)):
            if number not in numbered.get((segment, row.target), (number,)):
                continue  # A17's Patient[2] is its second PID's
            if not mapping.holds(message, fields, row.condition):
                continue
            found = mapping.resources(message, fields, row.sheet, _type(row.target))
            for resource in found[1:]:
                out.made.setdefault(resource["id"], resource)
            key = (row.target, number if first == segment else 0)  # other segments add to the first
            if key not in made:
                made[key] = {"resourceType": _type(row.target), "id": ident(*key)}
            _merge(made[key], found[0])
    for (target, _), resource in sorted(made.items(), key=lambda item: item[0][1]):
        out.targets.setdefault(target, []).append(resource)
    for row in rows:
        for path, rtype, index in _references(row.references):
            referred = out.targets.get(f"{rtype}[{index}]") or out.of_type(rtype)
            for resource in out.targets.get(row.target, []) if referred else []:
                _refer(resource, path, {"reference": f"urn:uuid:{referred[0]['id']}"}, mapping)
    return out


def _numbered(rows: list[MessageRow]) -> dict[tuple[str, str], tuple[int]]:
    """Where a sheet makes several targets of one type from one segment (ADT_A17: `Patient[1]` and `Patient[2]`
    from PID), the occurrence of the segment each is: the first target the first occurrence, and so on."""
    targets: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        found = targets.setdefault((row.sheet.split("[", 1)[0], _type(row.target)), [])
        if row.target not in found:
            found.append(row.target)
    return {(segment, target): (number,) for (segment, _), found in targets.items() if len(found) > 1
            for number, target in enumerate(found)}


def _type(target: str) -> str:
    return target.split("[", 1)[0].split("(", 1)[0]


def _merge(into: dict[str, Any], mapped: dict[str, Any]) -> None:
    for name, value in mapped.items():
        if isinstance(value, list) and isinstance(into.get(name), list):
            into[name].extend(v for v in value if v not in into[name])
        elif name not in into:
            into[name] = value


def _refer(resource: dict[str, Any], path: str, reference: dict[str, str], mapping: IgMapping) -> None:
    """The reference at `path` (`subject`, `target`: an array where the element repeats), unless the element is
    there already."""
    if path in resource or "." in path:
        return  # there already; or into an element of a list (`participant.actor`): which one, the sheet says not
    shaped = mapping.shape({"resourceType": resource["resourceType"], path: reference}, resource["resourceType"],
                           lambda item, _type: item)
    resource[path] = shaped[path]


def _references(text: str) -> list[tuple[str, str, str | None]]:
    """A row's references: (element path, type referred to, its index), each `A.path.reference=B[n].id`."""
    out = []
    for part in re.split(r"[;\n]", text):
        found = _REFERENCE.match(part.strip())
        if found is not None:
            out.append((found.group(1), found.group(2), found.group(3)))
    return out


def _unreadable(row: MessageRow) -> str | None:
    """Why a row cannot be read as it is written, or None."""
    if not re.fullmatch(r"[A-Z][A-Za-z]+\[\d+\]", row.target):
        return f"a target this reading does not know: {row.target}"
    if (fault := condition_fault(row.condition)) is not None:
        return fault
    if ":follow:" in row.identifier:
        return "a segment that follows another (`:follow:`): which occurrence, this reading does not know"
    parts = [p.strip() for p in re.split(r"[;\n]", row.references) if p.strip()]
    if any(_REFERENCE.match(p) is None for p in parts):
        return f"references this reading does not know: {row.references}"
    return None
