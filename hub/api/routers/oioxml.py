"""OIOXML in: `POST /medcom/oioxml` takes an `Emessage` and answers with MedCom's receipts
(`hub.flows.letter`): 200 with an Emessage of receipts (ISO-8859-1), 204 when the envelope asked for no
positive receipt and every letter was accepted, 400 with an OperationOutcome for a body that is not an Emessage
at all (there is no envelope to refer to). The same envelope again gets the same answer
(`X-Duplicate-Message: true`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from hub.api.deps import on_vdx_threads, read_body, services
from hub.flows.letter import RECEIPT_MEDIA_TYPE
from hub.wiring import Services

router = APIRouter(prefix="/medcom", tags=["oioxml"])


@router.post("/oioxml", summary="Receive an OIOXML Emessage; answer with MedCom's receipts")
async def receive_oioxml(request: Request, svc: Services = Depends(services)) -> Response:
    body = await read_body(request, svc.settings.max_body_bytes)
    done = await on_vdx_threads(request, svc.letters.receive, body, request.headers.get("content-type"))
    headers = {"X-Duplicate-Message": "true"} if done.duplicate else None
    if done.receipt is None:
        return Response(status_code=204, headers=headers)
    return Response(done.receipt, status_code=done.status, media_type=RECEIPT_MEDIA_TYPE, headers=headers)
