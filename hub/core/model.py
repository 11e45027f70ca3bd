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
