"""The HL7 V2-to-FHIR implementation guide's own tables (`hl7/v2-to-fhir/mappings/` in the standards store), read
as data: the vocabulary maps from HL7 v2 tables to FHIR codes (`codesystems/`), the segment and data-type sheets
(`segments/`, `datatypes/`) and the message sheets (`messages/`: which segment becomes which resource).

Why: HL7 publishes how a v2 code becomes a FHIR one (table 0004's patient class → Encounter.class, 0001's
administrative sex → Patient.gender, …); the hub applies those sheets as they are, as MedCom's sheets drive the
OIOXML converter, instead of a copy of its own. The sheets are CSV exports of the IG's spreadsheets: two header
rows, then one row per v2 code with its FHIR code, display and system. Rows without a v2 code list FHIR codes no
v2 code maps to; they are not read. The sheets are not regular about their columns (some have an empty column
between the FHIR code and its display, others none), so the FHIR side's code, display and system are found by the
second header row.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path("files") / "hl7" / "v2-to-fhir" / "mappings"  # in the standards store


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, **({"display": self.display} if self.display else {})}


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a segment or data-type sheet (`hub.hl7v2.ig_mapping` applies them)."""

    source: str  # `PID-5`, `XPN.1`
    number: int  # the field or component number
    repeats: bool  # the field may repeat (segment sheets)
    condition: str  # `IF …`, or ''
    target: str  # the FHIR element path, or '' where the IG maps nothing
    fhir_type: str
    datatype: str  # the data-type sheet (`XPN[HumanName]`), or ''
    vocabulary: str  # the vocabulary map, or ''
    assignment: str  # an assigned value, or ''


@dataclass(frozen=True, slots=True)
class MessageRow:
    """One row of a message sheet (`ADT_A01`): a segment of the message structure, if its condition holds,
    becomes (or adds to) a resource by a segment sheet (`hub.hl7v2.ig_messages` applies them)."""

    identifier: str  # `ADT_A01.NEXT_OF_KIN.NK1`, `ADT_A01:follow:PID.ROL`
    segment: str  # `NK1`
    condition: str  # `IF …`, or ''
    target: str  # `RelatedPerson[2]`
    sheet: str  # the segment sheet: `NK1[RelatedPerson]`
    references: str  # `RelatedPerson[2].patient.reference=Patient[1].id`, or ''


_SHEETS = {"segments": "HL7 Segment - FHIR R4_ ", "datatypes": "HL7 Data Type - FHIR R4_ ",
           "messages": "HL7 Message - FHIR R4_ "}
_NUMBER = re.compile(r"[-.](\d+)$")


class IgTables:
    """The IG's tables in `folder` (its `mappings/`); each sheet read once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def in_store(cls, store: Path) -> IgTables:
        return cls(store / FOLDER)

    @functools.lru_cache(maxsize=512)  # noqa: B019 - the tables live as long as the process
    def rows(self, kind: str, name: str) -> list[Row] | None:
        """The rows of a segment sheet (`kind` "segments", `PID[Patient]`) or data-type sheet ("datatypes",
        `XPN[HumanName]`; its name matched without case); None when the IG has no such sheet."""
        found = self._cells(kind, name, 17)
        if found is None:
            return None
        out = []
        for cells in found:
            number = _NUMBER.search(cells[1])
            if number is None:
                continue
            out.append(Row(cells[1], int(number.group(1)), cells[5] not in ("", "0", "1"), cells[6], cells[9],
                           cells[11], cells[14], cells[15], cells[16]))
        return out

    @functools.lru_cache(maxsize=64)  # noqa: B019 - the tables live as long as the process
    def messages(self, structure: str) -> list[MessageRow] | None:
        """The rows of the message sheet of a message structure (`ADT_A01`) that map a segment; None when the
        IG has no sheet for it."""
        found = self._cells("messages", structure, 12)
        if found is None:
            return None
        return [MessageRow(cells[1], cells[1].rsplit(".", 1)[-1], cells[6], cells[9], cells[10], cells[11])
                for cells in found if cells[10]]

    def _cells(self, kind: str, name: str, width: int) -> list[list[str]] | None:
        """A sheet's rows after its two header rows, each at least `width` cells, stripped; None when there is
        no such sheet."""
        path = self._index(kind).get(name.lower())
        if path is None:
            return None
        with path.open(newline="", encoding="utf-8") as sheet:
            found = list(csv.reader(sheet))[2:]
        return [[c.strip() for c in row] + [""] * (width - len(row)) for row in found]

    @functools.lru_cache(maxsize=4)  # noqa: B019
    def _index(self, kind: str) -> dict[str, Path]:
        prefix = _SHEETS[kind]
        return {p.name[len(prefix):].rsplit(" - ", 1)[0].lower(): p
                for p in sorted((self.folder / kind).glob(f"{prefix}*.csv"))}

    @functools.lru_cache(maxsize=128)  # noqa: B019 - the tables live as long as the process
    def concepts(self, name: str) -> dict[str, Coding]:
        """A vocabulary map by its name in the IG (`PatientClass[EncounterClass]`, `AdministrativeSex`): v2 code →
        FHIR coding; a v2 code the sheet maps to nothing is absent. LookupError when there is no such sheet."""
        found = sorted((self.folder / "codesystems").glob(f"HL7 Concept Map_ {_glob_escape(name)} - *.csv"))
        if not found:
            raise LookupError(f"the V2-to-FHIR IG has no vocabulary map {name} in {self.folder}")
        with found[0].open(newline="", encoding="utf-8") as sheet:
            rows = list(csv.reader(sheet))
        header = [c.strip() for c in rows[1]] if len(rows) > 1 else []
        # the FHIR side's columns, by the second header row: its Code, Display and Code System (after v2's)
        code = header.index("Code", 1) if "Code" in header[1:] else 6
        system = len(header) - 1 - header[::-1].index("Code System") if header.count("Code System") > 1 else 9
        display = header.index("Display", code) if "Display" in header[code:] else code + 1
        out: dict[str, Coding] = {}
        for row in rows[2:]:
            cells = [c.strip() for c in row] + [""] * (max(system, display) + 1 - len(row))
            if cells[0] and cells[code] and cells[system] and cells[0] not in out:
                out[cells[0]] = Coding(cells[system], cells[code], cells[display] or cells[code + 1] or None)
        return out


def _glob_escape(name: str) -> str:
    """A sheet's name in a glob pattern: its brackets literal (`PatientClass[EncounterClass]`)."""
    return name.replace("[", "[[]")
