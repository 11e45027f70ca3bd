"""Discriminator paths (`ElementDefinition.slicing.discriminator.path`) walked over raw JSON, for the validator.

A path is FHIRPath's simple subset: names, `extension('url')`, `resolve()`, `$this`; choice names are matched by
their typed JSON names (`value` finds `valueString`, with the type `String`).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from hub.fhir.fhirpath import resolve_reference

_STEP = re.compile(r"[^.(]+(?:\([^)]*\))?")


@functools.lru_cache(maxsize=4096)  # the paths are the loaded profiles' discriminators: few, met often
def steps(path: str) -> tuple[str, ...]:
    """A discriminator path's steps: `$this` dropped, `extension('http://…')` kept whole despite its dots."""
    return tuple(s for s in _STEP.findall(path) if s != "$this")


def step_parts(step: str) -> tuple[str, str | None]:
    if step.startswith("extension(") and step.endswith(")"):
        return "extension", step[len("extension("):-1].strip("'\"")
    return step.removesuffix("[x]"), None


def _named(v: dict[str, Any], name: str) -> list[tuple[Any, str | None]]:
    """A property's values, each with the type a choice name gives it (`contentString` → `string`)."""
    got = v.get(name)
    type_code: str | None = None
    if got is None:
        key = next((k for k in v if k.startswith(name) and k[len(name):][:1].isupper()), None)
        if key is None:
            return []
        got, type_code = v[key], key[len(name):]  # the type as the name spells it: `String`, `Attachment`
    items = got if isinstance(got, list) else [got]
    return [(g, type_code) for g in items if g is not None]


def typed_values_at(item: Any, path: str, root: Any) -> list[tuple[Any, str | None]]:
    """The values a discriminator path leads to from `item`; `resolve()` follows references within `root`."""
    values: list[tuple[Any, str | None]] = [(item, None)]
    for step in steps(path):
        if step == "resolve()":
            refs = [v.get("reference") if isinstance(v, dict) else v for v, _ in values]
            values = [(r, None) for r in (resolve_reference(root, ref) for ref in refs if isinstance(ref, str))
                      if r is not None]
            continue
        name, url = step_parts(step)
        nxt: list[tuple[Any, str | None]] = []
        for v, _ in values:
            if not isinstance(v, dict):
                continue
            found = _named(v, name)
            if url is not None:
                found = [(e, t) for e, t in found if isinstance(e, dict) and e.get("url") == url]
            nxt.extend(found)
        values = nxt
    return values


def values_at(item: Any, path: str, root: Any) -> list[Any]:
    parts = steps(path)
    if len(parts) == 1 and isinstance(item, dict) and (got := item.get(parts[0])) is not None:
        return [g for g in got if g is not None] if isinstance(got, list) else [got]  # `url`, `system`: at hand
    return [v for v, _ in typed_values_at(item, path, root)]
