"""`/fhir/Appointment`: book (POST), read (GET), move or cancel (PUT, PATCH), search.

The router reads the body (refusing one over the size limit) and answers in the sender's format; the flow
(`hub.flows.appointment`) keeps the raw bytes, runs the edge step and books. Every refusal is an
OperationOutcome with a 4xx.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api.deps import (
    base_url,
    fhir_response,
    on_vdx_threads,
    outcome_response,
    read_body,
    refuse_unknown,
    services,
)
from hub.auth import scopes
from hub.core.errors import InvalidInput
from hub.core.model import BookingResult
from hub.core.outcome import Outcome, single
from hub.fhir.appointment import ROOM_EXTENSIONS
from hub.fhir.search import parse_date, split_token
from hub.store import appointments as appointment_store
from hub.wiring import Services

router = APIRouter(prefix="/fhir/Appointment", tags=["Appointment"])


def _viewer(request: Request) -> str:
    """The calling client's organisation (`hub.api.security.Gate` requires one)."""
    return str(request.state.principal.organisation)


def shown(request: Request, resource: dict[str, Any], owner: str | None) -> dict[str, Any]:
    """The appointment as this client may see it: the host PIN only for the owner's clients that may write it."""
    principal = request.state.principal
    writer = any(scopes.permits(principal.grants, f"system/Appointment.{i}") for i in "cu")
    if owner is not None and principal.organisation == owner and writer:
        return resource
    host = ROOM_EXTENSIONS["host_pin"][0]
    return {**resource, "extension": [e for e in resource.get("extension", []) if e.get("url") != host]}


def _answer(request: Request, svc: Services, result: BookingResult, created_status: int) -> Response:
    version = str(result.resource.get("meta", {}).get("versionId", "1"))
    location = f"{base_url(request, svc.settings)}/fhir/Appointment/{result.appointment_id}/_history/{version}"
    headers = {"Location": location, "ETag": f'W/"{version}"'}
    if result.notes:
        # Say what VDX's rules made the hub do; in full with `Prefer: return=OperationOutcome`.
        headers["X-Hub-Notes"] = " | ".join(result.notes).encode("ascii", "replace").decode()
        if "return=operationoutcome" in request.headers.get("prefer", "").lower():
            out = Outcome()
            for note in result.notes:
                out.add("information", "informational", note)
            return outcome_response(request, out, 200)
    return fhir_response(request, shown(request, result.resource, _viewer(request)),
                         created_status if result.created else 200, headers)


@router.post("", status_code=201, summary="Book a video appointment")
async def create(request: Request, svc: Services = Depends(services)) -> Response:
    operation = "POST /fhir/Appointment"
    body = await read_body(request, svc.settings.max_body_bytes)
    result = await on_vdx_threads(request, svc.appointments.create, body, request.headers.get("content-type"),
                                  operation, request.headers.get("if-none-exist"), _viewer(request))
    return _answer(request, svc, result, 201)


@router.get("/{appointment_id}", summary="Read an appointment")
async def read(appointment_id: str, request: Request, svc: Services = Depends(services)) -> Response:
    row = await run_in_threadpool(svc.flow.get, appointment_id, _viewer(request))  # another's: 404
    request.state.audit_patient = row.patient_identifier  # the read's audit event names whose it was
    return fhir_response(request, shown(request, row.resource, row.owner), 200, {"ETag": f'W/"{row.version}"'})


@router.put("/{appointment_id}", summary="Move, change or cancel an appointment")
async def update(appointment_id: str, request: Request, svc: Services = Depends(services)) -> Response:
    operation = f"PUT /fhir/Appointment/{appointment_id}"
    body = await read_body(request, svc.settings.max_body_bytes)
    result = await on_vdx_threads(request, svc.appointments.update, appointment_id, body,
                                  request.headers.get("content-type"), operation, request.headers.get("if-match"),
                                  _viewer(request))
    return _answer(request, svc, result, 200)


@router.patch("/{appointment_id}", summary="JSON Patch an appointment (e.g. status → cancelled)")
async def patch(appointment_id: str, request: Request, svc: Services = Depends(services)) -> Response:
    operation = f"PATCH /fhir/Appointment/{appointment_id}"
    body = await read_body(request, svc.settings.max_body_bytes)
    content_type = request.headers.get("content-type")
    if (content_type or "").split(";")[0].strip() != "application/json-patch+json":
        raise InvalidInput(single("not-supported", "PATCH takes application/json-patch+json"), status=415)
    result = await on_vdx_threads(request, svc.appointments.patch, appointment_id, body, content_type, operation,
                                  request.headers.get("if-match"), _viewer(request))
    return _answer(request, svc, result, 200)


@router.get("", summary="Search appointments: patient, date, status, identifier")
async def search(request: Request, svc: Services = Depends(services)) -> Response:
    params = request.query_params
    known = {"patient", "patient:identifier", "date", "status", "identifier", "_count", "_format", "_offset"}
    refuse_unknown(request, known)
    refs: list[str] = []
    pids: list[tuple[str | None, str]] = []
    for value in _values(params.getlist("patient")):
        if "|" in value:
            pids.append(split_token(value))
        else:
            refs.append(value if "/" in value else f"Patient/{value}")
    pids += [split_token(v) for v in _values(params.getlist("patient:identifier"))]
    try:
        count = min(max(int(params.get("_count", "50")), 0), 500)
        offset = max(int(params.get("_offset", "0")), 0)
    except ValueError:
        raise InvalidInput(single("invalid", "_count and _offset are whole numbers")) from None
    dates = [parse_date(v) for v in params.getlist("date")]

    def run() -> tuple[int, list[dict[str, Any]]]:
        with svc.sessions() as s:
            total, found = appointment_store.search(
                s, patient_references=refs, patient_identifiers=pids, dates=dates,
                statuses=list(_values(params.getlist("status"))),
                identifiers=[split_token(v) for v in _values(params.getlist("identifier"))],
                count=count, offset=offset, viewer=_viewer(request))  # another organisation's are left out
        return total, [shown(request, resource, owner) for resource, owner in found]

    total, resources = await run_in_threadpool(run)
    base = base_url(request, svc.settings)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": str(request.url)}],
        "entry": [{"fullUrl": f"{base}/fhir/Appointment/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in resources],
    }
    if offset + count < total:
        nxt = request.url.include_query_params(_offset=offset + count, _count=count)
        bundle["link"].append({"relation": "next", "url": str(nxt)})
    return fhir_response(request, bundle)


def _values(raw: list[str]) -> list[str]:
    return [v for item in raw for v in item.split(",") if v]

