"""The hub's VDX-compatible service: the subset of MedCom's VDX Booking API v2 that the hub uses.

When no real VDX is configured, `hub serve` runs this service on loopback and the hub's VDX client
speaks plain HTTP to it, exactly as it would to VDX. It therefore follows `video-api-v2.yaml` where the
hub depends on it: the `meeting` and `scheduling-info` shapes, the rules for when a meeting may be
changed or deleted (driven by a provisioning state computed from a movable clock), URI/PIN/short-link
generation, the `detailedError` body with VDX's numeric codes, and an OAuth2 client-credentials token
endpoint standing in for Keycloak. State is held in memory per app instance.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import re
import secrets
import string
import threading
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qs, unquote_plus
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.video.vdx_clock import VdxClock, VdxTimeError, format_vdx_time, parse_vdx_time

__all__ = ["VdxClock", "VdxError", "create_vdx_app"]

HAL_JSON = "application/hal+json"
ORGANISATION_ID = "hub"
"""Every caller belongs to this one organisation: the hub is the only tenant of this service."""
ANONYMOUS_CLIENT = "hub"
"""The caller's name when OAuth2 is off; it becomes the creator's e-mail `hub@<domain>`."""
TOKEN_LIFETIME_SECONDS = 300

AWAITS_PROVISION = "AWAITS_PROVISION"
PROVISIONED_OK = "PROVISIONED_OK"
DEPROVISION_OK = "DEPROVISION_OK"
PROVISION_STATUSES = (
    AWAITS_PROVISION, "STARTING_TO_PROVISION", "PROVISION_PROBLEMS", PROVISIONED_OK,
    "STARTING_TO_DEPROVISION", "DEPROVISION_PROBLEMS", DEPROVISION_OK,
)
UPDATABLE_STATUSES = (AWAITS_PROVISION, PROVISIONED_OK)

# The default scheduling template: VDX fills scheduling-info from the organisation's template unless the
# create-meeting request overrides a value. PIN range as in the spec's template example; the URI range is
# wider so that long benchmark runs do not exhaust it.
TEMPLATE_MAX_PARTICIPANTS = 10
TEMPLATE_PIN_RANGE = (1000, 9999)
TEMPLATE_URI_RANGE = (1_000_000, 9_999_999)
TEMPLATE_IVR_THEME = "10"
TEMPLATE_VMR_OPTIONS: dict[str, Any] = {
    "vmrType": "conference", "hostView": "one_main_seven_pips", "guestView": "one_main_seven_pips",
    "vmrQuality": "hd", "enableOverlayText": True, "guestsCanPresent": True, "forcePresenterIntoMain": True,
    "forceEncryption": False, "muteAllGuests": False,
}
TEMPLATE_DIRECT_MEDIA = "best_effort"
PORTAL_TIMEZONE = ZoneInfo("Europe/Copenhagen")
"""The portal's `start_dato` is local Danish time without offset, as in the spec's portalLink example."""

SHORT_ID_ALPHABET = string.ascii_lowercase + string.digits
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_URI_CHARS = re.compile(r"^[A-Za-z0-9]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


# --------------------------------------------------------------------------------------------------- errors


class VdxError(Exception):
    """An error answered with VDX's `detailedError` body; `code` is one of the spec's detailed_error_code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _invalid(message: str) -> VdxError:
    return VdxError(400, "10", message)


def _error_body(status: int, code: str, message: str, path: str, now: datetime) -> dict[str, Any]:
    """The `detailedError` schema: basicError fields plus the detailed text and code (a string)."""
    return {
        "timestamp": format_vdx_time(now),
        "status": status,
        "error": HTTPStatus(status).phrase,
        "path": path,
        "detailed_error": message,
        "detailed_error_code": code,
    }


# --------------------------------------------------------------------------------------------- request bodies

GuestMicrophone = Literal["muted", "off", "on"]
MeetingType = Literal["NORMAL", "POOL"]
VmrType = Literal["conference", "lecture"]
ViewType = Literal[
    "one_main_zero_pips", "one_main_seven_pips", "one_main_twentyone_pips", "two_mains_twentyone_pips",
    "four_mains_zero_pips", "five_mains_seven_pips", "one_main_thirtythree_pips", "nine_mains_zero_pips",
    "sixteen_mains_zero_pips",
]
VmrQuality = Literal["sd", "hd", "fullhd"]
Pin = Annotated[int, Field(ge=1000, le=999_999_999)]
_STRICT = ConfigDict(strict=True, extra="ignore")


class AdditionalInformation(BaseModel):
    """One `additionalInformationType` entry."""

    model_config = _STRICT
    key: str = Field(min_length=1, max_length=100)
    value: str = Field(max_length=100)


class _MeetingBody(BaseModel):
    """Fields shared by create-meeting and update-meeting. Times stay strings: VDX codes 10/25 differ."""

    model_config = _STRICT
    subject: str = Field(max_length=100)
    startTime: str
    endTime: str
    description: str | None = Field(None, max_length=500)
    projectCode: str | None = Field(None, max_length=100)
    organizedByEmail: str | None = None
    labels: list[str] | None = None
    additionalInformation: list[AdditionalInformation] | None = None

    @field_validator("subject")
    @classmethod
    def _subject_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class CreateMeetingRequest(_MeetingBody):
    """`create-meeting`. Template-related fields override the default template when present."""

    uuid: str | None = None
    externalId: str | None = Field(None, min_length=1, max_length=200)
    maxParticipants: int | None = Field(None, ge=0, le=2**31 - 1)
    endMeetingOnEndTime: bool | None = None
    schedulingTemplateId: int | None = None
    meetingType: MeetingType = "NORMAL"
    guestMicrophone: GuestMicrophone = "on"
    guestPinRequired: bool = False
    schedulingInfoReservationId: str | None = None
    uriWithoutDomain: str | None = Field(None, min_length=1, max_length=100)
    guestPin: Pin | None = None
    hostPin: Pin | None = None
    callType: str | None = None
    vmrType: VmrType | None = None
    hostView: ViewType | None = None
    guestView: ViewType | None = None
    vmrQuality: VmrQuality | None = None
    enableOverlayText: bool | None = None
    guestsCanPresent: bool | None = None
    forcePresenterIntoMain: bool | None = None
    forceEncryption: bool | None = None
    muteAllGuests: bool | None = None


class UpdateMeetingRequest(_MeetingBody):
    """`update-meeting` (PUT): a full replacement of the user-editable fields."""


class PatchMeetingRequest(BaseModel):
    """`patch-meeting`: absent fields are kept, null deletes. `model_fields_set` tells absent from null."""

    model_config = _STRICT
    subject: str | None = Field(None, max_length=100)
    startTime: str | None = None
    endTime: str | None = None
    description: str | None = Field(None, max_length=500)
    projectCode: str | None = Field(None, max_length=100)
    organizedByEmail: str | None = None
    labels: list[str] | None = None
    guestMicrophone: GuestMicrophone | None = None
    guestPinRequired: bool | None = None
    guestPin: Pin | None = None
    hostPin: Pin | None = None
    additionalInformation: list[AdditionalInformation] | None = None
    callType: str | None = None

    @field_validator("subject")
    @classmethod
    def _subject_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _validated(model: type[_ModelT], data: dict[str, Any]) -> _ModelT:
    """Validate a JSON object against a request model, turning pydantic's errors into VDX code 10."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(_describe_errors(exc.errors())) from exc


def _describe_errors(errors: Any) -> str:
    """'field.path: message' for each problem, so the caller sees which field was wrong."""
    parts = []
    for err in errors:
        location = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{location}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


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


def _time(field_name: str, value: str) -> datetime:
    """Parse a date-time input; a year longer than 4 digits is VDX code 25, anything else wrong is 10."""
    try:
        return parse_vdx_time(value)
    except VdxTimeError as exc:
        code = "25" if exc.year_too_long else "10"
        raise VdxError(400, code, f"{field_name}: {exc}") from exc


def _check_interval(start: datetime, end: datetime) -> None:
    if start >= end:
        raise _invalid("startTime must be before endTime")


def _check_additional_information(items: list[AdditionalInformation] | None) -> None:
    keys = [item.key for item in items or ()]
    if len(keys) != len(set(keys)):
        raise VdxError(400, "35", "Additional info keys not unique for meeting.")


def _check_email(value: str | None) -> str | None:
    """A filled organizedByEmail must look like an e-mail address; an empty one counts as absent."""
    if not value:
        return None
    if len(value) > 45 or not _EMAIL.match(value):
        raise _invalid("organizedByEmail: must be an e-mail address of at most 45 characters")
    return value


def _check_distinct_pins(guest: int | None, host: int | None) -> None:
    if guest is not None and guest == host:
        raise _invalid("guestPin and hostPin must differ")


def _canonical_uuid(value: str, what: str = "uuid") -> str:
    if not isinstance(value, str) or not _UUID.match(value):
        raise _invalid(f"{what}: '{value}' is not a valid uuid")
    return value.lower()


# ------------------------------------------------------------------------------------------------ the model


@dataclass
class _Meeting:
    """A meeting and its scheduling information (VDX keeps both under the same uuid)."""

    uuid: str
    subject: str
    start: datetime
    end: datetime
    short_id: str
    organized_by: str
    created_by: str
    updated_by: str
    created: datetime
    updated: datetime
    uri_without_domain: str
    guest_pin: int
    host_pin: int
    vmr_available_before: int
    max_participants: int
    end_meeting_on_end_time: bool
    description: str | None = None
    project_code: str | None = None
    external_id: str | None = None
    labels: list[str] = field(default_factory=list)
    additional_information: list[dict[str, str]] = field(default_factory=list)
    guest_microphone: str = "on"
    guest_pin_required: bool = False
    meeting_type: str = "NORMAL"
    call_type: str | None = None
    vmr_options: dict[str, Any] = field(default_factory=dict)
    deleted: bool = False

    def status(self, now: datetime) -> str:
        """VDX's provisioning state, derived from the clock instead of a provisioner run."""
        if now >= self.end:
            return DEPROVISION_OK
        if now >= self.provision_time():
            return PROVISIONED_OK
        return AWAITS_PROVISION

    def provision_time(self) -> datetime:
        """When the room becomes available (never before the meeting existed)."""
        return max(self.created, self.start - timedelta(minutes=self.vmr_available_before))


@dataclass(frozen=True)
class _Config:
    domain: str
    portal_base: str
    short_link_base: str
    vmr_available_before: int


@dataclass(frozen=True)
class MeetingQuery:
    """One GET /v2/meetings search: VDX applies only the first criterion present, in `_SEARCH_ORDER`."""

    criterion: str
    value: str
    from_start: datetime | None = None
    to_start: datetime | None = None


_SEARCH_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("externalId", ("externalId", "external-id")),
    ("short-id", ("short-id", "shortId")),
    ("label", ("label",)),
    ("subject", ("subject",)),
    ("organizedBy", ("organizedBy", "organized-by")),
    ("search", ("search",)),
    ("interval", ()),
    ("uriWithDomain", ("uriWithDomain", "uri-with-domain")),
)


class _VdxStore:
    """All meetings of one app instance. Every method holds the lock and returns snapshots (copies)."""

    def __init__(self, config: _Config) -> None:
        self._config = config
        self._lock = threading.RLock()
        self._meetings: dict[str, _Meeting] = {}
        self._by_external_id: dict[str, str] = {}
        self._by_uri: dict[str, str] = {}
        self._short_ids: set[str] = set()

    # ---- create

    def create(self, req: CreateMeetingRequest, caller: str, now: datetime) -> _Meeting:
        """POST /v2/meetings: validate, allocate URI/PINs/short id, store."""
        start, end = _time("startTime", req.startTime), _time("endTime", req.endTime)
        _check_interval(start, end)
        _check_additional_information(req.additionalInformation)
        _check_distinct_pins(req.guestPin, req.hostPin)
        organizer = _check_email(req.organizedByEmail) or caller
        _check_create_options(req)
        with self._lock:
            meeting_uuid = self._new_uuid(req.uuid)
            if req.externalId is not None and req.externalId in self._by_external_id:
                raise VdxError(400, "21", "ExternalId not unique within organisation.")
            guest_pin, host_pin = _pins(req.guestPin, req.hostPin)
            meeting = _Meeting(
                uuid=meeting_uuid, subject=req.subject, start=start, end=end,
                short_id=self._new_short_id(), organized_by=organizer, created_by=caller, updated_by=caller,
                created=now, updated=now, uri_without_domain=self._new_uri(req.uriWithoutDomain),
                guest_pin=guest_pin, host_pin=host_pin,
                vmr_available_before=self._config.vmr_available_before,
                max_participants=_default(req.maxParticipants, TEMPLATE_MAX_PARTICIPANTS),
                end_meeting_on_end_time=_default(req.endMeetingOnEndTime, False),
                description=req.description, project_code=req.projectCode, external_id=req.externalId,
                labels=list(req.labels or ()), additional_information=_info_dicts(req.additionalInformation),
                guest_microphone=req.guestMicrophone, guest_pin_required=req.guestPinRequired,
                meeting_type=req.meetingType, call_type=req.callType, vmr_options=_vmr_options(req),
            )
            self._add(meeting)
            return copy.copy(meeting)

    def _new_uuid(self, supplied: str | None) -> str:
        if supplied is None:
            return str(uuidlib.uuid4())
        meeting_uuid = _canonical_uuid(supplied)
        if meeting_uuid in self._meetings:
            raise _invalid(f"uuid: meeting {meeting_uuid} already exists")
        return meeting_uuid

    def _new_short_id(self) -> str:
        for _ in range(20):
            short_id = "".join(secrets.choice(SHORT_ID_ALPHABET) for _ in range(12))
            if short_id not in self._short_ids:
                return short_id
        raise VdxError(400, "24", "Unable to generate unique shortId. Try again.")

    def _new_uri(self, supplied: str | None) -> str:
        if supplied is not None:
            if not _URI_CHARS.match(supplied):
                raise VdxError(400, "33", "Supplied URI contains invalid characters. "
                                          "Valid characters: [A-Z], [a-z] and [0-9].")
            if self._uri_with_domain(supplied) in self._by_uri:
                raise VdxError(400, "32", "Supplied URI already used")
            return supplied
        low, high = TEMPLATE_URI_RANGE
        for _ in range(100):
            candidate = str(low + secrets.randbelow(high - low + 1))
            if self._uri_with_domain(candidate) not in self._by_uri:
                return candidate
        raise VdxError(406, "15", "The Uri assignment failed. It was not possible to create a unique. "
                                  "Consider changing the interval on the template")

    def _uri_with_domain(self, uri_without_domain: str) -> str:
        return f"{uri_without_domain}@{self._config.domain}"

    def _add(self, meeting: _Meeting) -> None:
        self._meetings[meeting.uuid] = meeting
        self._short_ids.add(meeting.short_id)
        self._by_uri[self._uri_with_domain(meeting.uri_without_domain)] = meeting.uuid
        if meeting.external_id is not None:
            self._by_external_id[meeting.external_id] = meeting.uuid

    # ---- read

    def get(self, meeting_uuid: str) -> _Meeting:
        """A live meeting by uuid; 400 for a malformed uuid, 404 for an unknown or deleted one."""
        with self._lock:
            return copy.copy(self._live(meeting_uuid))

    def _live(self, meeting_uuid: str) -> _Meeting:
        meeting = self._meetings.get(_canonical_uuid(meeting_uuid))
        if meeting is None or meeting.deleted:
            raise VdxError(404, "11", f"Meeting {meeting_uuid} not found")
        return meeting

    def find_by_uri(self, uri_with_domain: str) -> _Meeting:
        with self._lock:
            meeting_uuid = self._by_uri.get(uri_with_domain)
            if meeting_uuid is None or self._meetings[meeting_uuid].deleted:
                raise VdxError(404, "11", f"No meeting with uri {uri_with_domain}")
            return copy.copy(self._meetings[meeting_uuid])

    def search(self, query: MeetingQuery) -> list[_Meeting]:
        """GET /v2/meetings: the live meetings matching the one criterion, by start time."""
        matches = _meeting_matcher(query, self._config.domain)
        with self._lock:
            found = [copy.copy(m) for m in self._meetings.values() if not m.deleted and matches(m)]
        return sorted(found, key=lambda m: (m.start, m.created))

    def scheduling_infos(self, low: datetime, high: datetime, status: str, now: datetime) -> list[_Meeting]:
        """GET /v2/scheduling-info: provisioning start or end within [low, high], in the given state."""
        with self._lock:
            found = [
                copy.copy(m) for m in self._meetings.values()
                if not m.deleted and m.status(now) == status
                and (low <= m.start - timedelta(minutes=m.vmr_available_before) <= high
                     or low <= m.end <= high)
            ]
        return sorted(found, key=lambda m: (m.start, m.created))

    # ---- update / patch / delete

    def update(self, meeting_uuid: str, req: UpdateMeetingRequest, caller: str, now: datetime) -> _Meeting:
        """PUT: replace the editable fields; once provisioned VDX takes only the new endTime."""
        start, end = _time("startTime", req.startTime), _time("endTime", req.endTime)
        _check_additional_information(req.additionalInformation)
        organizer = _check_email(req.organizedByEmail) or caller
        with self._lock:
            meeting = self._updatable(meeting_uuid, now)
            if meeting.status(now) == PROVISIONED_OK:
                _check_interval(meeting.start, end)
                meeting.end = end
            else:
                _check_interval(start, end)
                self._apply(meeting, {
                    "subject": req.subject, "start": start, "end": end, "description": req.description,
                    "project_code": req.projectCode, "organized_by": organizer,
                    "labels": list(req.labels or ()),
                    "additional_information": _info_dicts(req.additionalInformation),
                })
            meeting.updated_by, meeting.updated = caller, now
            return copy.copy(meeting)

    def patch(self, meeting_uuid: str, req: PatchMeetingRequest, caller: str, now: datetime) -> _Meeting:
        """PATCH: change only the fields present; once provisioned, any change but endTime is refused."""
        present = req.model_fields_set
        nulled = [name for name in ("subject", "startTime", "endTime")
                  if name in present and getattr(req, name) is None]
        if nulled:
            raise VdxError(400, "30", f"Field can not be set to null: {', '.join(nulled)}")
        requested = _patch_values(req, present, caller)
        with self._lock:
            meeting = self._updatable(meeting_uuid, now)
            changes = {k: v for k, v in requested.items() if getattr(meeting, k) != v}
            changes.update(_regenerated_pins(req, present, meeting))
            if meeting.status(now) == PROVISIONED_OK and set(changes) - {"end"}:
                raise VdxError(406, "12", "Meeting has status PROVISIONED_OK (3): "
                                          "only endTime can be updated")
            _check_interval(changes.get("start", meeting.start), changes.get("end", meeting.end))
            _check_distinct_pins(changes.get("guest_pin", meeting.guest_pin),
                                 changes.get("host_pin", meeting.host_pin))
            self._apply(meeting, changes)
            meeting.updated_by, meeting.updated = caller, now
            return copy.copy(meeting)

    def delete(self, meeting_uuid: str, now: datetime) -> None:
        """DELETE: only before provisioning. The uuid stays taken; the externalId is freed for rebooking."""
        with self._lock:
            meeting = self._live(meeting_uuid)
            if meeting.status(now) != AWAITS_PROVISION:
                raise VdxError(406, "13", "Meeting must have status AWAITS_PROVISION (0) "
                                          "in order to be deleted")
            meeting.deleted = True
            if meeting.external_id is not None:
                self._by_external_id.pop(meeting.external_id, None)

    def _updatable(self, meeting_uuid: str, now: datetime) -> _Meeting:
        meeting = self._live(meeting_uuid)
        if meeting.status(now) not in UPDATABLE_STATUSES:
            raise VdxError(406, "12", "Meeting must have status AWAITS_PROVISION (0) or PROVISIONED_OK (3) "
                                      "in order to be updated")
        return meeting

    @staticmethod
    def _apply(meeting: _Meeting, changes: Mapping[str, Any]) -> None:
        for name, value in changes.items():
            setattr(meeting, name, value)


def _check_create_options(req: CreateMeetingRequest) -> None:
    """Options this service can not honour are refused with the code VDX would give."""
    if req.meetingType == "POOL":
        raise VdxError(400, "20",
                       f"Unused scheduling information not found for organisation {ORGANISATION_ID}")
    if req.schedulingInfoReservationId is not None:
        raise VdxError(400, "29", "ReservationId not owned by organisation or not found.")


def _default(value: Any, template_value: Any) -> Any:
    return template_value if value is None else value


def _vmr_options(req: CreateMeetingRequest) -> dict[str, Any]:
    """The template's room settings, overridden by those present in the request."""
    return {name: _default(getattr(req, name), default) for name, default in TEMPLATE_VMR_OPTIONS.items()}


def _info_dicts(items: list[AdditionalInformation] | None) -> list[dict[str, str]]:
    return [{"key": item.key, "value": item.value} for item in items or ()]


def _random_pin(avoid: int | None = None) -> int:
    low, high = TEMPLATE_PIN_RANGE
    while True:
        pin = low + secrets.randbelow(high - low + 1)
        if pin != avoid:
            return pin


def _pins(guest: int | None, host: int | None) -> tuple[int, int]:
    """Guest and host PIN: the supplied ones, the rest drawn at random so that the two always differ."""
    guest_pin = guest if guest is not None else _random_pin(avoid=host)
    host_pin = host if host is not None else _random_pin(avoid=guest_pin)
    return guest_pin, host_pin


def _patch_values(req: PatchMeetingRequest, present: set[str], caller: str) -> dict[str, Any]:
    """The meeting attributes a PATCH asks for (before comparing with the stored meeting)."""
    values: dict[str, Any] = {}
    if "subject" in present:
        values["subject"] = req.subject
    if "startTime" in present and req.startTime is not None:
        values["start"] = _time("startTime", req.startTime)
    if "endTime" in present and req.endTime is not None:
        values["end"] = _time("endTime", req.endTime)
    if "additionalInformation" in present:
        _check_additional_information(req.additionalInformation)
        values["additional_information"] = _info_dicts(req.additionalInformation)
    if "organizedByEmail" in present:
        values["organized_by"] = _check_email(req.organizedByEmail) or caller
    nullable: dict[str, tuple[str, Any]] = {
        "description": ("description", None), "projectCode": ("project_code", None),
        "callType": ("call_type", None), "labels": ("labels", []),
        "guestMicrophone": ("guest_microphone", "on"), "guestPinRequired": ("guest_pin_required", False),
    }
    for name, (attribute, if_null) in nullable.items():
        if name in present:
            values[attribute] = _default(getattr(req, name), if_null)
    for name, attribute in (("guestPin", "guest_pin"), ("hostPin", "host_pin")):
        if name in present and getattr(req, name) is not None:
            values[attribute] = getattr(req, name)
    return values


def _regenerated_pins(req: PatchMeetingRequest, present: set[str], meeting: _Meeting) -> dict[str, int]:
    """A PIN patched to null is replaced by a fresh random one (a room can not be without PINs)."""
    fresh: dict[str, int] = {}
    if "guestPin" in present and req.guestPin is None:
        fresh["guest_pin"] = _random_pin(avoid=req.hostPin or meeting.host_pin)
    if "hostPin" in present and req.hostPin is None:
        fresh["host_pin"] = _random_pin(avoid=fresh.get("guest_pin", req.guestPin or meeting.guest_pin))
    return fresh


def _meeting_matcher(query: MeetingQuery, domain: str) -> Callable[[_Meeting], bool]:
    """A predicate for the query's single criterion (plus the start interval for `search`)."""
    needle = query.value.casefold()

    def in_interval(m: _Meeting) -> bool:
        if query.from_start is None or query.to_start is None:
            return True
        return query.from_start <= m.start <= query.to_start

    def text_of(m: _Meeting) -> str:
        fields = [m.subject, m.description, m.external_id, m.organized_by, m.project_code, m.short_id,
                  *m.labels]
        return "\n".join(f for f in fields if f).casefold()

    predicates: dict[str, Callable[[_Meeting], bool]] = {
        "externalId": lambda m: m.external_id == query.value,
        "short-id": lambda m: m.short_id == query.value,
        "label": lambda m: query.value in m.labels,
        "subject": lambda m: needle in m.subject.casefold(),
        "organizedBy": lambda m: m.organized_by.casefold() == needle,
        "search": lambda m: needle in text_of(m) and in_interval(m),
        "interval": in_interval,
        "uriWithDomain": lambda m: f"{m.uri_without_domain}@{domain}".casefold() == needle,
    }
    return predicates[query.criterion]


def parse_meeting_query(params: Mapping[str, str]) -> MeetingQuery:
    """Read GET /v2/meetings parameters: code 28 for half an interval, code 36 when nothing is given."""
    low, high = params.get("from-start-time") or None, params.get("to-start-time") or None
    if (low is None) != (high is None):
        raise VdxError(400, "28", "Either both from-start-time and to-start-time must be provided "
                                  "or none of them must be provided.")
    from_start = _time("from-start-time", low) if low else None
    to_start = _time("to-start-time", high) if high else None
    for criterion, names in _SEARCH_ORDER:
        if criterion == "interval":
            if from_start is not None:
                return MeetingQuery(criterion, "", from_start, to_start)
            continue
        value = next((params[n] for n in names if params.get(n)), None)
        if value is None:
            continue
        if criterion == "short-id" and len(value) != 12:
            raise _invalid("short-id: must be exactly 12 characters")
        return MeetingQuery(criterion, value, from_start, to_start)
    raise VdxError(400, "36", "Must set at least one query parameter, when searching for meeting.")


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


# ------------------------------------------------------------------------------------------------- OAuth2


class _TokenIssuer:
    """Client-credentials tokens (standing in for VDX's Keycloak), valid for 300 s on the service clock."""

    def __init__(self, credentials: Mapping[str, str]) -> None:
        self._credentials = dict(credentials)
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, datetime]] = {}

    def authenticate(self, client_id: str | None, secret: str | None) -> bool:
        expected = self._credentials.get(client_id or "")
        return expected is not None and secret is not None and hmac.compare_digest(
            expected.encode(), secret.encode())

    def issue(self, client_id: str, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (client_id, now + timedelta(seconds=TOKEN_LIFETIME_SECONDS))
        return token

    def client_for(self, token: str, now: datetime) -> str | None:
        """The client a token was issued to, or None when unknown or expired."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or now >= entry[1]:
            return None
        return entry[0]


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """client_id and secret from an HTTP Basic header (form-urlencoded per RFC 6749 §2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="vdx"'
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers=headers)


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
