"""Invariants the validator checks natively instead of by FHIRPath, with the same meaning (README, "Validation
policy"): `ele-1` by the structure check, `ext-1` where an Extension is walked, and `dom-3`, `txt-1` and `txt-2`
here, each function saying what breaks its rule (nothing when it holds): `(place, text)`, the place relative to the
value checked (`.contained[0]`, or "" for the value itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from hub.fhir import narrative

Faults = list[tuple[str, str]]


def _contained_referenced(resource: Any) -> Faults:
    """dom-3, natively: each contained resource is referred to from elsewhere in the resource (a `#id` string:
    a reference, canonical or uri, or a narrative's `<img src="#id">` or `<a href="#id">`, as the HL7 validator
    counts them), or refers to its container (`#`). fhirpathpy cannot evaluate the official expression
    (`descendants().as(canonical)` needs the type of every primitive)."""
    contained = [(i, c) for i, c in enumerate(resource.get("contained", []) or []) if isinstance(c, dict)]
    if not contained:
        return []
    strings = set(_strings(resource))
    strings |= {link for text in strings if text.startswith("<div") and "#" in text
                for link in narrative.local_links(text)}
    # at the contained resource, as the HL7 validator places it
    return [(f".contained[{i}]", f"#{c.get('id')} is not referred to") for i, c in contained
            if f"#{c.get('id')}" not in strings and "#" not in set(_strings(c))]


def _txt_1(div: Any) -> Faults:
    return [("", f) for f in narrative.faults(div)] if isinstance(div, str) else []


def _txt_2(div: Any) -> Faults:
    return [] if narrative.keeps_txt_2(div) else [("", "the narrative is empty")]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


NATIVE_CHECKS: dict[str, Callable[[Any], Faults]] = {"dom-3": _contained_referenced, "txt-1": _txt_1,
                                                        "txt-2": _txt_2}
NATIVE_RULES = frozenset({"ele-1", "ext-1", *NATIVE_CHECKS})
