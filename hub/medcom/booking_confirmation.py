"""MedCom's booking confirmation (XDIS13, `BookingConfirmation`) ⇄ the canonical meeting.

An XDIS13 tells the referring party (and the patient through it) when a referral has been booked: the time in
`Confirmation` (Danish local time, to the minute), a line of text (`ClinicalInformation/Text03`, at most 70
characters), the patient, the referral it answers. XDIS13 has no end time and no field saying "video"; the
hub's policy (`Xdis13Policy`, from configuration):
- a confirmation is a video consultation when its Text03 matches `video_pattern` (by default any mention of
  "video", as in "Videokonsultation" or "videomøde"); only those book a VDX room;
- the meeting lasts `duration` (default 30 minutes) from the confirmed time;
- the booking is known by the sender's EAN and the referral's identifier (else the letter's), so a corrected
  letter (`rettetbrev`) moves the meeting its first letter booked.

The other way, `write_confirmation` writes the XDIS13 of a meeting booked through FHIR: the confirmed time is
the meeting's start, Text03 the subject and the room's short link (70 characters: the link kept whole, or left out),
the patient by CPR number, which XDIS13 requires. Pure functions over parsed trees and values.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from hub.core.cpr import CPR_SYSTEM
from hub.core.model import Identifier, MeetingRequest, Participant, ParticipantKind
from hub.medcom.envelope import Emessage, Letter, element_text

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
NAMESPACE = "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2006/07/01/"
ELEMENT = "BookingConfirmation"
TEXT_LIMIT = 70
GLN_SYSTEM = "https://www.gs1.org/gln"
KEY_PREFIX = "xdis13"


class NotABooking(ValueError):
    """The confirmation cannot become a meeting (no time, no patient) or the meeting no confirmation."""


@dataclass(frozen=True)
class Xdis13Policy:
    video_pattern: re.Pattern[str] = re.compile(r"(?i)video")
    duration: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class BookingConfirmation:
    letter_id: str
    status: str  # nytbrev | rettetbrev
    sender_ean: str
    sender_name: str | None
    receiver_ean: str
    patient: Identifier | None  # CPR (or the letter's alternative identifier)
    patient_name: str | None
    referral_id: str | None
    confirmed: datetime | None  # UTC
    text: str | None

    @property
    def source_key(self) -> str:
        """The booking's identity across corrected letters: sender EAN and referral (else letter) id."""
        return f"{KEY_PREFIX}:{self.sender_ean}:{self.referral_id or self.letter_id}"


def read_confirmation(letter: Letter) -> BookingConfirmation:
    """A BookingConfirmation letter the schema has accepted."""
    element = letter.element
    date, time = element_text(element, "Confirmation", "Date"), element_text(element, "Confirmation", "Time")
    confirmed = None
    if date and time:
        confirmed = datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=COPENHAGEN).astimezone(UTC)
    cpr = element_text(element, "Patient", "CivilRegistrationNumber")
    alternative = element_text(element, "Patient", "AlternativeIdentifier")
    patient = Identifier(CPR_SYSTEM, cpr) if cpr else (
        Identifier("urn:hub:medcom:alternative-identifier", alternative) if alternative else None)
    name = " ".join(n for n in (element_text(element, "Patient", "PersonGivenName"),
                                element_text(element, "Patient", "PersonSurnameName")) if n) or None
    return BookingConfirmation(
        letter.identifier or "", element_text(element, "Letter", "StatusCode") or "nytbrev", letter.sender_ean or "",
        element_text(element, "Sender", "OrganisationName"), letter.receiver_ean or "", patient, name,
        element_text(element, "Referral", "Identifier"), confirmed, element_text(element, "ClinicalInformation",
                                                                                 "Text03"))


def is_video(confirmation: BookingConfirmation, policy: Xdis13Policy) -> bool:
    return bool(confirmation.text and policy.video_pattern.search(confirmation.text))


def to_meeting_request(confirmation: BookingConfirmation, policy: Xdis13Policy) -> MeetingRequest:
    if confirmation.confirmed is None:
        raise NotABooking("The booking confirmation has no Confirmation time")
    if confirmation.patient is None:
        raise NotABooking("The booking confirmation names no patient")
    participants = [Participant(ParticipantKind.PATIENT, identifier=confirmation.patient,
                                display=confirmation.patient_name, status="accepted"),
                    Participant(ParticipantKind.OTHER, identifier=Identifier(GLN_SYSTEM, confirmation.sender_ean),
                                display=confirmation.sender_name, status="accepted")]
    return MeetingRequest(confirmation.source_key, (confirmation.text or "Videokonsultation")[:100],
                          confirmation.confirmed, confirmation.confirmed + policy.duration,
                          participants=tuple(participants))


@dataclass(frozen=True)
class Party:
    """Who an XDIS13 is from or to: EAN, the id XDIS13 names it by (SOR id, else the EAN) and its name."""

    ean: str
    name: str
    sor: str | None = None


def write_confirmation(sender: Party, receiver: Party, patient_cpr: str, patient_name: str | None,
                       start: datetime, text: str, sent: datetime) -> bytes:
    """The XDIS13 Emessage (2006/07/01, ISO-8859-1) confirming a meeting at `start`."""
    root = etree.Element(f"{{{NAMESPACE}}}Emessage", nsmap={None: NAMESPACE})
    local_sent = sent.astimezone(COPENHAGEN)
    envelope = _sub(root, "Envelope")
    _date_time(_sub(envelope, "Sent"), local_sent)
    _sub(envelope, "Identifier", uuid.uuid4().hex[:14].upper())
    _sub(envelope, "AcknowledgementCode", "pluspositivkvitt")
    confirmation = _sub(root, ELEMENT)
    letter = _sub(confirmation, "Letter")
    _sub(letter, "Identifier", uuid.uuid4().hex[:14].upper())
    _sub(letter, "VersionCode", "XD1333L")
    _sub(letter, "StatisticalCode", "XDIS13")
    _date_time(_sub(letter, "Authorisation"), local_sent)
    _sub(letter, "TypeCode", "XDIS13")
    _sub(letter, "StatusCode", "nytbrev")
    for tag, party in (("Sender", sender), ("Receiver", receiver)):
        node = _sub(confirmation, tag)
        _sub(node, "EANIdentifier", party.ean)
        _sub(node, "Identifier", party.sor or party.ean)
        _sub(node, "IdentifierCode", "sorkode" if party.sor else "lokationsnummer")
        _sub(node, "OrganisationName", party.name[:70])
    patient = _sub(confirmation, "Patient")
    _sub(patient, "CivilRegistrationNumber", patient_cpr)
    given, _, surname = (patient_name or "").rpartition(" ")
    _sub(patient, "PersonSurnameName", (surname or "Ukendt")[:70])
    if given:
        _sub(patient, "PersonGivenName", given[:70])
    _sub(patient, "EpisodeOfCareStatusCode", "ambulant")  # a video consultation is an outpatient contact
    _date_time(_sub(confirmation, "Confirmation"), start.astimezone(COPENHAGEN))
    _sub(_sub(confirmation, "ClinicalInformation"), "Text03", _fit(text))
    return etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1")  # type: ignore[no-any-return]


def confirmations(emessage: Emessage) -> list[Letter]:
    """The BookingConfirmation letters of an envelope."""
    return [letter for letter in emessage.letters if letter.kind == ELEMENT]


def _fit(text: str) -> str:
    """Text03 holds 70 characters: a link at the end is kept whole and the words before it cut to fit; a link
    longer than that is left out (a link cut short leads nowhere)."""
    text = " ".join(text.split())
    if len(text) <= TEXT_LIMIT:
        return text
    words, link = text.rsplit(" ", 1) if " " in text else ("", text)
    if not link.startswith("http"):
        return text[:TEXT_LIMIT]
    if len(link) < TEXT_LIMIT - 1:
        return f"{words[:TEXT_LIMIT - len(link) - 1].rstrip()} {link}".strip()
    return words[:TEXT_LIMIT] or "Videomøde"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}")
    if text is not None:
        child.text = text
    return child


def _date_time(parent: etree._Element, moment: datetime) -> None:
    _sub(parent, "Date", moment.strftime("%Y-%m-%d"))
    _sub(parent, "Time", moment.strftime("%H:%M"))



def confirmation_of(appointment: dict[str, Any], patient_key: str | None, start: datetime, link: str | None,
                    sender: Party, receiver: Party, sent: datetime) -> bytes:
    """The XDIS13 of a booked meeting (its Appointment as the hub keeps it, the patient's `system|value` key,
    the link to join: the room's short link, which fits Text03 where the portal's long link does not)."""
    system, _, cpr = (patient_key or "").partition("|")
    if system != CPR_SYSTEM or not cpr:
        raise NotABooking("XDIS13 names the patient by CPR number; this appointment's patient has none")
    actors = [p.get("actor") or {} for p in appointment.get("participant", [])]
    patient_name = next((a["display"] for a in actors if a.get("display")
                         and (a.get("identifier") or {}).get("value") == cpr), None)
    subject = str(appointment.get("description") or "Videomøde")
    return write_confirmation(sender, receiver, cpr, patient_name, start, f"{subject} {link}" if link else subject,
                              sent)
