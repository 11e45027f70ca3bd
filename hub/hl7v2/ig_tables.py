"""The HL7 V2-to-FHIR implementation guide's own tables (`hl7/v2-to-fhir/mappings/` in the standards store), read
as data: the vocabulary maps from HL7 v2 tables to FHIR codes (`codesystems/`).

Why: HL7 publishes how a v2 code becomes a FHIR one (table 0004's patient class → Encounter.class, 0001's
administrative sex → Patient.gender, …); the hub applies those sheets as they are, as MedCom's sheets drive the
OIOXML converter, instead of a copy of its own. The sheets are CSV exports of the IG's spreadsheets: two header
rows, then one row per v2 code with its FHIR code, display and system. Rows without a v2 code list FHIR codes no
v2 code maps to; they are not read. The sheets are not regular about the display's column (some have it in the
column after the code, others one further), so it is taken from the first of the two that has one.
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


_SHEETS = {"segments": "HL7 Segment - FHIR R4_ ", "datatypes": "HL7 Data Type - FHIR R4_ "}
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
        path = self._index(kind).get(name.lower())
        if path is None:
            return None
        with path.open(newline="", encoding="utf-8") as sheet:
            found = list(csv.reader(sheet))[2:]
        out = []
        for row in found:
            cells = [c.strip() for c in row] + [""] * (17 - len(row))
            number = _NUMBER.search(cells[1])
            if number is None:
                continue
            out.append(Row(cells[1], int(number.group(1)), cells[5] not in ("", "0", "1"), cells[6], cells[9],
                           cells[11], cells[14], cells[15], cells[16]))
        return out

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
            rows = list(csv.reader(sheet))[2:]
        out: dict[str, Coding] = {}
        for row in rows:
            cells = [c.strip() for c in row] + [""] * (10 - len(row))
            source, code, system = cells[0], cells[6], cells[9]
            if source and code and system and source not in out:
                out[source] = Coding(system, code, cells[8] or cells[7] or None)
        return out


def _glob_escape(name: str) -> str:
    """A sheet's name in a glob pattern: its brackets literal (`PatientClass[EncounterClass]`)."""
    return name.replace("[", "[[]")
