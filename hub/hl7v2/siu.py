"""HL7 v2 SIU → the canonical meeting (pure): what the hub books, moves or cancels for a scheduling message.

- The booking is known by the sending facility and the placer appointment id (SCH-1, else the filler's SCH-2),
  so every message about one appointment finds the booking the first one made.
- What it asks: S12 book; S13 (rescheduled) and S14 (modified) change the booking; S15 cancels, S17 deletes
  (entered-in-error: deleted at the source) and S26 records a no-show, whatever SCH-25 says. Otherwise the
  status is SCH-25 (HL7 table 0278) by `mappings/hl7v2-appointment-status.json`, booked when absent.
- When: the start from SCH-11.4 (TQ, before v2.5), TQ1-7 (v2.5 on) or the first AIS's AIS-4; the end from
  SCH-11.5 or TQ1-8, else the start plus the length the message gives: TQ1-13 (quantity^units), SCH-9 in SCH-10's
  units, or AIS-7 in AIS-8's (minutes when no unit is given; a unit the hub does not know is an error, 102).
- Who: the patient by PID-3 (the CPR number when the identifier type or authority says so), practitioners by
  AIP-3, a location by AIL-3, other resources by AIG-3 (`mappings/hl7v2-participant-type.json`).
- Whether it is a video consultation: a configurable set of codes (`HUB_HL7V2_VIDEO_CODES`) matched against the
  appointment reason (SCH-7), the appointment type (SCH-8) and the services (AIS-3). Only video consultations
  book a VDX room; other SIU messages are acknowledged and kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.core.mappings import MAPPINGS, code_maps
from hub.core.model import Identifier, MeetingRequest, Participant, ParticipantKind
from hub.hl7v2.adt import patient_identifier
from hub.hl7v2.message import Hl7Message, Unmappable

TRIGGERS = ("S12", "S13", "S14", "S15", "S17", "S26")
FILLER_STATUS = "http://terminology.hl7.org/CodeSystem/v2-0278"
TRIGGER_SYSTEM = "urn:hub:hl7v2:siu-trigger"
APPOINTMENT_STATUS = "http://hl7.org/fhir/appointmentstatus"
SEGMENT_SYSTEM = "urn:hub:hl7v2:segment"
PARTICIPANT_KIND = "urn:hub:participant-kind"
# minutes in a unit of time, as senders write it (UCUM `s min h d`, ISO+ and plain words, any case)
UNITS = {"s": 1 / 60, "sec": 1 / 60, "second": 1 / 60, "seconds": 1 / 60, "min": 1, "m": 1, "minute": 1,
         "minutes": 1, "mins": 1, "h": 60, "hr": 60, "hrs": 60, "hour": 60, "hours": 60, "d": 1440, "day": 1440,
         "days": 1440}
KEY_PREFIX = "hl7v2"


@dataclass(frozen=True)
class VideoPolicy:
    codes: frozenset[str] = frozenset({"VIDEO"})

    def matches(self, message: Hl7Message) -> bool:
        found = {message.get("SCH.7.1"), message.get("SCH.8.1")}
        found |= {message.get("AIS.3.1", n) for n in range(1, len(message.segments("AIS")) + 1)}
        return bool({f.upper() for f in found if f} & {c.upper() for c in self.codes})


def source_key(message: Hl7Message) -> str:
    appointment = message.get("SCH.1.1") or message.get("SCH.2.1")
    if not appointment:
        raise Unmappable("The message names no appointment (SCH-1 placer id or SCH-2 filler id)", "SCH", 1)
    return f"{KEY_PREFIX}:{message.get('MSH.4') or message.get('MSH.3')}:{appointment}"


def meeting_request(message: Hl7Message) -> MeetingRequest:
    key = source_key(message)
    start, end = _times(message)
    maps = code_maps(MAPPINGS / "hl7v2-appointment-status.json")
    status = (maps.get(TRIGGER_SYSTEM, APPOINTMENT_STATUS, message.trigger)
              or maps.get(FILLER_STATUS, APPOINTMENT_STATUS, message.get("SCH.25.1") or None) or "booked")
    subject = message.get("SCH.7.2") or message.get("SCH.8.2") or message.get("SCH.7.1") or "Videokonsultation"
    return MeetingRequest(key, subject[:100], start, end, status=status, participants=tuple(_participants(message)))


def _times(message: Hl7Message) -> tuple[datetime, datetime]:
    start = message.time("SCH.11.4") or message.time("TQ1.7") or message.time("AIS.4")
    end = message.time("SCH.11.5") or message.time("TQ1.8")
    if start is None:
        raise Unmappable("The message gives no start time (SCH-11.4, TQ1-7 or AIS-4)", "SCH", 11)
    if end is None:
        length = _length(message, "TQ1.13.1", "TQ1.13.2") or _length(message, "SCH.9", "SCH.10") or \
            _length(message, "AIS.7", "AIS.8")
        end = start + length if length is not None else None
    if end is None or end <= start:
        raise Unmappable("The message gives no end after the start (SCH-11.5 or TQ1-8, or a length: TQ1-13, "
                         "SCH-9/10, AIS-7/8)", "SCH", 11)
    return start, end


def _length(message: Hl7Message, quantity: str, units: str) -> timedelta | None:
    """A length of time: a quantity (`30`) in units (`min`; minutes when none is given); None when the message
    gives none there (empty or HL7's null)."""
    amount = message.get(quantity)
    if not amount.replace(".", "", 1).isdigit():
        return None
    unit = message.get(f"{units}.1").strip().lower()
    if unit and unit not in UNITS:
        segment, field = units.split(".")[:2]
        raise Unmappable(f"{segment}-{field} is not a unit of time the hub knows: {unit!r}", segment, int(field),
                         "102")
    return timedelta(minutes=float(amount) * UNITS[unit or "min"])


def _participants(message: Hl7Message) -> list[Participant]:
    kinds = code_maps(MAPPINGS / "hl7v2-participant-type.json")
    out: list[Participant] = []
    patient = patient_identifier(message)
    if patient is not None:
        out.append(Participant(ParticipantKind.PATIENT, identifier=patient, status="accepted",
                               display=" ".join(n for n in (message.get("PID.5.2"), message.get("PID.5.1.1")) if n)
                               or None))
    for segment, occurrence in resource_segments(message):
        kind = ParticipantKind(kinds.get(SEGMENT_SYSTEM, PARTICIPANT_KIND, segment) or "other")
        value = tuple(message.get(f"{segment}.3.{c}", occurrence) for c in (1, 2, 3))
        display = " ".join(p for p in (value[2], value[1]) if p) if segment == "AIP" else value[1] or None
        out.append(Participant(kind, identifier=Identifier(f"urn:hub:hl7v2:{segment.lower()}:"
                                                          f"{message.get('MSH.4')}", value[0]),
                               display=display or None, status="accepted"))
    return out


def resource_segments(message: Hl7Message) -> list[tuple[str, int]]:
    """The AIP, AIL and AIG segments (and which of their kind) that name their resource in field 3: one
    participant each, in this order, after the patient."""
    return [(segment, occurrence) for segment in ("AIP", "AIL", "AIG")
            for occurrence in range(1, len(message.segments(segment)) + 1)
            if message.get(f"{segment}.3.1", occurrence)]
