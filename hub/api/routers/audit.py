"""`GET /fhir/AuditEvent`: an organisation's own audit trail (`hub.api.audit`), newest first, as a searchset.

Parameters as FHIR's: `patient:identifier` (system|value), `entity` (a reference, e.g. Appointment/123), `agent`
(a client id), `date` (`geYYYY-MM-DD`, `ltYYYY-MM-DD`), `_count`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api import audit
from hub.api.deps import base_url, fhir_response, refuse_unknown, services
from hub.core.errors import InvalidInput
from hub.core.outcome import single
from hub.fhir.search import parse_date
from hub.wiring import Services

router = APIRouter(prefix="/fhir/AuditEvent", tags=["audit"])
KNOWN = {"patient:identifier", "entity", "agent", "date", "_count", "_format"}


@router.get("", summary="The organisation's own audit events")
async def search(request: Request, svc: Services = Depends(services)) -> Response:
    params = request.query_params
    refuse_unknown(request, KNOWN)
    since: datetime | None = None
    until: datetime | None = None
    for bound in (parse_date(v) for v in params.getlist("date")):
        if bound.prefix in ("ge", "gt"):
            since = bound.low if bound.prefix == "ge" else bound.high
        elif bound.prefix in ("le", "lt"):
            until = bound.high if bound.prefix == "le" else bound.low
        else:
            since, until = bound.low, bound.high
    try:
        count = min(max(int(params.get("_count", "100")), 0), 1000)
    except ValueError:
        raise InvalidInput(single("invalid", "_count is a whole number")) from None
    rows = await run_in_threadpool(request.app.state.audit.search, request.state.principal.organisation,
                                   patient=params.get("patient:identifier"), entity=params.get("entity"),
                                   agent=params.get("agent"), since=since, until=until, count=count)
    base = base_url(request, svc.settings)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(rows),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [{"fullUrl": f"{base}/fhir/AuditEvent/{r.id}", "resource": audit.resource(r, base),
                   "search": {"mode": "match"}} for r in rows],
    }
    return fhir_response(request, bundle)
