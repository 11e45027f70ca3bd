"""VANS in: `POST /medcom/vans` takes a MedCom FHIR message in its VANSEnvelope (`hub.flows.vans`) and
answers in a VANSEnvelope: the message's Acknowledgement wrapped, or a VANS receipt ("Modtaget korrekt",
"Ukendt type", "Ukendt modtager"); 400 with an OperationOutcome for an envelope that cannot be read.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api.deps import read_body, services
from hub.medcom.vans import VANS_MEDIA_TYPE
from hub.wiring import Services

router = APIRouter(prefix="/medcom", tags=["vans"])


@router.post("/vans", summary="Receive a FHIR message in a VANS envelope; answer in a VANS envelope")
async def receive_vans(request: Request, svc: Services = Depends(services)) -> Response:
    body = await read_body(request, svc.settings.max_body_bytes)
    done = await run_in_threadpool(svc.vans.receive, body, request.headers.get("content-type"))
    headers = {"X-Duplicate-Message": "true"} if done.duplicate else None
    return Response(done.body, status_code=done.status, media_type=VANS_MEDIA_TYPE, headers=headers)
