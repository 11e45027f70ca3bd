"""Where messages go: the routing table, from configuration (`HUB_ROUTES`, a JSON file).

A receiver is known by its SOR id and/or its GLN (the identifiers MedCom names organisations by) and has an
endpoint the hub delivers to. A route can say which events it takes (MedCom event codes; all when absent) and
can be closed for a while (its mailbox out of operation: senders get a transient error and send again later).

    {"receivers": [{"name": "Kommune X, hjemmepleje", "sor": "330461000016004", "gln": "5790001348120",
                    "endpoint": "https://x.example/fhir/$process-message",
                    "accepts": ["care-communication-message"], "open": true}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The outbox topic of a routed message: its stored raw bytes POSTed to the route's endpoint (hub.fhir.delivery).
DELIVER_TOPIC = "message.deliver"


@dataclass(frozen=True)
class Route:
    name: str
    endpoint: str
    keys: tuple[str, ...]  # `sor:…`, `gln:…`
    accepts: frozenset[str] | None = None  # event codes; None: every event
    open: bool = True

    def takes(self, event: str | None) -> bool:
        return self.accepts is None or (event is not None and event in self.accepts)


class RoutingError(ValueError):
    """The routing table cannot be read."""


@dataclass(frozen=True)
class RoutingTable:
    routes: tuple[Route, ...] = ()

    @classmethod
    def load(cls, path: Path | None) -> RoutingTable:
        """The table in `path` (none: an empty table, so every receiver is unknown)."""
        if path is None:
            return cls()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.from_json(data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RoutingError(f"routing table {path}: {exc}") from exc

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoutingTable:
        routes = []
        for r in data["receivers"]:
            keys = tuple(f"{kind}:{r[kind]}" for kind in ("sor", "gln") if r.get(kind))
            if not keys or not isinstance(r.get("endpoint"), str):
                raise ValueError(f"receiver {r.get('name')!r} needs a sor or gln, and an endpoint")
            accepts = frozenset(r["accepts"]) if r.get("accepts") is not None else None
            routes.append(Route(str(r.get("name") or keys[0]), r["endpoint"], keys, accepts, bool(r.get("open", True))))
        return cls(tuple(routes))

    def find(self, keys: tuple[str, ...]) -> Route | None:
        """The route for an organisation known by `keys` (SOR first, then GLN)."""
        for key in keys:
            for route in self.routes:
                if key in route.keys:
                    return route
        return None
