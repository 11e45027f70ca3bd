"""The V2-to-FHIR IG's segment and data-type sheets applied as data: a segment becomes a resource's elements.

Each sheet row says: this field (segment sheets, `PID-5`) or component (data-type sheets, `XPN.1`), if its
condition holds, goes to this FHIR element (`name[1]`, `[1].family`, `extension[1].valueString`), through this
data-type sheet (`XPN[HumanName]`) or cast to this FHIR type, its code through this vocabulary map, or takes this
assigned value (`"home"`, `XTN.6+" "+XTN.7`, or in the target: `status="finished"`). Read the way the IG's own
tooling reads them:
- A row applies to a value that is there (a field or component neither empty nor HL7's null).
- An index in a path (`identifier[2]`) names a group of the element: rows with the same index fill the same
  object; a field that repeats fills one object a repetition, in the group's place. A path that starts with an
  index (`[2].given`, in a data-type sheet) names a group of the element the sheet fills (a second HumanName).
- `$value` is the element itself. A data-type sheet fills the element a row names (`XPN[HumanName]` for `name`,
  `NM[Quantity-LengthOfStay]` for a Duration), but where that element is a primitive and the sheet fills a
  complex type, that element's parent (`FN[HumanName]` for `family`, `SAD[Address]` for `line[1-3]`). A
  primitive's extensions (`birthDate.extension[1].url`) go to `_birthDate`.
- A target that names a resource (`individual(Practitioner)`, or a row of type `Reference(Location)`) makes that
  resource by the row's data-type sheet and refers to it (`_made`); one into another resource's element
  (`location(Location.operationalStatus)`) is not applied.
- A data-type map the IG has no sheet for (`ID[Boolean]`, `DTM[DateTime]`) is a cast to the row's FHIR type;
  sheet names are matched without case (`DTM[DateTime]` is the sheet `DTM[dateTime]`).
- A code goes through the vocabulary map when the row names one (`Yes/NoIndicator` is the sheet
  `YesNoIndicator`); a code the map does not list is not a FHIR code, and a `code` element then stays empty.
- Conditions: `VALUED`, `NOT VALUED` (with or without `IS`) or `DOES NOT EXIST`, `IN (…)`, `NOT IN (…)`,
  `EQUALS "…"` / `= "…"` / `IS "…"`, `NOT EQUALS "…"` / `NOT "…"`, `LENGTH GREATER THAN n`, `LST.COUNT EQUALS n`
  / `GREATER THAN n`, `IS VALUED NOT EQUAL <field>`, `<field> OR <field> VALUED`, joined by AND.
  `IN <identifier registry>`: the hub's registry is its map of assigning authorities (`hub.hl7v2.adt.identifier`),
  which gives every identifier a system, so the row applies with the system it gives.
- The sheets do not say which elements repeat: `shape` (the R4 definitions, `StructureValidator.with_arrays`)
  makes each repeating element a JSON array.
A row this reading cannot apply (a condition it does not know, a path into another resource's element, `$this`)
is not applied; `unapplied` lists them, and the tests hold that list to the written reasons in `NOT_APPLIED`.
Where a sheet is plainly wrong (a typing error, a level of a location part of itself), `CORRECTED` says how the
hub reads the row, and why. Pure: the sheets come from `IgTables`.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from hub.hl7v2.ig_tables import IgTables, Row
from hub.hl7v2.message import COPENHAGEN, NULL, Hl7Message, hl7_time

Test = tuple[str, tuple[str, int, int | None] | None, Any]  # a condition's test: kind, what it names, its argument
Step = tuple[str, tuple[int, ...] | None]  # an element's name and, for a list, the key of its group
Path = tuple[Step, ...]
Registry = Callable[[Hl7Message, list[str]], str | None]  # a CX's components → its identifier system
# a resource made JSON-shaped by its type's definitions, each primitive passed through the function with its type
Shape = Callable[[dict[str, Any], str, Callable[[Any, str], Any]], dict[str, Any]]

_TERM = re.compile(r"\s+AND\s+(?:IF\s+)?")
_REF = r"([A-Z][A-Z0-9]{1,2})[-.](\d+)(?:\.(\d+))?"
_TESTS: list[tuple[re.Pattern[str], str]] = [(re.compile(f"^(?:{_REF} )?{body}$"), kind) for body, kind in (
    (r"(?:(?:IS )?NOT VALUED|DOES NOT EXIST)", "absent"), (r"(?:IS )?VALUED", "present"),
    (r'NOT IN \(([^)]*)\)', "not-in"), (r'IN \(([^)]*)\)', "in"), (r'(?:NOT EQUALS|NOT|!=) "([^"]*)"', "not-equals"),
    (r'(?:EQUALS|=|IS) "([^"]*)"', "equals"), (r"OR " + _REF + " VALUED", "either"),
    (r"LENGTH GREATER THAN (\d+)", "longer"), (r"LST\.COUNT EQUALS (\d+)", "count"),
    (r"LST\.COUNT GREATER THAN (\d+)", "more"), (r"IS VALUED NOT EQUAL " + _REF, "differs"),
    (r"IN http\S*identifier-registry\S*", "registered"))]
_LITERAL = re.compile(r'^(.*?)="([^"]*)"$')  # `status="finished"`: the target with its value
_MAKES = re.compile(r"^(.*?)\(([A-Z][A-Za-z]+)(?:\[(\d+)\])?\)$")  # `individual(Practitioner)`, `(Location[6])`
_TERM_OF = r'(?:"[^"]*"|[A-Z][A-Z0-9]{1,2}\.\d+)'  # a literal or a component, in an assignment
_EXPRESSION = re.compile(rf"^\s*{_TERM_OF}(?:\s*\+\s*{_TERM_OF})*\s*$")
_TYPED = {"decimal", "integer", "positiveInt", "unsignedInt", "boolean", "date", "dateTime", "instant"}
_REFERENCE = re.compile(r"^Reference\(([A-Z][A-Za-z]+)\)$")
_MADE = uuid.UUID("5f1d2c7e-8a41-4b9e-b3f0-2c6d9e4a7b15")  # the namespace of the made resources' ids
_STEP = re.compile(r"^([A-Za-z$][\w$-]*)?(?:\[(\d+)(?:-(\d+))?\])?$")
_ELEMENT = re.compile(r"^[a-z][A-Za-z0-9]*$")


class Unapplied(ValueError):
    """A row this reading of the sheets does not apply."""


# Rows the hub does not apply, with the reason (sheet, source, target): what `unapplied` must find, no more.
NOT_APPLIED: dict[tuple[str, str, str], str] = {
    ("CX[Identifier]", "CX.4", "assigner(Organization)"): "an Organization for the assigning authority: the hub "
    "names it by the identifier's system (its registry: CPR, SOR, a hospital's own)",
    ("PID[Patient]", "PID-21", "$this"): "a RelatedPerson of its own (the mother), outside the Patient",
    ("XPN[String]", "XPN.1", "$this"): "the mother's maiden name as one string: the sheet says in prose only "
    "how to join its parts (`/concatenate according to XPN.11/`)",
    ("XAD[Address]", "XAD.7", "extension[2].uri"): "a defect of the sheet: Extension has `url`, not `uri`; the "
    "rows beside it (`valueCodeableConcept.coding.value`) name no element `value` either",
    ("XAD[Address]", "XAD.7", "extension[2].valueCodeableConcept.coding.value"): "a defect of the sheet (above)",
    ("XAD[Address]", "XAD.7", "extension[2].valueCodeableConcept.coding.system"): "a defect of the sheet (above)",
    ("XTN[ContactPoint]", "XTN.3", "system.extension-data-absent-reason"): "a defect of the sheet: no such "
    "element (the data-absent-reason extension on `system`)",
    ("PID[Patient]", "PID-19", "identifier[4].system"): "the US social security number: not a Danish identifier",
    ("PID[Patient]", "PID-19", "identifier[4].type.coding.code"): "the US social security number (above)",
    ("PID[Patient]", "PID-19", "identifier[4].type.coding.system"): "the US social security number (above)",
    ("PID[Patient]", "PID-19", "identifier[4].value"): "the US social security number (above)",
    ("PV1[Encounter]", "PV1-40", "location[1].location(Location.operationalStatus)"): "the bed's status, an element "
    "of the Location PV1-3 becomes: a row of one resource's sheet does not reach into another's",
    ("PV1[Encounter]", "PV1-53", "episodeOfCare(EpisodeOfCare[1].extension.url)"): "an EpisodeOfCare of its own, "
    "its elements written into it from here: the hub keeps no episodes of care",
    ("PV1[Encounter]", "PV1-53", "episodeOfCare(EpisodeOfCare[1].extension.valueString)"): "(above)",
    ("PV1[Encounter]", "PV1-54", "episodeOfCare(EpisodeOfCare[1].identifier)"): "(above)",
    ("PV2[Encounter]", "PV2-12", "text.div"): "the visit's description as the Encounter's narrative: a narrative "
    "needs its status, which the sheet does not give, and is the resource's own summary, not one field",
    ("PL[Location]", "PL.1", "[4].location(Location.physicalType.coding.code)"): "the sheet gives no code for a "
    "point of care (`/extension??-poc/`)",
    ("PL[Location]", "PL.1", "[4].location(Location.physicalType.coding.system)"): "a system without its code "
    "(above)",
    ("PL[Location]", "PL.10", "[3].identifier[2]"): "a defect of the sheet: its condition (`PL3.NOT VALUED`)",
    ("PL[Location]", "PL.10", "[5].identifier[2]"): "a defect of the sheet: its condition (`PL.1 VALUE`)",
    ("PL[Location]", "PL.11", "[1-6].identifier[1].assigner(Organization)"): "an Organization for the assigning "
    "authority of every level's identifiers: as CX.4's",
    ("PL[Location]", "PL.11", "[1-6].identifier[2].assigner(Organization)"): "(above)",
    ("EI[Identifier-Organization]", "EI.2", "assigner(Organization[1].identifier[1].value)"): "the assigning "
    "authority as an Organization of its own, as CX.4's",
    ("EI[Identifier-Organization]", "EI.3", "assigner(Organization[1].identifier[2].value)"): "(above)",
    ("EI[Identifier-Organization]", "EI.4", "assigner(Organization[1].identifier[2].type)"): "(above)",
    ("MSH[MessageHeader]", "MSH-19", "language"): "the message's language: table 0296 is each site's own, and the "
    "IG's map (PrincipalLanguageOfMessage) gives no FHIR code for any of it",
    ("MSH[MessageHeader]", "MSH-17", "sender(Organization.address.country)"): "the sender's country, an element of "
    "the Organization MSH-4 becomes: a row of one resource's sheet does not reach into another's",
    ("NK1[Patient]", "NK1-30", "contact.organization[1](Organization.contact.name)"): "the contact person of the "
    "Organization NK1-13 becomes: a row of one resource's sheet does not reach into another's",
    ("NK1[Patient]", "NK1-31", "contact.organization[1](Organization.contact.telecom)"): "(NK1-30's)",
    ("NK1[Patient]", "NK1-32", "contact.organization[1](Organization.contact.address)"): "(NK1-30's)",
    ("SCH[Appointment]", "SCH-9", "minutesDuration[1]"): "SCH-9 is in SCH-10's units, minutes or not: the hub makes "
    "the end from the two (`hub.hl7v2.siu`)",
    ("SCH[Appointment]", "SCH-11", "$this"): "the timing (TQ) as the whole Appointment: the hub reads the start and "
    "end from SCH-11, TQ1 or AIS itself (`hub.hl7v2.siu`)",
    ("SCH[Appointment]", "SCH-12", "participant[1].type.coding.code"): "a code in words (`#placer contact#`): the "
    "participant-type system has none for a placer's or a filler's contact",
    ("SCH[Appointment]", "SCH-12", "participant[1].type.coding.system"): "a system without its code (above)",
    ("SCH[Appointment]", "SCH-16", "participant[2].type.coding.code"): "(SCH-12's)",
    ("SCH[Appointment]", "SCH-16", "participant[2].type.coding.system"): "(SCH-12's)",
    ("SCH[Appointment]", "SCH-26", "basedOn(ServiceRequest)"): "a ServiceRequest of its own, which no data-type "
    "sheet makes: the hub converts the scheduling, not the order",
    ("SCH[Appointment]", "SCH-27", "basedOn(ServiceRequest)"): "(SCH-26's)",
    ("AIS[Appointment]", "AIS-5", "participant.period.start"): "a time the sheet says to compute in words (the "
    "start plus a duration in its units): the hub computes the appointment's end so (`hub.hl7v2.siu`), not each "
    "participant's",
    ("AIS[Appointment]", "AIS-7", "participant.period.end"): "(AIS-5's)",
    ("AIG[Appointment]", "AIG-9", "participant.period.start"): "(AIS-5's)",
    ("AIG[Appointment]", "AIG-11", "participant.period.end"): "(AIS-5's)",
    ("AIL[Appointment]", "AIL-7", "participant.period.start"): "(AIS-5's)",
    ("AIL[Appointment]", "AIL-9", "participant.period.end"): "(AIS-5's)",
    ("AIP[Appointment]", "AIP-7", "participant.period.start"): "(AIS-5's)",
    ("AIP[Appointment]", "AIP-9", "participant.period.end"): "(AIS-5's)",
    ("AIG[Appointment]", "AIG-3", "participant.actor(Location.identifier)"): "an element of a resource of its own "
    "written from here; the hub names the resource AIG-3 gives by its identifier (`hub.hl7v2.siu`)",
}

_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
# Rows the hub reads otherwise, where the sheet is wrong: (sheet, source, target) → (what it reads instead, why).
CORRECTED: dict[tuple[str, str, str], tuple[dict[str, str], str]] = {
    ("DLN[Identifier]", "DLN.1", "type.coding.sytem"): ({"target": "type.coding.system"}, "a typing error"),
    ("PL[Location]", "PL.1", "[4].location(Location.mode)"): ({"target": "[4].mode"}, "the point of care's rows "
                                                              "name the Location's element as `location(Location.…)`, "
                                                              "the other levels' rows as the element itself"),
    ("PL[Location]", "PL.9", "[1].location(Location.description)"): ({"target": "[1].description"},
                                                                     "as PL.1's (above)"),
    ("PL[Location]", "PL.7", "[5].partOf.reference(Location[5])"): (
        {"target": "[5].partOf.reference(Location[6])"}, "the building is part of itself; read as part of the "
        "facility (PL.4, `[6]`), as each other level is part of the next"),
    ("PV2[Encounter]", "PV2-9", "extension[2].url"): (
        {"assignment": '"http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.plannedEndDate"'},
        "a typing error (`v\\5.0`), as PV2-8's"),
    ("PV2[Encounter]", "PV2-38", "extension[1].url"): ({"target": "extension[3].url"}, "PV2-8 fills `extension[1]`"),
    ("PV2[Encounter]", "PV2-38", "extension[1].valueCoding"): ({"target": "extension[3].valueCoding"}, "(above)"),
    ("PV1[Encounter]", "PV1-42", "location[4].status"): ({"assignment": '"reserved"'}, "the sheet writes PV1-42's "
                                                         "status, `reserved`, on the location's row, and none on "
                                                         "the status's (which would take the place's name)"),
    ("PV1[Encounter]", "PV1-11", "location[3].extension.valueCodeableConcept.coding.system"): (
        {"assignment": '"http://hl7.org/fhir/ValueSet/subject-location"'}, "a leading space: no URI"),
    ("DTM[dateTime]", "DTM.1", "$value"): ({"assignment": ""}, "its instruction in words is to convert the value "
                                                               "to a FHIR dateTime: the hub casts it"),
    ("SCH[Appointment]", "SCH-20", "participant[3].type[1].coding.code"): ({"assignment": '"enterer"'},
                                                                           "the sheet's literal without its quotes"),
    ("SCH[Appointment]", "SCH-20", "participant[3].type[1].coding.system"): (
        {"assignment": '"http://terminology.hl7.org/CodeSystem/provenance-participant-type"'}, "(SCH-20's code)"),
    ("MSH[MessageHeader]", "MSH-24", "source.endpoint.extension.url"): (
        {"assignment": f'"{_ABSENT}"'}, "the extension's page (`…/R4/extension-data-absent-reason.html`), not its URL"),
    ("MSH[MessageHeader]", "MSH-25", "destination[1].endpoint.extension.url"): ({"assignment": f'"{_ABSENT}"'},
                                                                                "(MSH-24's)"),
    ("HD[MessageHeader.source-endpoint]", "HD.3", "endpoint.extension[1].url"): ({"assignment": f'"{_ABSENT}"'},
                                                                                 "(MSH-24's)"),
    ("MSG[Code]", "MSG.2", "$this"): ({"target": "$value"}, "`$this` for the element itself, which the other "
                                                            "sheets write `$value`"),
    ("NM[Quantity-LengthOfStay]", "NM.1", "system"): ({"assignment": '"http://unitsofmeasure.org"'},
                                                      "UCUM's system is written without the closing `/` (drt-1)"),
}
_LISTED = {(sheet.lower(), source, target): why for (sheet, source, target), why in NOT_APPLIED.items()}
_CORRECTED = {(sheet.lower(), source, target): fix for (sheet, source, target), fix in CORRECTED.items()}


@dataclass(frozen=True)
class _Value:
    """A piece of a message: a field repetition (components by `^`), a component (sub-components by `&`) or a
    sub-component, as sent (escaped)."""

    message: Hl7Message
    raw: str
    level: int  # 0 repetition, 1 component, 2 sub-component

    def part(self, number: int) -> _Value:
        parts = self._parts
        return _Value(self.message, parts[number - 1] if len(parts) >= number else "", self.level + 1)

    @functools.cached_property
    def _parts(self) -> list[str]:
        if self.level >= 2:
            return [self.raw]
        separators = self.message.separators
        return self.raw.split(separators.component if self.level == 0 else separators.subcomponent)

    @property
    def text(self) -> str:
        """The first component's text (the code of a coded value), unescaped; '' for none or HL7's null."""
        return self.part(1).whole if self.level < 2 else self.whole

    @property
    def whole(self) -> str:
        return "" if self.raw in ("", NULL) else self.message.unescape(self.raw)


class IgMapping:
    """The sheets of `tables`, applied to messages; `registry` gives an identifier's system (the hub's map),
    `shape` makes the JSON's repeating elements arrays."""

    def __init__(self, tables: IgTables, registry: Registry, shape: Shape) -> None:
        self.tables = tables
        self.registry = registry
        self.shape = shape

    def resources(self, message: Hl7Message, fields: tuple[str, ...], sheet: str,
                  resource_type: str) -> list[dict[str, Any]]:
        """The resource a segment of `message` (its `fields`) becomes by the segment sheet `sheet`, followed by
        the resources its rows make and refer to (`participant[1].individual(Practitioner)`), each once."""
        made: dict[str, dict[str, Any]] = {}
        pairs = list(self._segment(message, fields, sheet, made))
        return [self.shape({"resourceType": resource_type, **_assemble(pairs)}, resource_type, _typed), *made.values()]

    def unapplied(self, sheet: str) -> dict[tuple[str, str, str], str]:
        """The rows of a segment sheet, and of the data-type sheets it leads to, that are not applied, with why
        (keyed by sheet, source and target as the sheets write them)."""
        out: dict[tuple[str, str, str], str] = {}
        todo, seen = [("segments", sheet)], set()
        while todo:
            kind, name = todo.pop()
            if (kind, name.lower()) in seen:
                continue
            seen.add((kind, name.lower()))
            for row in self.tables.rows(kind, name) or []:
                if not row.target:
                    continue
                why = listed(name, row) or _unapplicable(name, row) or self._without_data(name, row)
                if why:
                    out[(name, row.source, row.target)] = why
                elif row.datatype and self.tables.rows("datatypes", row.datatype) is not None:
                    todo.append(("datatypes", row.datatype))
        return out

    def _without_data(self, sheet: str, row: Row) -> str | None:
        """Why a row gives nothing for want of the IG's own data, or None: no data-type sheet to make the resource
        it names by, or a code that must come from a vocabulary map which maps no v2 code."""
        sub = self.tables.rows("datatypes", row.datatype) if row.datatype else None
        makes = _target(corrected(sheet, row).target)[2]
        if makes is not None:
            return f"no data-type sheet {row.datatype} to make the {makes[0]} by" \
                if makes[1] is None and sub is None else None
        if row.vocabulary and not self._vocabulary(row.vocabulary) and (row.fhir_type == "code" or sub is None):
            return f"the IG's vocabulary map {row.vocabulary} maps no v2 code (a table each site defines)"
        return None

    # --- applying ---------------------------------------------------------------------------------------------

    @functools.lru_cache(maxsize=512)  # noqa: B019 - the tables live as long as the process
    def _vocabulary(self, name: str) -> dict[str, Any]:
        """A row's vocabulary map (`Yes/NoIndicator` is the sheet `YesNoIndicator`, `Contact Role` `ContactRole`);
        empty when the IG has none by that name or it maps no v2 code."""
        try:
            return self.tables.concepts(name.replace("/", "").replace(" ", ""))
        except LookupError:
            return {}

    @functools.lru_cache(maxsize=512)  # noqa: B019 - the tables live as long as the process
    def _applied(self, kind: str, sheet: str) -> tuple[Row, ...]:
        """The rows of a sheet that are applied, in its order."""
        return tuple(row for row in self.tables.rows(kind, sheet) or [] if not _skipped(sheet, row))

    def _segment(self, message: Hl7Message, fields: tuple[str, ...], sheet: str,
                 made: dict[str, dict[str, Any]]) -> Iterator[tuple[Path, Any]]:
        for row in self._applied("segments", sheet):
            raw = fields[row.number] if len(fields) > row.number else ""
            repetitions = raw.split(message.separators.repetition) if raw else [""] if _when_absent(row) else []
            for r, repetition in enumerate(repetitions if row.repeats else repetitions[:1], 1):
                value = _Value(message, repetition, 0)
                if self._holds(row.condition, value, fields, value):
                    yield from self._row(sheet, row, value, fields, r if row.repeats else None, made)

    def _row(self, sheet: str, row: Row, value: _Value, fields: tuple[str, ...], repetition: int | None,
             made: dict[str, dict[str, Any]], within: _Value | None = None) -> Iterator[tuple[Path, Any]]:
        """One row of `sheet` on its value; `within`: the value of the data type whose sheet the row is in, which
        its assignment's components (`XTN.6`) are of."""
        if not value.whole and not _when_absent(row):
            return  # a row applies to a value that is there
        row = corrected(sheet, row)
        target, literal, makes = _target(row.target)
        if makes is None and row.datatype and (found := _REFERENCE.match(row.fhir_type)) is not None:
            makes = (found.group(1), None)  # `participant.actor[1]`, a Reference(Location) by `PL[Location]`
        path = _path(target, repetition)
        if makes is not None:
            if makes[1] is None:  # else a link between the resources a sheet makes: `_made` follows them
                reference = self._made(makes[0], row.datatype, value, fields, made)
                if reference is not None:
                    yield path, reference
            return
        rows = self.tables.rows("datatypes", row.datatype) if row.datatype else None
        if (row.assignment and rows is None) or literal:  # beside a sheet, an assignment is a note (AIP-4's)
            leaf = _assigned(row.assignment or f'"{literal}"', within or value)
            if leaf:
                yield path, _cast(leaf, row.fhir_type)
            return
        if row.vocabulary:
            coding = self._vocabulary(row.vocabulary).get(value.text)
            if coding is not None:
                yield path, _coded(coding, row.fhir_type)
                return
            if row.fhir_type == "code" or rows is None:
                return  # a code the map does not list is no FHIR code
        if rows is None:
            leaf = _cast(value.text if value.level < 2 else value.whole, row.fhir_type)
            if leaf is not None and leaf != "":
                yield path, leaf
            return
        if _fills_parent(row.datatype, row.fhir_type) and path:
            path = path[:-1]  # the sheet fills the element's parent (FN[HumanName] for `family`)
        for sub_path, leaf in self._sheet(row.datatype, value, fields, made):
            yield _join(path, sub_path), leaf

    def _sheet(self, sheet: str, value: _Value, fields: tuple[str, ...],
               made: dict[str, dict[str, Any]]) -> Iterator[tuple[Path, Any]]:
        """The rows of the data-type sheet `sheet` on `value`: paths within the element the sheet fills."""
        parts = value._parts
        for sub in self._applied("datatypes", sheet):
            if (len(parts) < sub.number or not parts[sub.number - 1]) and not _when_absent(sub):
                continue  # a row applies to a value that is there
            part = value.part(sub.number)
            if not self._holds(sub.condition, value, fields, part):
                continue
            if "identifier-registry" in sub.condition:
                system = self.registry(value.message, [value.part(n).whole for n in range(1, 6)]) \
                    if part.whole else None
                if system:
                    yield _path(_target(corrected(sheet, sub).target)[0], None), system
                continue
            yield from self._row(sheet, sub, part, fields, None, made, value)

    def _made(self, resource_type: str, sheet: str, value: _Value, fields: tuple[str, ...],
              made: dict[str, dict[str, Any]]) -> dict[str, str] | None:
        """A reference to the resource `value` becomes by the data-type sheet `sheet` (`XCN[Practitioner]`), kept
        in `made`. A sheet whose rows begin with a group (`PL[Location]`: `[1]` the bed, `[2]` the room, … `[6]`
        the facility) makes a resource a group, each `partOf` the nearest group its links lead to that is there;
        the reference is to the most specific (the groups are numbered from it: the links lead to higher numbers).
        Ids derive from the content: the same practitioner named twice is one resource."""
        pairs = list(self._sheet(sheet, value, fields, made)) if self.tables.rows("datatypes", sheet) else []
        if not pairs or not all(path and path[0][0] == "" for path, _ in pairs):
            return self._keep(resource_type, _assemble(pairs), made)
        groups: dict[int, list[tuple[Path, Any]]] = {}
        for path, leaf in pairs:
            groups.setdefault((path[0][1] or (1,))[0], []).append((path[1:], leaf))
        parents = self._links(sheet)
        references: dict[int, dict[str, str]] = {}
        for group in sorted(groups, reverse=True):
            content = _assemble(groups[group])
            parent, seen = parents.get(group), {group}
            while parent is not None and parent not in references and parent not in seen:
                seen.add(parent)
                parent = parents.get(parent)
            if parent in references:
                content["partOf"] = references[parent]
            if (reference := self._keep(resource_type, content, made)) is not None:
                references[group] = reference
        return references[min(references)] if references else None

    def _keep(self, resource_type: str, content: dict[str, Any], made: dict[str, dict[str, Any]]
              ) -> dict[str, str] | None:
        if not content:
            return None
        shaped = self.shape({"resourceType": resource_type, **content}, resource_type, _typed)
        rid = str(uuid.uuid5(_MADE, json.dumps(shaped, sort_keys=True)))
        made.setdefault(rid, {"resourceType": resource_type, "id": rid,
                              **{k: v for k, v in shaped.items() if k != "resourceType"}})
        return {"reference": f"urn:uuid:{rid}"}

    @functools.lru_cache(maxsize=64)  # noqa: B019 - the tables live as long as the process
    def _links(self, sheet: str) -> dict[int, int]:
        """The groups of a data-type sheet each group is part of (`[2].partOf.reference(Location[3])`)."""
        out = {}
        for row in self.tables.rows("datatypes", sheet) or []:
            target, _, makes = _target(corrected(sheet, row).target)
            path = _path(target, None) if _unapplicable(sheet, row) is None else ()
            if makes is not None and makes[1] is not None and path and path[0][0] == "" and path[0][1]:
                out[path[0][1][0]] = makes[1]
        return out

    def holds(self, message: Hl7Message, fields: tuple[str, ...], condition: str) -> bool:
        """Whether a message sheet's condition holds for a segment (its `fields`); another segment it names is
        that segment's first occurrence."""
        value = _Value(message, "", 0)
        return self._holds(condition, value, fields, value)

    def _holds(self, condition: str, value: _Value, fields: tuple[str, ...], own: _Value) -> bool:
        """Whether a row's condition holds; `own` is the row's own field or component (what a test without a
        field names: `HD.3 IF NOT VALUED`), `value` the value its data-type sheet reads."""
        if not condition:
            return True
        # "registered": decided by the registry where the system is made
        return all(any(kind == "registered" or _passes(kind, _lookup(ref, value, fields, own), argument, value, fields,
                                                       own) for kind, ref, argument in alternatives)
                   for alternatives in _terms(condition))


# --- conditions -------------------------------------------------------------------------------------------------

def condition_fault(condition: str) -> str | None:
    """Why a condition cannot be read, or None."""
    try:
        if condition:
            _terms(condition)
    except Unapplied as exc:
        return str(exc)
    return None


@functools.lru_cache(maxsize=1024)
def _terms(condition: str) -> tuple[tuple[Test, ...], ...]:
    """A condition's tests: terms joined by AND (`IF PID-11 VALUED AND …`), each one test or several joined by OR
    (`NOT VALUED OR NOT IN (…)`); a term in parentheses as without them."""
    out: list[tuple[Test, ...]] = []
    for term in _TERM.split(condition.strip()[3:].strip()):
        term = _unwrapped(term)
        try:
            out.append((_test(term),))
        except Unapplied:
            out.append(tuple(_test(_unwrapped(t)) for t in re.split(r"\s+OR\s+", term)))
    return tuple(out)


def _unwrapped(term: str) -> str:
    """A term without the parentheses around all of it."""
    term = term.strip()
    while term.startswith("(") and term.endswith(")"):
        depth = 0
        for i, c in enumerate(term):
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth == 0 and i < len(term) - 1:
                return term  # the first parenthesis closes before the end: not around all of it
        term = term[1:-1].strip()
    return term


def _test(term: str) -> Test:
    for pattern, kind in _TESTS:
        found = pattern.match(" ".join(term.split()))
        if found:
            segment, field, component = found.group(1), found.group(2), found.group(3)
            ref = (segment, int(field), int(component) if component else None) if segment else None
            return kind, ref, found.groups()[3:]
    raise Unapplied(f"a condition this reading does not know: {term}")


@functools.lru_cache(maxsize=4096)
def _when_absent(row: Row) -> bool:
    """A row whose condition is that its own field or component is not valued (`MSH-24 IF MSH-24 NOT VALUED AND
    …`, `HD.3 IF NOT VALUED`): it applies without a value, by its assignment."""
    own = re.fullmatch(r"([A-Z][A-Z0-9]{1,2})[-.](\d+)", row.source)
    if not row.condition or not row.assignment or own is None:
        return False
    try:
        terms = _terms(row.condition)
    except Unapplied:
        return False
    return any(kind == "absent" and (ref is None or ref == (own.group(1), int(own.group(2)), None))
               for alternatives in terms for kind, ref, _ in alternatives)


def _lookup(ref: tuple[str, int, int | None] | None, value: _Value, fields: tuple[str, ...],
            own: _Value) -> list[_Value]:
    """What a condition names: a field of the segment (`PID-11`, its repetitions; `PID-11.9`, a component of the
    first), a component of the value the data-type sheet reads (`XTN.3`), or without a name the row's own."""
    if ref is None:
        return [own]
    segment, number, component = ref
    if (not fields or fields[0] != segment) and len(segment) == 3 and (other := value.message.segments(segment)):
        fields = other[0]  # another segment of the message (a message sheet's `IF EVN-5 NOT VALUED`)
    if fields and fields[0] == segment:
        raw = fields[number] if len(fields) > number else ""
        repetitions = [_Value(value.message, r, 0) for r in raw.split(value.message.separators.repetition) if r]
        return [repetitions[0].part(component)] if component and repetitions else repetitions
    return [value.part(number)]


def _passes(kind: str, got: list[_Value], argument: Any, value: _Value, fields: tuple[str, ...],
            own: _Value) -> bool:
    texts = [g.whole for g in got if g.whole]
    first = texts[0] if texts else ""
    if kind == "absent":
        return not texts
    if kind == "present":
        return bool(texts)
    if kind in ("in", "not-in"):
        members = [c.strip().strip('"') for c in argument[0].split(",")]
        return (first in members) == (kind == "in")
    if kind in ("equals", "not-equals"):
        return bool(first == argument[0]) == (kind == "equals")
    if kind == "either":
        other = _lookup((argument[0], int(argument[1]), int(argument[2]) if argument[2] else None), value, fields,
                        own)
        return bool(texts) or any(o.whole for o in other)
    if kind == "longer":
        return len(first) > int(argument[0])
    if kind == "count":
        return len(texts) == int(argument[0])
    if kind == "more":
        return len(texts) > int(argument[0])
    other = _lookup((argument[0], int(argument[1]), int(argument[2]) if argument[2] else None), value, fields, own)
    return bool(texts) and first != next((o.whole for o in other if o.whole), "")


def _fills_parent(sheet: str, fhir_type: str) -> bool:
    """Whether a data-type sheet fills the parent of a row's element: the element a primitive (`family`, a
    string), the sheet a complex type (`FN[HumanName]`)."""
    filled = sheet.partition("[")[2].rstrip("]")
    return fhir_type[:1].islower() and filled[:1].isupper() and filled.lower() != fhir_type.lower()


def _skipped(sheet: str, row: Row) -> bool:
    """A row that maps nothing, or that is not applied (`unapplied`)."""
    return not row.target or listed(sheet, row) is not None or _unapplicable(sheet, row) is not None


def listed(sheet: str, row: Row) -> str | None:
    """Why the hub does not apply a row (`NOT_APPLIED`; sheet names without case, as the sheets name each other)."""
    return _LISTED.get((sheet.lower(), row.source, row.target))


@functools.lru_cache(maxsize=4096)  # asked for each value a row applies to
def corrected(sheet: str, row: Row) -> Row:
    """The row as `CORRECTED` reads it where the sheet is wrong."""
    found = _CORRECTED.get((sheet.lower(), row.source, row.target))
    return replace(row, **found[0]) if found else row  # type: ignore[arg-type]  # text fields only


@functools.lru_cache(maxsize=4096)
def _target(target: str) -> tuple[str, str, tuple[str, int | None] | None]:
    """A target as its path, the value it assigns (`status="finished"`) and the resource it makes and refers to
    (`individual(Practitioner)`: Practitioner; `partOf.reference(Location[6])`: the sheet's sixth group)."""
    literal = ""
    if (found := _LITERAL.match(target)) is not None:
        target, literal = found.group(1), found.group(2)
    if (found := _MAKES.match(target)) is not None:
        return found.group(1), literal, (found.group(2), int(found.group(3)) if found.group(3) else None)
    return target, literal, None


@functools.lru_cache(maxsize=4096)
def _unapplicable(sheet: str, row: Row) -> str | None:
    """Why this reading cannot apply a row, or None."""
    if row.condition:
        try:
            _terms(row.condition)
        except Unapplied as exc:
            return str(exc)
    fixed = corrected(sheet, row)
    if fixed.assignment and not fixed.datatype and not _EXPRESSION.match(fixed.assignment):
        return f"an instruction in words, not a value: {fixed.assignment}"
    target, _, makes = _target(fixed.target)
    if makes is not None and makes[1] is None and not row.datatype:
        return f"a {makes[0]} of its own, and no data-type sheet to make it by: {row.target}"
    for step in target.split("."):
        found = _STEP.match(step)
        if found is None or (found.group(1) and found.group(1) != "$value" and not _ELEMENT.match(found.group(1))):
            return f"a path into another resource or no FHIR element: {row.target}"
    return None


# --- values -----------------------------------------------------------------------------------------------------

def _assigned(assignment: str, value: _Value) -> str:
    """An assigned value: a literal (`"home"`) or literals and components joined by `+` (`XTN.6+" "+XTN.7`);
    empty when a component it joins is."""
    terms = re.findall(r'"[^"]*"|[A-Z][A-Z0-9]{1,2}\.\d+', assignment)
    parts = [t[1:-1] if t.startswith('"') else value.part(int(t.split(".")[1])).whole for t in terms]
    return "" if any(not p and not t.startswith('"') for p, t in zip(parts, terms, strict=True)) else "".join(parts)


def _coded(coding: Any, fhir_type: str) -> Any:
    if fhir_type in ("code", "string", "uri"):
        return coding.code
    if fhir_type == "boolean":
        return {"true": True, "false": False}.get(coding.code)
    if fhir_type == "Coding":
        return coding.json()
    return {"coding": [coding.json()]}


def _cast(text: str, fhir_type: str) -> Any:
    """A v2 value as a FHIR primitive of `fhir_type`; None when it is not one."""
    kind = fhir_type.lower()
    if kind == "date":
        return _date(text)
    if kind in ("datetime", "instant"):
        return _date_time(text)
    if kind == "boolean":
        return {"Y": True, "N": False}.get(text)
    if kind in ("integer", "positiveint", "unsignedint"):
        return int(text) if text.isdigit() and (kind != "positiveint" or int(text) > 0) else None
    if kind == "decimal":
        try:
            return float(text)
        except ValueError:
            return None
    return text


def _typed(item: Any, fhir_type: str) -> Any:
    """A value a row gave without a FHIR type (cast as text) in the JSON form of the type its element has: a number,
    a boolean, a v2 time as a FHIR date or dateTime. Text that is no such value stays as it is."""
    if not isinstance(item, str) or fhir_type not in _TYPED:
        return item
    found = _cast(item, fhir_type)
    if isinstance(found, float) and item.lstrip("-").isdigit():
        found = int(found)  # a decimal written without a fraction: `3`, not `3.0`
    return item if found is None else found


def _date(text: str) -> str | None:
    """A v2 DT/DTM's date, at its precision (`1901`, `1901-01`, `1901-01-01`)."""
    digits = text[:8]
    return "-".join(p for p in (digits[:4], digits[4:6], digits[6:8]) if p) \
        if digits.isdigit() and len(digits) in (4, 6, 8) else None


def _date_time(text: str) -> str | None:
    """A v2 DTM as a FHIR dateTime: a date alone at its precision, else the time in Danish time's offset."""
    digits = text.split("^")[0]
    if len(digits) <= 8:
        return _date(digits)
    moment = hl7_time(digits)
    return moment.astimezone(COPENHAGEN).isoformat() if isinstance(moment, datetime) else None


# --- paths ------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _path(target: str, repetition: int | None) -> Path:
    """A sheet's target as steps; the field's repetition goes into the first list step's group key."""
    steps: list[Step] = []
    for text in target.split("."):
        found = _STEP.match(text)
        assert found is not None  # `_unapplicable` let only such paths through
        name, index = found.group(1) or "", found.group(2)
        if name == "$value":
            continue
        key: tuple[int, ...] | None = (int(index),) if index else None
        if repetition is not None and repetition > 1 and key is not None and not any(k for _, k in steps):
            key = (*key, repetition)  # the first stays in the group's place: other fields' rows fill it too
        steps.append((name, key))
    return tuple(steps)


def _join(outer: Path, inner: Path) -> Path:
    """A data-type sheet's path inside the element a row fills: a leading index (`[2]`) groups that element."""
    if inner and inner[0][0] == "" and outer:
        name, key = outer[-1]
        return (*outer[:-1], (name, (*(key or (1,)), *(inner[0][1] or ()))), *inner[1:])
    return (*outer, *inner)


def _assemble(pairs: list[tuple[Path, Any]]) -> dict[str, Any]:
    """The (path, value) pairs as JSON; where two rows fill the same place (a defect of the sheet: FN.4 and FN.5
    both name `extension[3]`), the first stands."""
    root: dict[str, Any] = {}
    for path, leaf in pairs:
        node = root
        for depth, (name, key) in enumerate(path):
            end = depth == len(path) - 1
            if key is not None:
                groups = node.setdefault(name, {})
                if not isinstance(groups, dict) or (groups and not isinstance(next(iter(groups)), tuple)):
                    break  # the sheet put a single value where it also lists: the first stands
                if end:
                    groups.setdefault(key, leaf)
                    break
                node = groups.setdefault(key, {})
                if not isinstance(node, dict):
                    break
            elif end:
                if isinstance(node.get(name), dict):  # a primitive's extensions came first
                    node["_" + name] = node.pop(name)
                node.setdefault(name, leaf)
            else:
                child = node.get(name)
                if child is not None and not isinstance(child, dict):
                    name = "_" + name  # into a primitive: its extensions
                node = node.setdefault(name, {})
    return dict(_finished(root))


def _finished(node: Any) -> Any:
    """Groups become lists, in their keys' order; empty objects go, and so does an extension the rows gave a
    url but no value (PID-6's, whose value the IG describes in prose only)."""
    if isinstance(node, dict):
        if node and all(isinstance(k, tuple) for k in node):
            items = [_finished(node[k]) for k in sorted(node)]
            return [i for i in items if i not in ({}, None, "")]
        out = {k: v for k, v in ((k, _finished(v)) for k, v in node.items()) if v not in ({}, [], None, "")}
        return {} if set(out) == {"url"} else out
    return node
