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


class IgTables:
    """The IG's tables in `folder` (its `mappings/`); each sheet read once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def in_store(cls, store: Path) -> IgTables:
        return cls(store / FOLDER)

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
