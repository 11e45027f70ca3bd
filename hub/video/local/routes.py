"""HAL rendering, the endpoints and `create_vdx_app`: the HTTP face of the VDX-compatible service.

Routes follow `video-api-v2.yaml`'s paths under /v2, plus /healthz, the OAuth2 /token endpoint and, for tests
and demos, /_test/clock. The work itself is in `store`; here requests are parsed, authorised and answered.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.video.local.clock import VdxClock, format_vdx_time
from hub.video.local.errors import VdxError, _error_body, _invalid
from hub.video.local.models import (
    CreateMeetingRequest,
    PatchMeetingRequest,
    UpdateMeetingRequest,
    _canonical_uuid,
    _time,
    _validated,
)
from hub.video.local.store import (
    AWAITS_PROVISION,
    ORGANISATION_ID,
    PROVISION_STATUSES,
    TEMPLATE_DIRECT_MEDIA,
    TEMPLATE_IVR_THEME,
    _Config,
    _Meeting,
    _VdxStore,
    parse_meeting_query,
)
from hub.video.local.tokens import (
    ANONYMOUS_CLIENT,
    TOKEN_LIFETIME_SECONDS,
    _basic_credentials,
    _oauth_error,
    _TokenIssuer,
)

HAL_JSON = "application/hal+json"
PORTAL_TIMEZONE = ZoneInfo("Europe/Copenhagen")
"""The portal's `start_dato` is local Danish time without offset, as in the spec's portalLink example."""


# ------------------------------------------------------------------------------------------------ rendering


class _Renderer:
    """Builds the `meeting` and `scheduling-info` documents with links relative to the request's host."""

    def __init__(self, config: _Config, base_url: str) -> None:
        self._config = config
        self._base = base_url.rstrip("/")

    def meeting(self, m: _Meeting, *, scheduling_link: bool = False) -> dict[str, Any]:
        short_link = f"{self._config.short_link_base}{m.short_id}"
        links: dict[str, Any] = {"self": {"href": f"{self._base}/v2/meetings/{m.uuid}"}}
        if scheduling_link:
            links["scheduling-info"] = {"href": f"{self._base}/v2/scheduling-info/{m.uuid}"}
        doc = {
            "uuid": m.uuid, "subject": m.subject, "description": m.description, "projectCode": m.project_code,
            "startTime": format_vdx_time(m.start), "endTime": format_vdx_time(m.end),
            "createdBy": _user(m.created_by), "updatedBy": _user(m.updated_by),
            "organizedBy": _user(m.organized_by),
            "createdTime": format_vdx_time(m.created), "updatedTime": format_vdx_time(m.updated),
            "shortId": m.short_id, "shortLink": short_link, "shortlink": short_link,
            "externalId": m.external_id, "guestMicrophone": m.guest_microphone,
            "guestPinRequired": m.guest_pin_required, "labels": list(m.labels),
            "additionalInformation": [dict(i) for i in m.additional_information], "_links": links,
        }
        return {k: v for k, v in doc.items() if v is not None}

    def scheduling_info(self, m: _Meeting, now: datetime) -> dict[str, Any]:
        status = m.status(now)
        uri_with_domain = f"{m.uri_without_domain}@{self._config.domain}"
        short_link = f"{self._config.short_link_base}{m.short_id}"
        doc: dict[str, Any] = {
            "uuid": m.uuid, "hostPin": m.host_pin, "guestPin": m.guest_pin,
            "vmrAvailableBefore": m.vmr_available_before, "maxParticipants": m.max_participants,
            "endMeetingOnEndTime": m.end_meeting_on_end_time, "uriWithDomain": uri_with_domain,
            "uriWithoutDomain": m.uri_without_domain, "provisionStatus": status,
            "portalLink": self._portal_link(uri_with_domain, m), "ivrTheme": TEMPLATE_IVR_THEME,
            **m.vmr_options, "directMedia": TEMPLATE_DIRECT_MEDIA,
            "createdBy": _user(m.created_by), "updatedBy": _user(m.updated_by),
            "createdTime": format_vdx_time(m.created), "updatedTime": format_vdx_time(m.updated),
            "meetingDetails": self.meeting(m), "shortLink": short_link, "shortlink": short_link,
            "_links": {"self": {"href": f"{self._base}/v2/scheduling-info/{m.uuid}"}},
        }
        if m.call_type is not None:
            doc["callType"] = m.call_type
        if status != AWAITS_PROVISION:
            doc["provisionTimestamp"] = format_vdx_time(m.provision_time())
        return doc

    def _portal_link(self, uri_with_domain: str, m: _Meeting) -> str:
        base = self._config.portal_base
        start_local = m.start.astimezone(PORTAL_TIMEZONE).strftime("%Y-%m-%dT%H:%M:%S")
        separator = "&" if "?" in base else "?"
        return f"{base}{separator}url={uri_with_domain}&pin={m.guest_pin}&start_dato={start_local}"


def _user(email: str) -> dict[str, str]:
    return {"organisationId": ORGANISATION_ID, "email": email}


# -------------------------------------------------------------------------------------------- the service


@dataclass
class _VdxService:
    """What the routes need, kept in `app.state.vdx`."""

    clock: VdxClock
    config: _Config
    store: _VdxStore
    tokens: _TokenIssuer | None

    def renderer(self, request: Request) -> _Renderer:
        return _Renderer(self.config, str(request.base_url))


def _svc(request: Request) -> _VdxService:
    service: _VdxService = request.app.state.vdx
    return service


async def _authorize(request: Request) -> str:
    """The calling client; when OAuth2 is on, a valid unexpired bearer token is required (else 401).

    Async, like every endpoint here: the work is a few dictionary operations under a lock, and a trip to a
    thread pool would cost more than the work itself.
    """
    service = _svc(request)
    if service.tokens is None:
        return ANONYMOUS_CLIENT
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="vdx"'}
    if scheme.lower() != "bearer" or not token.strip():
        raise VdxError(401, "11", "A bearer access token is required", challenge)
    client = service.tokens.client_for(token.strip(), service.clock.now())
    if client is None:
        raise VdxError(401, "11", "The access token is invalid or has expired", challenge)
    return client


def _email(service: _VdxService, caller: str) -> str:
    return f"{caller}@{service.config.domain}"


def _hal(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type=HAL_JSON)


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a code-10 error saying what is wrong with it."""
    raw = await request.body()
    if not raw.strip():
        raise _invalid("A JSON request body is required")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _invalid("Request body must be a JSON object")
    return data


async def get_info(request: Request, caller: str) -> Response:
    """A small `info` list, so that a client can check the API answers (as VDX suggests)."""
    service = _svc(request)
    return JSONResponse({"info": [
        {"key": "app", "value": {"name": "hub VDX-compatible service", "api": "VDX Booking API v2 (subset)"}},
        {"key": "time", "value": {"now": format_vdx_time(service.clock.now())}},
        {"key": "domain", "value": {"uriDomain": service.config.domain}},
    ]})


async def create_meeting(request: Request, caller: str) -> Response:
    service = _svc(request)
    body = _validated(CreateMeetingRequest, await _json_object(request))
    meeting = service.store.create(body, _email(service, caller), service.clock.now())
    return _hal(service.renderer(request).meeting(meeting))


async def search_meetings(request: Request, caller: str) -> Response:
    service = _svc(request)
    meetings = service.store.search(parse_meeting_query(request.query_params))
    renderer = service.renderer(request)
    return _hal([renderer.meeting(m, scheduling_link=True) for m in meetings])


async def find_by_uri_with_domain(request: Request, caller: str) -> Response:
    service = _svc(request)
    uri = request.query_params.get("uri", "")
    if not uri:
        raise _invalid("uri: query parameter is required")
    return _hal(service.renderer(request).meeting(service.store.find_by_uri(uri)))


async def find_by_uri_without_domain(request: Request, caller: str) -> Response:
    service = _svc(request)
    uri = request.query_params.get("uri", "")
    if not uri:
        raise _invalid("uri: query parameter is required")
    meeting = service.store.find_by_uri(f"{uri}@{service.config.domain}")
    return _hal(service.renderer(request).meeting(meeting))


async def get_meeting(request: Request, caller: str) -> Response:
    service = _svc(request)
    return _hal(service.renderer(request).meeting(service.store.get(request.path_params["meeting_uuid"])))


async def update_meeting(request: Request, caller: str) -> Response:
    service = _svc(request)
    meeting_uuid = request.path_params["meeting_uuid"]
    _canonical_uuid(meeting_uuid)
    body = _validated(UpdateMeetingRequest, await _json_object(request))
    meeting = service.store.update(meeting_uuid, body, _email(service, caller), service.clock.now())
    return _hal(service.renderer(request).meeting(meeting))


async def patch_meeting(request: Request, caller: str) -> Response:
    service = _svc(request)
    meeting_uuid = request.path_params["meeting_uuid"]
    _canonical_uuid(meeting_uuid)
    body = _validated(PatchMeetingRequest, await _json_object(request))
    meeting = service.store.patch(meeting_uuid, body, _email(service, caller), service.clock.now())
    return _hal(service.renderer(request).meeting(meeting))


async def delete_meeting(request: Request, caller: str) -> Response:
    service = _svc(request)
    service.store.delete(request.path_params["meeting_uuid"], service.clock.now())
    return Response(status_code=204)


async def list_scheduling_info(request: Request, caller: str) -> Response:
    service = _svc(request)
    params = request.query_params
    low, high = params.get("from-start-time"), params.get("to-end-time")
    if not low or not high:
        raise _invalid("from-start-time and to-end-time are required")
    status = params.get("provision-status") or AWAITS_PROVISION
    if status not in PROVISION_STATUSES:
        raise _invalid(f"provision-status: must be one of {', '.join(PROVISION_STATUSES)}")
    now = service.clock.now()
    window = _time("from-start-time", low), _time("to-end-time", high)
    found = service.store.scheduling_infos(*window, status, now)
    renderer = service.renderer(request)
    return _hal([renderer.scheduling_info(m, now) for m in found])


async def get_scheduling_info(request: Request, caller: str) -> Response:
    service = _svc(request)
    meeting = service.store.get(request.path_params["meeting_uuid"])
    return _hal(service.renderer(request).scheduling_info(meeting, service.clock.now()))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def issue_token(request: Request) -> Response:
    """OAuth2 client-credentials grant (RFC 6749 §4.4); credentials in the form body or HTTP Basic."""
    service = _svc(request)
    if service.tokens is None:
        raise VdxError(404, "11", "OAuth2 is not enabled on this service")
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    grant_type = form.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    basic = _basic_credentials(request.headers.get("authorization", ""))
    client_id, secret = basic or (form.get("client_id"), form.get("client_secret"))
    if not service.tokens.authenticate(client_id, secret):
        return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
    token = service.tokens.issue(str(client_id), service.clock.now())
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECONDS},
        headers={"Cache-Control": "no-store"},
    )


async def get_test_clock(request: Request) -> Response:
    return JSONResponse({"now": format_vdx_time(_svc(request).clock.now())})


async def set_test_clock(request: Request) -> Response:
    """Move the service clock: {"now": date-time} sets it, {"advance_seconds": n} moves it on."""
    clock = _svc(request).clock
    body = await _json_object(request)
    if isinstance(body.get("now"), str):
        clock.set(_time("now", body["now"]))
    elif isinstance(seconds := body.get("advance_seconds"), int | float) and not isinstance(seconds, bool):
        clock.advance(float(seconds))
    else:
        raise _invalid('Send {"now": "<date-time>"} or {"advance_seconds": <number>}')
    return JSONResponse({"now": format_vdx_time(clock.now())})


def _v2(endpoint: Callable[[Request, str], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A /v2 endpoint, called with the authorised caller."""

    async def authorised(request: Request) -> Response:
        return await endpoint(request, await _authorize(request))

    return authorised


V2_ROUTES = [
    Route("/v2/info", _v2(get_info), methods=["GET"]),
    Route("/v2/meetings", _v2(create_meeting), methods=["POST"]),
    Route("/v2/meetings", _v2(search_meetings), methods=["GET"]),
    Route("/v2/meetings/findByUriWithDomain", _v2(find_by_uri_with_domain), methods=["GET"]),
    Route("/v2/meetings/findByUriWithoutDomain", _v2(find_by_uri_without_domain), methods=["GET"]),
    Route("/v2/meetings/{meeting_uuid}", _v2(get_meeting), methods=["GET"]),
    Route("/v2/meetings/{meeting_uuid}", _v2(update_meeting), methods=["PUT"]),
    Route("/v2/meetings/{meeting_uuid}", _v2(patch_meeting), methods=["PATCH"]),
    Route("/v2/meetings/{meeting_uuid}", _v2(delete_meeting), methods=["DELETE"]),
    Route("/v2/scheduling-info", _v2(list_scheduling_info), methods=["GET"]),
    Route("/v2/scheduling-info/{meeting_uuid}", _v2(get_scheduling_info), methods=["GET"]),
]
ROOT_ROUTES = [Route("/healthz", healthz, methods=["GET"]), Route("/token", issue_token, methods=["POST"])]
TEST_CLOCK_ROUTES = [Route("/_test/clock", get_test_clock, methods=["GET"]),
                     Route("/_test/clock", set_test_clock, methods=["POST"])]


# ------------------------------------------------------------------------------------------ app and errors


def _error_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """Every error leaves as a VDX `detailedError`: never a framework's own shape, never a bare 500."""

    def respond(request: Request, status: int, code: str, message: str,
                headers: Mapping[str, str] | None = None) -> Response:
        body = _error_body(status, code, message, request.url.path, _svc(request).clock.now())
        return JSONResponse(body, status_code=status, headers=headers)

    async def vdx_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, VdxError)
        return respond(request, exc.status, exc.code, exc.message, exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return respond(request, exc.status_code, "11", str(exc.detail), exc.headers)

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        return respond(request, 500, "11", "An unexpected error occurred")

    return {VdxError: vdx_error, StarletteHTTPException: http_error, Exception: unexpected_error}


def create_vdx_app(
    *,
    clock: VdxClock | None = None,
    vmr_available_before: int = 30,
    domain: str = "video.hub.local",
    portal_base: str = "https://portal.video.hub.local/",
    short_link_base: str = "https://m.video.hub.local/",
    client_credentials: dict[str, str] | None = None,
    enable_test_clock: bool = False,
) -> Starlette:
    """Build one VDX-compatible service with its own in-memory state.

    `vmr_available_before` (minutes) is the default template's value: how long before start a meeting
    counts as provisioned. `client_credentials` ({client_id: secret}) turns on OAuth2 for all /v2 paths;
    `enable_test_clock` exposes GET/POST /_test/clock for moving the clock from another process.
    """
    config = _Config(domain=domain, portal_base=portal_base, short_link_base=short_link_base,
                     vmr_available_before=vmr_available_before)
    # Plain Starlette: the endpoints are a few dictionary operations each, and FastAPI's dependency solving
    # and middleware cost several times that (measured: more than half the service's CPU per booking).
    routes = ROOT_ROUTES + V2_ROUTES + (TEST_CLOCK_ROUTES if enable_test_clock else [])
    app = Starlette(routes=routes, exception_handlers=_error_handlers())
    app.state.vdx = _VdxService(
        clock=clock or VdxClock(), config=config, store=_VdxStore(config),
        tokens=_TokenIssuer(client_credentials) if client_credentials is not None else None,
    )
    return app
