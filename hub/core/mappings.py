"""The hub's own mapping data (`mappings/`): code maps as FHIR ConceptMaps and the tables beside them.

The HL7 v2, OIOXML and SF1470 adapters all read code maps, so the folder and the ConceptMap reader live here,
once, in the kernel; each map is read once per process (the loaders are cached).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"


def table(name: str) -> Any:
    """A JSON table of the mappings folder, by file name."""
    return json.loads((MAPPINGS / name).read_text(encoding="utf-8"))


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
def code_maps(path: Path) -> CodeMaps:
    """The ConceptMap at `path` (usually `MAPPINGS / name`) as code maps."""
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
