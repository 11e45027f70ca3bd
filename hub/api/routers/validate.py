"""`$validate`: the hub's validator over HTTP, for testers and for senders checking a message before sending.

`POST /fhir/$validate` and `POST /fhir/{type}/$validate` take a resource (JSON or XML), or a Parameters with
`resource` and optionally `profile` and `mode`; `profile` and `mode` may also be query parameters. As HAPI FHIR
serves it, `mode` is `create`, `update` or `delete`: an Appointment validated for `create` or `update` (or against
the video-appointment profile) gets exactly the booking's checks (`hub.fhir.edge.AppointmentEdge`), so `$validate`
and `POST /fhir/Appointment` never disagree; `update` needs the resource's id; `delete` says what a DELETE would
get (the hub cancels appointments, it does not delete them). The answer is 200 with the OperationOutcome whatever
the verdict (FHIR's operation semantics); a body that cannot be read at all, or an unknown mode, is a 400. Every
call is kept as a message with its verdict, like any other input.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api.deps import outcome_response, read_body, services
from hub.core.errors import HubError, InvalidInput
from hub.core.outcome import Outcome, single
from hub.fhir import io
from hub.fhir.videoappointment import PROFILE as VIDEO_PROFILE
from hub.wiring import Services

router = APIRouter(prefix="/fhir", tags=["validation"])


MODES = ("create", "update", "delete")


def _unwrap(resource: dict[str, Any], profiles: list[str], modes: list[str]) -> dict[str, Any]:
    """A Parameters carrying `resource` (and `profile`, `mode`) gives its resource; anything else is the
    resource."""
    if resource.get("resourceType") != "Parameters":
        return resource
    inner: dict[str, Any] | None = None
    for p in resource.get("parameter", []):
        if not isinstance(p, dict):
            continue
        if p.get("name") == "resource" and isinstance(p.get("resource"), dict):
            inner = p["resource"]
        elif p.get("name") in ("profile", "mode"):
            value = p.get("valueUri") or p.get("valueCanonical") or p.get("valueString") or p.get("valueCode")
            if isinstance(value, str):
                (profiles if p["name"] == "profile" else modes).append(value)
    return inner if inner is not None else resource


def _verdict(svc: Services, resource: dict[str, Any], profiles: list[str], mode: str | None) -> Outcome:
    """The validator's verdict; for an Appointment being created or updated (or checked against the video
    profile), the booking's own."""
    if mode == "delete":
        return single("not-supported", "The hub does not delete resources: an appointment is cancelled (PUT or "
                      "PATCH with status cancelled)", None)
    booking = resource.get("resourceType") == "Appointment" and (mode in ("create", "update")
                                                                  or VIDEO_PROFILE in profiles)
    if not booking:
        return svc.validator.validate(resource, profiles)
    outcome, structure_ok = svc.appointments.edge.verdict(resource)
    others = [p for p in profiles if p != VIDEO_PROFILE]
    if structure_ok and others:
        svc.validator.check_profiles(resource, others, out=outcome)
    if mode == "update" and not resource.get("id"):
        outcome.error("required", "An update names the resource it updates: the body has no id", "Appointment.id")
    return outcome


def _validate(svc: Services, request: Request, body: bytes, resource_type: str | None) -> tuple[Outcome, int]:
    profiles = list(request.query_params.getlist("profile"))
    modes = list(request.query_params.getlist("mode"))
    operation = f"POST /fhir/{resource_type + '/' if resource_type else ''}$validate"
    fields: dict[str, Any] = {"direction": "in", "channel": "fhir-rest", "operation": operation,
                              "content_type": request.headers.get("content-type"), "raw": body}
    try:
        parsed = svc.validator.parse(body, request.headers.get("content-type"))
        resource = _unwrap(parsed, profiles, modes)
        if any(m not in MODES for m in modes) or len(set(modes)) > 1:
            raise InvalidInput(single("invalid", f"mode is one of {', '.join(MODES)}, once; not {', '.join(modes)}",
                                      "mode"))
        if resource_type and resource.get("resourceType") != resource_type:
            raise InvalidInput(single("invalid", f"Expected a {resource_type} resource, got "
                                      f"{resource.get('resourceType')}", "resourceType"))
    except HubError as exc:
        svc.flow.record_message(**fields, format="unknown", verdict=exc.outcome.to_fhir(), status="rejected",
                                http_status=exc.status)
        raise
    outcome = _verdict(svc, resource, profiles, modes[0] if modes else None)
    kind = io.format_of(body)
    svc.flow.record_message(**fields, format=kind, verdict=outcome.to_fhir(), status="validated", http_status=200)
    return outcome, 200


@router.post("/$validate", summary="Validate a resource against the official packages")
async def validate_any(request: Request, svc: Services = Depends(services)) -> Response:
    body = await read_body(request, svc.settings.max_body_bytes)
    outcome, status = await run_in_threadpool(_validate, svc, request, body, None)
    return outcome_response(request, outcome, status)


@router.post("/{resource_type}/$validate", summary="Validate a resource of this type")
async def validate_type(resource_type: str, request: Request, svc: Services = Depends(services)) -> Response:
    body = await read_body(request, svc.settings.max_body_bytes)
    outcome, status = await run_in_threadpool(_validate, svc, request, body, resource_type)
    return outcome_response(request, outcome, status)
