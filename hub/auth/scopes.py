"""SMART App Launch v2 scopes for system clients, and the hub's named scopes for what is not a FHIR resource.

A resource scope is `system/{Type|*}.{c,r,u,d,s in that order}` (SMART v2), e.g. `system/Appointment.cruds` or
`system/*.rs`; SMART v1's `.read`, `.write` and `.*` are read as `rs`, `cud` and `cruds`, as SMART v2 servers
do for older clients. Operations and messaging endpoints need a named scope (`hub/validate`,
`hub/process-message`, …; `hub/*` grants them all). What each endpoint needs is `hub.api.security`'s table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INTERACTIONS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_RESOURCE = re.compile(r"^system/(?P<type>[A-Za-z]+|\*)\.(?P<what>[cruds]+|read|write|\*)(\?.*)?$")
NAMED_PREFIX = "hub/"


@dataclass(frozen=True)
class Grant:
    resource: str  # a FHIR type, `*`, or a named scope
    interactions: str  # a subset of `cruds`; empty for a named scope


def parse(scopes: str) -> frozenset[Grant]:
    """The grants a token's `scope` claim (space-separated) gives; what is neither form is ignored (SMART:
    servers ignore scopes they do not know)."""
    grants = set()
    for scope in scopes.split():
        if scope.startswith(NAMED_PREFIX):
            grants.add(Grant(scope, ""))
            continue
        match = _RESOURCE.match(scope)
        if match is None:
            continue
        what = _V1.get(match["what"], match["what"])
        if "".join(sorted(what, key=INTERACTIONS.index)) != what or len(set(what)) != len(what):
            continue  # SMART v2: the letters in order, each once
        grants.add(Grant(match["type"], what))
    return frozenset(grants)


def permits(grants: frozenset[Grant], need: str) -> bool:
    """Whether `grants` allow `need`: `system/Type.x` (one interaction) or a named scope."""
    if need.startswith(NAMED_PREFIX):
        return any(g.resource in (need, "hub/*") for g in grants)
    match = _RESOURCE.match(need)
    if match is None or len(match["what"]) != 1:
        raise ValueError(f"not a single-interaction scope: {need}")
    return any(g.interactions and g.resource in (match["type"], "*") and match["what"] in g.interactions
               for g in grants)


def unknown(scopes: str) -> list[str]:
    """The scopes of `scopes` that are neither form (`hub clients add` refuses them)."""
    return [s for s in scopes.split() if not parse(s)]
