"""Where messages go: the routing table, from configuration (`HUB_ROUTES`, a JSON file).

A receiver is known by its SOR id and/or its GLN (the identifiers MedCom names organisations by) and has an
endpoint the hub delivers to. A route can say which events it takes (MedCom event codes; all when absent) and
can be closed for a while (its mailbox out of operation: senders get a transient error and send again later).
A route's `format` says what its receiver reads: `fhir` (the default) or `oioxml`; the hub converts between
them. `"envelope": "vans"` has FHIR messages delivered in MedCom's VANS envelope (`hub.medcom.vans`). The
table is also the hub's directory of organisations (the part of SOR it needs to convert: EAN ⇄ SOR, name,
phone); `organisations` lists those the hub converts for but never delivers to.

    {"receivers": [{"name": "Kommune X, hjemmepleje", "sor": "330461000016004", "gln": "5790001348120",
                    "endpoint": "https://x.example/fhir/$process-message", "format": "fhir",
                    "accepts": ["care-communication-message"], "open": true, "phone": "12345678"}],
     "organisations": [{"name": "Sygehus Y", "sor": "…", "gln": "…", "phone": "…"}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.core import jsonsetting

# The outbox topic of a routed message: its stored raw bytes POSTed to the route's endpoint (hub.delivery.http).
DELIVER_TOPIC = "message.deliver"


@dataclass(frozen=True)
class Organisation:
    """What the directory knows of an organisation (SOR's facts the conversion needs)."""

    name: str
    sor: str | None = None
    gln: str | None = None
    phone: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f"{kind}:{value}" for kind, value in (("sor", self.sor), ("gln", self.gln)) if value)


FORMATS = ("fhir", "oioxml")
ENVELOPES = ("vans",)


@dataclass(frozen=True)
class Route:
    name: str
    endpoint: str
    keys: tuple[str, ...]  # `sor:…`, `gln:…`
    accepts: frozenset[str] | None = None  # event codes; None: every event
    open: bool = True
    format: str = "fhir"  # what the receiver reads: fhir | oioxml
    organisation: Organisation | None = None
    envelope: str | None = None  # vans: FHIR messages go in a VANS envelope

    def takes(self, event: str | None) -> bool:
        return self.accepts is None or (event is not None and event in self.accepts)


class RoutingError(ValueError):
    """The routing table cannot be read."""


@dataclass(frozen=True)
class RoutingTable:
    routes: tuple[Route, ...] = ()
    organisations: tuple[Organisation, ...] = ()

    @classmethod
    def load(cls, source: str | Path | None) -> RoutingTable:
        """The table in `source`, a file's path or the JSON itself (none: an empty table, so every receiver is
        unknown)."""
        if source is None:
            return cls()
        where = "inline" if jsonsetting.is_inline(source) else str(source)
        try:
            return cls.from_json(jsonsetting.read(source))
        except (ValueError, KeyError, TypeError) as exc:
            raise RoutingError(f"routing table ({where}): {exc}") from exc

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoutingTable:
        routes = []
        for r in data["receivers"]:
            org = _organisation(r)
            if not isinstance(r.get("endpoint"), str):
                raise ValueError(f"receiver {r.get('name')!r} needs an endpoint")
            if r.get("format", "fhir") not in FORMATS:
                raise ValueError(f"receiver {org.name!r}: format must be one of {', '.join(FORMATS)}")
            if r.get("envelope") is not None and (r["envelope"] not in ENVELOPES or r.get("format", "fhir") != "fhir"
                                                  or not org.gln):
                raise ValueError(f"receiver {org.name!r}: envelope must be one of {', '.join(ENVELOPES)}, for a "
                                 "receiver that reads FHIR and has a GLN")
            accepts = frozenset(r["accepts"]) if r.get("accepts") is not None else None
            routes.append(Route(org.name, r["endpoint"], org.keys, accepts, bool(r.get("open", True)),
                                r.get("format", "fhir"), org, r.get("envelope")))
        organisations = tuple(_organisation(o) for o in data.get("organisations", []))
        return cls(tuple(routes), organisations)

    def organisation(self, keys: tuple[str, ...]) -> Organisation | None:
        """The directory entry of an organisation known by any of `keys` (routes first)."""
        route = self.find(keys)
        if route is not None:
            return route.organisation
        return next((o for key in keys for o in self.organisations if key in o.keys), None)

    def find(self, keys: tuple[str, ...]) -> Route | None:
        """The route for an organisation known by `keys` (SOR first, then GLN)."""
        for key in keys:
            for route in self.routes:
                if key in route.keys:
                    return route
        return None


def _organisation(entry: dict[str, Any]) -> Organisation:
    sor, gln = (str(entry[k]) if entry.get(k) else None for k in ("sor", "gln"))
    if sor is None and gln is None:
        raise ValueError(f"organisation {entry.get('name')!r} needs a sor or gln")
    name = str(entry.get("name") or (f"sor:{sor}" if sor else f"gln:{gln}"))
    return Organisation(name, sor, gln, str(entry["phone"]) if entry.get("phone") else None)
