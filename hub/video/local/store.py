"""The meetings one service instance keeps: provisioning states, the default template, PIN/URI generation.

VDX derives whether a meeting may still be changed or deleted from its provisioning state; here that state is
computed from the service clock (`_Meeting.status`) instead of a provisioner run. URIs, PINs and short ids
are drawn at random within the default scheduling template's ranges, unique among the meetings kept.
"""

from __future__ import annotations

import copy
import re
import secrets
import string
import threading
import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hub.video.local.errors import VdxError, _invalid
from hub.video.local.models import (
    AdditionalInformation,
    CreateMeetingRequest,
    PatchMeetingRequest,
    UpdateMeetingRequest,
    _canonical_uuid,
    _check_additional_information,
    _check_distinct_pins,
    _check_email,
    _check_interval,
    _time,
)

ORGANISATION_ID = "hub"
"""Every caller belongs to this one organisation: the hub is the only tenant of this service."""

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

SHORT_ID_ALPHABET = string.ascii_lowercase + string.digits
_URI_CHARS = re.compile(r"^[A-Za-z0-9]+$")


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

