"""`/fhir/Appointment`: book (POST), read (GET), move or cancel (PUT, PATCH), search.

The edge's job: keep the raw bytes, parse, check, and hand a canonical request to the booking flow; then
answer in the sender's format. Every refusal is an OperationOutcome with a 4xx.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import jsonpatch
import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api.deps import (
    BodyTooLarge,
    base_url,
    fhir_response,
    outcome_response,
    read_body,
    services,
)
from hub.core.errors import HubError, InvalidInput
from hub.core.model import BookingResult
from hub.core.outcome import Outcome, single
from hub.fhir import appointment as fa
from hub.fhir import io
from hub.fhir.search import parse_date, split_token
from hub.flows.booking import Inbound, Render
from hub.store import appointments as appointment_store
from hub.wiring import Services

router = APIRouter(prefix="/fhir/Appointment", tags=["Appointment"])
FORMATS = {"json": "fhir+json", "xml": "fhir+xml"}


def _renderer(appt: dict[str, Any]) -> Render:
    """How the flow turns a booking into the Appointment it stores and answers with."""
    return partial(fa.render, appt)


async def _receive(request: Request, svc: Services, operation: str) -> bytes:
    """Read the body; an oversize body is stored (its first bytes) and refused."""
    try:
        body = await read_body(request, svc.settings.max_body_bytes)
    except BodyTooLarge as exc:
        await run_in_threadpool(svc.flow.record_message, direction="in", channel="fhir-rest", format="unknown",
                                operation=operation, content_type=request.headers.get("content-type"),
                                raw=exc.head, verdict=exc.outcome.to_fhir(), status="rejected", http_status=413)
        raise
    return body


def _check(svc: Services, appt: dict[str, Any]) -> Outcome:
    """Structure first (400 when broken), then FUT's video-appointment profile and the hub's business rules
    (422 when broken; warnings are kept in the stored verdict)."""
    structure = svc.structure.check(appt, "Appointment")
    if not structure.ok:
        raise InvalidInput(structure, status=400)
    outcome = svc.rules.check(appt, structure)
    if not outcome.ok:
        raise InvalidInput(outcome, status=422)
    return outcome


def _accept(request: Request, svc: Services, body: bytes, operation: str,
            parsed: dict[str, Any] | None = None) -> tuple[dict[str, Any], Inbound]:
    """Parse and check. A refused message is stored here; an accepted one goes to the flow, which stores it
    in the same transaction as its effect. Returns (resource, the message's columns).

    Synchronous: the whole of a request's work runs in one worker thread (one hop from the event loop).
    """
    content_type = request.headers.get("content-type")
    kind = io.media_kind(content_type) or ("xml" if body.lstrip()[:1] == b"<" else "json")
    fields: Inbound = {"direction": "in", "channel": "fhir-rest", "format": FORMATS.get(kind, "unknown"),
                       "operation": operation, "content_type": content_type, "raw": body}
    try:
        appt = parsed if parsed is not None else io.parse(body, content_type)
        outcome = _check(svc, appt)
    except HubError as exc:
        svc.flow.record_message(**fields, verdict=exc.outcome.to_fhir(), status="rejected", http_status=exc.status)
        raise
    return appt, {**fields, "verdict": outcome.to_fhir(), "status": "accepted"}


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
    return fhir_response(request, result.resource, created_status if result.created else 200, headers)


@router.post("", status_code=201, summary="Book a video appointment")
async def create(request: Request, svc: Services = Depends(services)) -> Response:
    operation = "POST /fhir/Appointment"
    body = await _receive(request, svc, operation)

    def work() -> BookingResult:
        appt, inbound = _accept(request, svc, body, operation)
        req = fa.to_meeting_request(appt, fa.source_key(appt, request.headers.get("if-none-exist")))
        return svc.flow.book(req, _renderer(appt), inbound, fa.patient_search_keys(req))

    return _answer(request, svc, await run_in_threadpool(work), 201)


@router.get("/{appointment_id}", summary="Read an appointment")
async def read(appointment_id: str, request: Request, svc: Services = Depends(services)) -> Response:
    row = await run_in_threadpool(svc.flow.get, appointment_id)
    return fhir_response(request, row.resource, 200, {"ETag": f'W/"{row.version}"'})


def _update(request: Request, svc: Services, appointment_id: str, appt: dict[str, Any],
            inbound: Inbound) -> BookingResult:
    try:
        if appt.get("id") not in (None, appointment_id):
            raise InvalidInput(single("invalid", f"The body's id '{appt.get('id')}' is not {appointment_id}", "id"))
        row = svc.flow.get(appointment_id)
        if_match = request.headers.get("if-match")
        if if_match and if_match.strip() not in (f'W/"{row.version}"', f'"{row.version}"'):
            raise HubError(single("conflict", f"Version {row.version} is current, not {if_match}"), status=412)
    except HubError as exc:
        svc.flow.record_message(**{**inbound, "verdict": exc.outcome.to_fhir(), "status": "rejected",
                                   "http_status": exc.status})
        raise
    req = fa.to_meeting_request(appt, row.source_key)
    return svc.flow.update(appointment_id, req, _renderer(appt), inbound, fa.patient_search_keys(req))


@router.put("/{appointment_id}", summary="Move, change or cancel an appointment")
async def update(appointment_id: str, request: Request, svc: Services = Depends(services)) -> Response:
    operation = f"PUT /fhir/Appointment/{appointment_id}"
    body = await _receive(request, svc, operation)

    def work() -> BookingResult:
        appt, inbound = _accept(request, svc, body, operation)
        return _update(request, svc, appointment_id, appt, inbound)

    return _answer(request, svc, await run_in_threadpool(work), 200)


@router.patch("/{appointment_id}", summary="JSON Patch an appointment (e.g. status → cancelled)")
async def patch(appointment_id: str, request: Request, svc: Services = Depends(services)) -> Response:
    operation = f"PATCH /fhir/Appointment/{appointment_id}"
    body = await _receive(request, svc, operation)
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip()
    if content_type != "application/json-patch+json":
        raise InvalidInput(single("not-supported", "PATCH takes application/json-patch+json"), status=415)

    def work() -> BookingResult:
        row = svc.flow.get(appointment_id)
        try:
            patched = jsonpatch.apply_patch(row.resource, orjson.loads(body))
        except (orjson.JSONDecodeError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException,
                TypeError) as exc:
            outcome = single("invalid", f"The JSON Patch cannot be applied: {exc}")
            svc.flow.record_message(direction="in", channel="fhir-rest", format="json-patch", operation=operation,
                                    content_type=content_type, raw=body, verdict=outcome.to_fhir(),
                                    status="rejected", http_status=400)
            raise InvalidInput(outcome) from None
        appt, inbound = _accept(request, svc, body, operation, parsed=patched)
        return _update(request, svc, appointment_id, appt, inbound)

    return _answer(request, svc, await run_in_threadpool(work), 200)


@router.get("", summary="Search appointments: patient, date, status, identifier")
async def search(request: Request, svc: Services = Depends(services)) -> Response:
    params = request.query_params
    known = {"patient", "patient:identifier", "date", "status", "identifier", "_count", "_format", "_offset"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidInput(single("not-supported", f"Unknown search parameter(s): {', '.join(unknown)}"))
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
            return appointment_store.search(
                s, patient_references=refs, patient_identifiers=pids, dates=dates,
                statuses=list(_values(params.getlist("status"))),
                identifiers=[split_token(v) for v in _values(params.getlist("identifier"))],
                count=count, offset=offset)

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

