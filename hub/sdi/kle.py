"""KLE, the municipalities' subject classification: the list in the standards store, and the emne a course of care
goes under (`mappings/kle-services.json`).

The list is OS2KLE (`kombit/KLE/os2kle/OS2KLE.txt`, one emne a line: `KLENummer='29.21.04':KLETitel='…':…`);
KL marks emner being retired with `[udgår <year>]` in their title (`kombit/KLE/kle-emneplan-derived.csv`). A
service's emne must be on the list and not retired, or the case index would be given a class it cannot show.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from hub.core.mappings import MAPPINGS, code_maps

OS2KLE = Path("files/kombit/KLE/os2kle/OS2KLE.txt")
DERIVED = Path("files/kombit/KLE/kle-emneplan-derived.csv")
LEGAL_BASIS = "urn:hub:legal-basis"
KLE = "urn:hub:kle"
_LINE = re.compile(r"KLENummer='(\d{2}\.\d{2}\.\d{2})':KLETitel='([^']*)'")
_RETIRED = re.compile(r"\[udgår (\d{4})\]")


class UnknownKle(LookupError):
    """A KLE number that is not on the list, or is being retired."""


@dataclass(frozen=True)
class Emne:
    number: str
    title: str
    retired_in: int | None = None  # the year KL retires it


class KleList:
    def __init__(self, emner: dict[str, Emne]) -> None:
        self.emner = emner

    @classmethod
    def load(cls, store: Path) -> KleList:
        emner = {m.group(1): Emne(m.group(1), m.group(2))
                 for line in (store / OS2KLE).read_text(encoding="utf-8").splitlines() if (m := _LINE.match(line))}
        with (store / DERIVED).open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                retired = _RETIRED.search(row.get("EmneTitel") or "")
                number = row.get("EmneNr") or ""
                if retired and number in emner:
                    emner[number] = Emne(number, emner[number].title, int(retired.group(1)))
        return cls(emner)

    def emne(self, number: str) -> Emne:
        found = self.emner.get(number)
        if found is None:
            raise UnknownKle(f"{number} is not on the KLE list")
        if found.retired_in is not None:
            raise UnknownKle(f"{number} ({found.title}) is being retired in {found.retired_in}")
        return found

    def for_service(self, legal_basis: str) -> Emne:
        """The emne of a service (a `urn:hub:legal-basis` code, e.g. `sundhedsloven-140`), checked on the list."""
        number = code_maps(MAPPINGS / "kle-services.json").get(LEGAL_BASIS, KLE, legal_basis)
        if number is None:
            raise UnknownKle(f"No KLE emne for the legal basis {legal_basis} (mappings/kle-services.json)")
        return self.emne(number)
