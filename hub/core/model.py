"""The canonical model: what every adapter maps to and from.

A `MeetingRequest` is what a sender asks for (from FHIR, HL7 v2 SIU or a MedCom booking confirmation); a
`Room` is what the video service gave back. Times are aware datetimes in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ParticipantKind(StrEnum):
    PATIENT = "patient"
    PRACTITIONER = "practitioner"
    RELATED_PERSON = "relatedperson"
    CARE_TEAM = "careteam"
    LOCATION = "location"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Identifier:
    system: str
    value: str

    @property
    def key(self) -> str:
        return f"{self.system}|{self.value}"


@dataclass(frozen=True, slots=True)
class Participant:
    """Someone (or somewhere) taking part; known by a reference, an identifier, or both."""

    kind: ParticipantKind
    reference: str | None = None
    identifier: Identifier | None = None
    display: str | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class MeetingRequest:
    """A video meeting as the sender wants it."""

    source_key: str
    subject: str
    start: datetime
    end: datetime
    status: str = "booked"
    max_participants: int | None = None
    end_meeting_on_end_time: bool | None = None
    participants: tuple[Participant, ...] = ()

    @property
    def patient(self) -> Participant | None:
        return next((p for p in self.participants if p.kind is ParticipantKind.PATIENT), None)


@dataclass(frozen=True, slots=True)
class Room:
    """A booked VDX room and how to join it."""

    vdx_uuid: str
    external_id: str
    uri: str
    guest_pin: str | None
    host_pin: str | None
    meeting_url: str | None
    short_link: str | None
    provision_status: str
    start: datetime
    end: datetime


@dataclass(slots=True)
class BookingResult:
    """What a flow did: the resource to answer with, the HTTP status, and notes for the sender."""

    appointment_id: str
    resource: dict[str, Any]
    created: bool
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EncounterEvent:
    """Something that happened to a hospital stay (admitted, on leave, back, discharged, cancelled, revised),
    from a MedCom HospitalNotification or an HL7 v2 ADT message. `stay` identifies the stay across all its
    events (MedCom: the episode-of-care identifier); `resource` is the Encounter as it stands after the event,
    with its patient by identifier, so it can be shown without the message it came in."""

    stay: str
    event: str  # the sender's event code, e.g. MedCom's activity `admit-inpatient`
    status: str  # the Encounter's status after the event
    encounter_class: str | None
    start: datetime | None
    end: datetime | None
    patient: Identifier | None
    service_provider: str | None  # `sor:…` / `gln:…` of the organisation the stay is with
    occurred_at: datetime | None
    resource: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DateBound:
    """A time a search asks for: `prefix` (FHIR's eq, lt, ge, …) applied to the interval [low, high) the value's
    precision implies. The FHIR edge reads it from a search value; the store turns it into a query."""

    prefix: str
    low: datetime
    high: datetime

    def where(self) -> tuple[str, datetime, datetime]:
        return self.prefix, self.low, self.high
