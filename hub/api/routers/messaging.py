"""`$process-message`: MedCom FHIR messages in, MedCom Acknowledgements back (`hub.flows.message`).

`POST /fhir/$process-message` takes a message Bundle (JSON or XML). The answer is 200 with the Acknowledgement
(`ok`, `transient-error` or `fatal-error`) for every message the hub can identify, the same Acknowledgement
again for a message sent twice; 202 with an OperationOutcome for an acknowledgement (acknowledgements are
not acknowledged), 422 when that acknowledgement cannot be routed; 400 with an OperationOutcome for a body
that is not a message at all (nothing to acknowledge).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api.deps import fhir_response, outcome_response, read_body, services
from hub.wiring import Services

router = APIRouter(prefix="/fhir", tags=["messaging"])


@router.post("/$process-message", summary="Receive a MedCom FHIR message; answer with its Acknowledgement")
async def process_message(request: Request, svc: Services = Depends(services)) -> Response:
    body = await read_body(request, svc.settings.max_body_bytes)
    done = await run_in_threadpool(svc.messages.process, body, request.headers.get("content-type"))
    headers = {"X-Duplicate-Message": "true"} if done.duplicate else None
    if done.ack is not None:
        return fhir_response(request, done.ack, done.status, headers)
    assert done.outcome is not None
    response = outcome_response(request, done.outcome, done.status)
    if headers:
        response.headers.update(headers)
    return response
