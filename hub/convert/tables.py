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

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
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


@dataclass(frozen=True)
class CodeMaps:
    """Code → code, by (source system, target system), from the ConceptMap's groups; a group's `unmapped`
    fixed code answers codes it does not list."""

    groups: dict[tuple[str, str], dict[str, str]]
    fallback: dict[tuple[str, str], str]

    def get(self, source: str, target: str, code: str | None) -> str | None:
        if code is None:
            return None
        found = self.groups.get((source, target), {}).get(code)
        return found if found is not None else self.fallback.get((source, target))

    def codes(self, source: str, target: str) -> dict[str, str]:
        return dict(self.groups.get((source, target), {}))


@cache
def code_maps(path: Path = MAPPINGS / "oioxml-codes.json") -> CodeMaps:
    concept_map = json.loads(path.read_text(encoding="utf-8"))
    groups: dict[tuple[str, str], dict[str, str]] = {}
    fallback: dict[tuple[str, str], str] = {}
    for group in concept_map["group"]:
        key = (group["source"], group["target"])
        codes = groups.setdefault(key, {})
        for element in group["element"]:
            for target in element["target"]:
                if target.get("equivalence") not in ("unmatched", "disjoint") and "code" in target:
                    codes[element["code"]] = target["code"]
        if group.get("unmapped", {}).get("mode") == "fixed":
            fallback[key] = group["unmapped"]["code"]
    return CodeMaps(groups, fallback)
