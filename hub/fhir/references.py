"""What a FHIR Reference points at, whatever its form: relative, absolute, contained (`#id`) or logical.

The booking rules must treat `Patient/102`, `https://x/fhir/Patient/102`, `#p1` (a contained Patient) and
`{identifier: CPR}` alike, so they all go through `target_type` and `distinct_targets`.
"""

from __future__ import annotations

import re
from typing import Any

from hub.core.cpr import CPR_SYSTEM

_TYPED = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


def contained_by_id(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in resource.get("contained", []) if isinstance(c, dict) and "id" in c}


def target_type(ref: dict[str, Any] | None, contained: dict[str, dict[str, Any]]) -> str | None:
    """The resource type a Reference points at, or None when it cannot be told."""
    if not ref:
        return None
    literal = ref.get("reference")
    if isinstance(literal, str):
        if literal.startswith("#"):
            target = contained.get(literal[1:])
            return target.get("resourceType") if target else None
        m = _TYPED.search(literal)
        if m:
            return m.group(1)
    if isinstance(ref.get("type"), str):
        return str(ref["type"])
    ident = ref.get("identifier") or {}
    if ident.get("system") == CPR_SYSTEM:
        return "Patient"
    return None


def identifiers_of(ref: dict[str, Any] | None, contained: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The identifiers known for a reference's target: its logical identifier and a contained target's own."""
    if not ref:
        return []
    out = [ref["identifier"]] if isinstance(ref.get("identifier"), dict) else []
    literal = ref.get("reference")
    if isinstance(literal, str) and literal.startswith("#") and literal[1:] in contained:
        out.extend(i for i in contained[literal[1:]].get("identifier", []) if isinstance(i, dict))
    return out


def _keys(ref: dict[str, Any] | None, contained: dict[str, dict[str, Any]]) -> set[str]:
    if not ref:
        return set()
    keys: set[str] = set()
    literal = ref.get("reference")
    if isinstance(literal, str):
        m = _TYPED.search(literal)
        keys.add(m.group(0).lstrip("/") if m and not literal.startswith("#") else literal)
    for ident in identifiers_of(ref, contained):
        if ident.get("system") and ident.get("value"):
            keys.add(f"{ident['system']}|{ident['value']}")
    return keys


def distinct_targets(refs: list[dict[str, Any]], contained: dict[str, dict[str, Any]]) -> int:
    """How many different things a list of references points at."""
    groups: list[set[str]] = []
    for ref in refs:
        keys = _keys(ref, contained) or {f"anonymous:{id(ref)}"}
        merged = [g for g in groups if g & keys]
        for g in merged:
            groups.remove(g)
            keys |= g
        groups.append(keys)
    return len(groups)
