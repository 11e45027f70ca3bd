"""Hospital stays as MedCom's HospitalNotifications reported them (`hub.store.encounters`).

`GET /fhir/Encounter?patient:identifier=system|value[&status=]` gives a searchset with each of the patient's
stays as its latest notification left it; `GET /fhir/Encounter/{id}` one stay. A search must name the patient:
the hub does not list every citizen's stays, and a client sees only the stays its organisation (by SOR or GLN)
sent or was sent a notification about; those from HL7 v2, whose senders name no organisation, are seen by all.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api.deps import base_url, fhir_response, refuse_unknown, services
from hub.core.errors import InvalidInput, NotFound
from hub.core.outcome import single
from hub.fhir.messaging import organisation_keys
from hub.fhir.search import split_token
from hub.store.encounters import EncounterStore
from hub.wiring import Services

router = APIRouter(prefix="/fhir/Encounter", tags=["encounters"])


def _viewer(request: Request) -> frozenset[str]:
    """The stays a client sees: those whose messages its organisation sent or was sent."""
    return organisation_keys(request.state.principal.organisation)
KNOWN = {"patient:identifier", "status", "_format"}


@router.get("", summary="A patient's hospital stays, as their latest notification left them")
async def search(request: Request, svc: Services = Depends(services)) -> Response:
    params = request.query_params
    refuse_unknown(request, KNOWN)
    system, value = split_token(params.get("patient:identifier") or "")
    if not system or not value:
        raise InvalidInput(single("required", "Name the patient: patient:identifier=system|value",
                                  "patient:identifier"))
    store = EncounterStore(svc.flow.engine)
    found = await run_in_threadpool(store.stays, f"{system}|{value}", None, params.get("status"), _viewer(request))
    base = base_url(request, svc.settings)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "searchset", "total": len(found),
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [{"fullUrl": f"{base}/fhir/Encounter/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in found],
    }
    return fhir_response(request, bundle)


@router.get("/{encounter_id}", summary="One hospital stay")
async def read(encounter_id: str, request: Request, svc: Services = Depends(services)) -> Response:
    found = await run_in_threadpool(EncounterStore(svc.flow.engine).stays, None, encounter_id, None,
                                    _viewer(request))  # another organisation's: 404
    if not found:
        raise NotFound(f"Encounter/{encounter_id}")
    return fhir_response(request, found[0])
