"""The conversion's data: the field table (`mappings/medcom-carecommunication-oioxml.json`) and the code maps
(`mappings/oioxml-codes.json`, a ConceptMap). The converter reads them at run time so that every row of
MedCom's mapping tables is accounted for in data a reviewer can read, not hidden in code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hub.core.mappings import MAPPINGS, CodeMaps, code_maps

OIOXML = "urn:hub:oioxml:"  # the ConceptMap's source/target systems for OIOXML value lists


@dataclass(frozen=True)
class Field:
    """One OIOXML element the content of a letter is read from and written to."""

    name: str
    path: tuple[str, ...]  # element names below the letter (or the Envelope)
    envelope: bool = False
    only: str | None = None  # XDIS91 | XBIN01: the one letter kind that has it
    repeats: bool = False

    def applies(self, kind: str) -> bool:
        return self.only is None or self.only == kind


@dataclass(frozen=True)
class LetterKind:
    code: str  # XDIS91 | XBIN01
    element: str  # ClinicalEmail | BinaryLetter
    namespace: str


@dataclass(frozen=True)
class FieldTable:
    fields: tuple[Field, ...]
    kinds: dict[str, LetterKind]
    defaults: dict[str, Any]
    fhir: dict[str, Any]  # the FHIR side's systems, extensions and profiles
    rows: dict[str, dict[str, dict[str, str]]]  # direction → row name → what becomes of it


@cache
def field_table(path: Path = MAPPINGS / "medcom-carecommunication-oioxml.json") -> FieldTable:
    data = json.loads(path.read_text(encoding="utf-8"))
    fields = tuple(Field(f["name"], tuple((f.get("letter") or f["envelope"]).split("/")), "envelope" in f,
                         f.get("only"), bool(f.get("repeats"))) for f in data["fields"])
    kinds = {code: LetterKind(code, k["element"], k["namespace"]) for code, k in data["letters"].items()}
    return FieldTable(fields, kinds, data["defaults"], data["fhir"], data["rows"])


@cache
def oioxml_codes() -> CodeMaps:
    return code_maps(MAPPINGS / "oioxml-codes.json")
