"""Helpers over the JSON values the validator walks: places ordered, codes and codings read, patterns matched,
the resources a Parameters holds, values shown in findings. Pure."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any


def parameter_resources(parameters: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The resources a Parameters holds in its parameters and their parts, each with its place."""
    for i, p in enumerate(parameters if isinstance(parameters, list) else []):
        if isinstance(p, dict):
            if isinstance(p.get("resource"), dict) and isinstance(p["resource"].get("resourceType"), str):
                yield f"{where}[{i}].resource", p["resource"]
            yield from parameter_resources(p.get("part"), f"{where}[{i}].part")


HOLDERS = frozenset({"Bundle", "Parameters"})  # resources whose references resolve among the resources they hold


@functools.lru_cache(maxsize=1024)
def location(expression: str | None) -> tuple[tuple[str, int], ...]:
    """An issue's place as a sort key: by element, list indexes as numbers (`entry[10]` after `entry[9]`)."""
    if not expression:
        return ()
    key = []
    for step in expression.split("."):
        name, _, index = step.partition("[")
        key.append((name, int(index.rstrip("]")) if index.rstrip("]").isdigit() else -1))
    return tuple(key)


def folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def code_of(value: Any) -> Any:
    return value.get("code") if isinstance(value, dict) else value


def matches_pattern(value: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: every element the pattern has is in the value, with the same content."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and matches_pattern(value[k], p) for k, p in pattern.items())
    if isinstance(pattern, list):
        if not isinstance(value, list):
            value = [value]
        return all(any(matches_pattern(v, p) for v in value) for p in pattern)
    return bool(value == pattern)


def codings(item: Any) -> list[tuple[str | None, str]] | None:
    """The (system, code) pairs a coded value carries; None for values that are not codes."""
    if isinstance(item, str):
        return [(None, item)]
    if not isinstance(item, dict):
        return None
    if "coding" in item or "text" in item:
        return [(c.get("system"), c["code"]) for c in item.get("coding", []) if isinstance(c, dict) and "code" in c]
    if "code" in item and isinstance(item["code"], str):
        return [(item.get("system"), item["code"])]
    return None


def json_type_of(item: dict[str, Any]) -> str:
    if "resourceType" in item:
        return str(item["resourceType"])
    if "reference" in item or "identifier" in item and len(item) <= 3:
        return "Reference"
    return ""


def type_in_reference(ref: str) -> str | None:
    parts = ref.split("/")
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2]
    return None


def show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 80 else text[:80] + "…"


DATE_LIKE = re.compile(r"\d{4}(-\d\d(-\d\d)?)?(T|$)|\d\d:\d\d")  # a date, dateTime or time, as its text starts
_DAY = re.compile(r"\d{4}-\d\d-\d\d")
_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(Z|[+-]\d\d:\d\d)")


def text_decides(a: str, b: str) -> bool:
    """Whether two strings compare by their text in FHIRPath as raw JSON has them, typed or not: neither looks
    like a date or time, or they are two full dates, or two dateTimes to the second written alike in
    the same time zone, whose text orders them as their times do (a Period's start and end)."""
    if not (DATE_LIKE.match(a) or DATE_LIKE.match(b)):
        return True
    if len(a) != len(b):
        return False
    if _DAY.fullmatch(a) and _DAY.fullmatch(b):
        return True
    x, y = _INSTANT.fullmatch(a), _INSTANT.fullmatch(b)
    return x is not None and y is not None and x.group(1) == y.group(1)
