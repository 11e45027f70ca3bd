"""A booked video meeting → HL7 v2 SIU (pure): what the hub tells an HL7 v2 scheduling system.

Which message (MSH-9 `SIU^<trigger>^SIU_S12`), from the outbox topic the booking flow wrote:

- `meeting.booked` is S12 (new booking).
- `meeting.cancelled` is S15, or what the inverse of the status ConceptMap's trigger group says for the status:
  `entered-in-error` S17 (deletion), `noshow` S26, so that the hub's own SIU reader reads back the same status.
- `meeting.updated` carries only the new times, so the caller passes `previous`, the times the receiver was last
  told (and accepted): S13 (rescheduled) when start or end differ from them, else S14 (modified: status,
  participants, room). Without `previous` the receiver never took the appointment (its S12 was refused, or the
  receiver was configured after the booking): S12, so that it learns of it now instead of refusing a change to an
  appointment it does not know.

What it says, and where:

- SCH-1 the hub's appointment id (placer), SCH-2 the VDX meeting uuid (filler; after a cancellation the room's
  uuid from the stored Appointment), SCH-6 the trigger as HL7 table 0003 names it, SCH-7 the Appointment's
  description as text, SCH-8 and AIS-3 `VIDEO^Videokonsultation` (the code the hub's SIU reader takes for a video
  consultation), SCH-9/10 and AIS-7/8 the duration in minutes, SCH-11 (TQ components 4 and 5) and TQ1-7/8 start
  and end as DTM with the Danish offset, SCH-25 the status by HL7 table 0278.
- Times and status come from the outbox payload (the event); the rest from the Appointment as it is stored now.
- SCH-16 (filler contact) the first practitioner, else the sending application; SCH-20 (entered by) the sending
  application: both are required fields, and the hub entered the booking on the sender's behalf.
- NTE-1 the meeting link and NTE-2 the room's SIP URI (the room extensions, only while they belong to the room
  SCH-2 names); neither is personal data.
- PID when the Appointment names its patient by an identifier: PID-3 `<cpr>^^^CPR&1.2.208.176.1.2&ISO^NNDNK`
  for a CPR number, `<id>^^^&<oid>&ISO` (or `&<uri>&URI`) for another; PID-5 from a contained Patient's name,
  else the reference's display (Danish order: the last word is the surname), else `^^^^^^U` (unspecified).
  A patient known only by a literal reference gets no PID: the receiver could not match it.
- RGS, AIS (the service), one AIL per Location and one AIP per Practitioner/PractitionerRole (id and name as
  for the patient). Care teams and related persons are not sent.

Values are escaped (`\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`), control characters (which would break MLLP framing)
become spaces, and text is cut to its data type's length (ST 199, IS 20) so that the message passes hl7apy's
strict validation. The status map is data: `mappings/hl7v2-appointment-status.json` (table 0278 → FHIR status,
written for the inbound direction) read inverted, preferring `equivalent` entries. Versions: 2.5, 2.5.1 and 2.6,
the ones whose SCH still has SCH-9 to SCH-11 (2.7 withdrew them) and that have TQ1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hub.core.cpr import CPR_SYSTEM, InvalidCpr, normalise
from hub.core.mappings import MAPPINGS
from hub.fhir.appointment import ROOM_EXTENSIONS, VDX_SYSTEM
from hub.fhir.references import contained_by_id, identifiers_of, target_type

STATUS_MAP = MAPPINGS / "hl7v2-appointment-status.json"
FILLER_STATUS = "http://terminology.hl7.org/CodeSystem/v2-0278"
TRIGGER_SYSTEM = "urn:hub:hl7v2:siu-trigger"
APPOINTMENT_STATUS = "http://hl7.org/fhir/appointmentstatus"
BOOKED, UPDATED, CANCELLED = "meeting.booked", "meeting.updated", "meeting.cancelled"
TOPICS = (BOOKED, UPDATED, CANCELLED)
VERSIONS = ("2.5", "2.5.1", "2.6")
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
VIDEO = ("VIDEO", "Videokonsultation")
LOCAL_CODES = "99HUB"  # HL7 table 0396: a local coding system
# HL7 table 0003, the SIU events the hub sends (SCH-6, event reason)
EVENTS = {
    "S12": "Notification of new appointment booking",
    "S13": "Notification of appointment rescheduling",
    "S14": "Notification of appointment modification",
    "S15": "Notification of appointment cancellation",
    "S17": "Notification of appointment deletion",
    "S26": "Notification that patient did not show up for scheduled appointment",
}
CPR_AUTHORITY = "CPR&1.2.208.176.1.2&ISO"
CPR_TYPE = "NNDNK"  # HL7 table 0203: national person identifier, country DNK
ST, IS = 199, 20  # the lengths hl7apy holds these data types to
_PRACTITIONERS = ("Practitioner", "PractitionerRole")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"}


@dataclass(frozen=True)
class StatusMap:
    """FHIR Appointment.status → HL7 table 0278 (SCH-25), and → the SIU trigger of a cancellation."""

    filler_status: dict[str, str]
    cancel_trigger: dict[str, str]


@cache
def status_map(path: Path = STATUS_MAP) -> StatusMap:
    """The inbound ConceptMap read backwards: for each FHIR status the v2 code that maps to it, an `equivalent`
    (or `equal`) entry before a `wider` or `narrower` one, the first listed among equals."""
    concept_map = json.loads(path.read_text(encoding="utf-8"))
    inverted: dict[str, dict[str, tuple[int, str]]] = {FILLER_STATUS: {}, TRIGGER_SYSTEM: {}}
    for group in concept_map["group"]:
        found = inverted.get(group["source"])
        if found is None or group.get("target") != APPOINTMENT_STATUS:
            continue
        for element in group["element"]:
            for target in element.get("target", []):
                equivalence = target.get("equivalence")
                if "code" not in target or equivalence in ("unmatched", "disjoint"):
                    continue
                rank = 0 if equivalence in ("equivalent", "equal") else 1
                if target["code"] not in found or rank < found[target["code"]][0]:
                    found[target["code"]] = (rank, element["code"])
    return StatusMap({k: v for k, (_, v) in inverted[FILLER_STATUS].items()},
                     {k: v for k, (_, v) in inverted[TRIGGER_SYSTEM].items()})


def trigger_event(topic: str, status: str, start: datetime, end: datetime,
                  previous: tuple[datetime, datetime] | None, statuses: StatusMap) -> str:
    """The SIU trigger for an outbox event (the rules in the module docstring)."""
    if topic == BOOKED:
        return "S12"
    if topic == CANCELLED:
        return statuses.cancel_trigger.get(status, "S15")
    if topic != UPDATED:
        raise ValueError(f"no SIU for the outbox topic {topic!r}")
    if previous is None:
        return "S12"
    return "S14" if previous == (start, end) else "S13"


def siu_message(topic: str, appointment: dict[str, Any], payload: dict[str, Any],
                previous: tuple[datetime, datetime] | None = None, *, control_id: str, now: datetime,
                sending: tuple[str, str], receiving: tuple[str, str], version: str = "2.5.1",
                processing_id: str = "P", statuses: Path = STATUS_MAP) -> bytes:
    """The SIU for one outbox event about a stored Appointment, UTF-8 encoded, segments ended by CR."""
    if version not in VERSIONS:
        raise ValueError(f"the hub writes SIU in HL7 v2 {', '.join(VERSIONS)}, not {version}")
    start, end = _instant(payload["start"]), _instant(payload["end"])
    status = str(payload.get("status") or appointment.get("status") or "booked")
    codes = status_map(statuses)
    trigger = trigger_event(topic, status, start, end, previous, codes)
    contained = contained_by_id(appointment)
    actors = [(p.get("actor") or {}, target_type(p.get("actor"), contained))
              for p in appointment.get("participant", [])]
    practitioners = [_person(actor, contained) for actor, kind in actors if kind in _PRACTITIONERS]
    locations = [actor for actor, kind in actors if kind == "Location"]
    patient = next((actor for actor, kind in actors if kind == "Patient"), None)
    room = str(payload.get("vdx_uuid") or "") or _vdx_uuid(appointment)
    minutes = str(round((end - start).total_seconds() / 60))
    app = escape(sending[0].strip())  # not cut: a name too long for MSH-3 fails validation, as it should

    msh = ["MSH", "^~\\&", app, escape(sending[1].strip()), escape(receiving[0].strip()),
           escape(receiving[1].strip()), _dtm(now), "", f"SIU^{trigger}^SIU_S12", escape(control_id), processing_id,
           version, "", "", "", "", "DNK", "UNICODE UTF-8"]
    sch = {1: f"{_text(str(payload['appointment']), ST)}^{app}", 6: f"{trigger}^{EVENTS[trigger]}^HL70003",
           8: f"{VIDEO[0]}^{VIDEO[1]}^HL70277", 9: minutes, 10: "min^^ISO+",
           11: f"^^^{_dtm(start)}^{_dtm(end)}", 16: practitioners[0] if practitioners else f"^{app}", 20: f"^{app}"}
    if room:
        sch[2] = f"{_text(room, ST)}^VDX^{VDX_SYSTEM}^URI"
    description = str(appointment.get("description") or "")
    if description.strip():
        sch[7] = f"^{_text(description, ST)}"
    filler_status = codes.filler_status.get(status)
    if filler_status:
        sch[25] = f"{_text(filler_status, ST)}^^HL70278"
    segments = ["|".join(msh), _segment("SCH", sch), _segment("TQ1", {1: "1", 7: _dtm(start), 8: _dtm(end)})]
    segments += _notes(appointment, room)
    if patient is not None:
        segments += _pid(patient, contained)
    segments += ["RGS|1", _segment("AIS", {1: "1", 3: f"{VIDEO[0]}^{VIDEO[1]}^{LOCAL_CODES}", 4: _dtm(start),
                                           7: minutes, 8: "min^^ISO+"})]
    segments += [_segment("AIL", {1: str(n), 3: _location(actor, contained)}) for n, actor in enumerate(locations, 1)]
    segments += [_segment("AIP", {1: str(n), 3: person}) for n, person in enumerate(practitioners, 1)]
    return ("\r".join(segments) + "\r").encode("utf-8")


# --- values ---------------------------------------------------------------------------------------------------


def escape(value: str, formatted: bool = False) -> str:
    """HL7's escape sequences for the separators and the escape character; line ends become `\\.br\\` in a
    formatted text (FT) and spaces elsewhere, other control characters spaces (VT and FS would break MLLP)."""
    out = "".join(_ESCAPES.get(c, c) for c in value)
    if formatted:
        out = "\\.br\\".join(out.splitlines())
    return _CONTROL.sub(" ", out)


def _text(value: str, limit: int) -> str:
    """`value` escaped and cut to `limit` characters as written, never inside an escape sequence."""
    out: list[str] = []
    size = 0
    for char in value.strip():
        piece = escape(char)
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out).rstrip()


def _dtm(moment: datetime) -> str:
    """HL7 DTM to the second, in Danish time with its offset (`20250301101500+0100`)."""
    return moment.astimezone(COPENHAGEN).strftime("%Y%m%d%H%M%S%z")


def _instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"a time without an offset: {value}")
    return moment


def _segment(name: str, fields: dict[int, str]) -> str:
    return "|".join([name] + [fields.get(n, "") for n in range(1, max(fields) + 1)])


def _vdx_uuid(appointment: dict[str, Any]) -> str:
    """The room the Appointment names: its current VDX meeting id, else (cancelled) the last old one."""
    rooms = [i for i in appointment.get("identifier", []) if i.get("system") == VDX_SYSTEM and i.get("value")]
    current = [i for i in rooms if i.get("use") != "old"]
    return str((current or rooms)[-1]["value"]) if rooms else ""


def _notes(appointment: dict[str, Any], room: str) -> list[str]:
    """NTE segments with the meeting link and room URI, if they belong to the room SCH-2 names."""
    current = [i.get("value") for i in appointment.get("identifier", [])
               if i.get("system") == VDX_SYSTEM and i.get("use") != "old"]
    if room and room not in current:
        return []  # the Appointment has moved on to another room since this event
    extensions = {e.get("url"): e for e in appointment.get("extension", [])}
    notes: list[str] = []
    for attr, kind in (("meeting_url", "VIDEOURL^Link til videomødet"), ("uri", "VMRURI^Videorummets SIP-adresse")):
        url, value_type = ROOM_EXTENSIONS[attr]
        value = (extensions.get(url) or {}).get(value_type)
        if value:
            notes.append(_segment("NTE", {1: str(len(notes) + 1), 2: "L", 3: escape(str(value), formatted=True),
                                          4: f"{kind}^{LOCAL_CODES}"}))
    return notes


def _identifier(actor: dict[str, Any], contained: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """(system, value) naming the actor: a CPR number first, else its first identifier."""
    found = [(str(i["system"]), str(i["value"])) for i in identifiers_of(actor, contained)
             if i.get("system") and i.get("value")]
    return next((i for i in found if i[0] == CPR_SYSTEM), found[0] if found else None)


def _authority(system: str) -> str:
    """An identifier system as an HD (assigning authority): an OID as ISO, anything else as URI."""
    if system.startswith("urn:oid:"):
        return f"&{_text(system[8:], ST)}&ISO"
    return f"&{_text(system, ST)}&URI"


def _name(actor: dict[str, Any], contained: dict[str, dict[str, Any]]) -> tuple[str, str] | None:
    """(surname, given names): a contained resource's first HumanName, else the display, last word the surname."""
    reference = str(actor.get("reference") or "")
    names = contained.get(reference[1:], {}).get("name", []) if reference.startswith("#") else []
    if isinstance(names, list) and names and isinstance(names[0], dict):
        name = names[0]
        given = " ".join(str(g) for g in name.get("given", []))
        family = str(name.get("family") or "")
        if family or given:
            return family, given
    words = str(actor.get("display") or "").split()
    return (words[-1], " ".join(words[:-1])) if words else None


def _local_id(actor: dict[str, Any]) -> str:
    """The id of a literal reference (`Practitioner/107302` → `107302`); '' for a contained one."""
    reference = str(actor.get("reference") or "")
    return "" if reference.startswith("#") else reference.rstrip("/").split("/")[-1]


def _person(actor: dict[str, Any], contained: dict[str, dict[str, Any]]) -> str:
    """An XCN: id, surname, given names, assigning authority (component 9)."""
    ident = _identifier(actor, contained)
    name = _name(actor, contained) or ("", "")
    fields = [_text(ident[1] if ident else _local_id(actor), ST), _text(name[0], ST), _text(name[1], ST)]
    if ident is not None:
        fields += [""] * 5 + [_authority(ident[0])]
    return "^".join(fields).rstrip("^")


def _pid(actor: dict[str, Any], contained: dict[str, dict[str, Any]]) -> Sequence[str]:
    ident = _identifier(actor, contained)
    if ident is None:
        return []
    system, value = ident
    if system == CPR_SYSTEM:
        with suppress(InvalidCpr):  # otherwise sent as the Appointment gave it: the receiver judges it
            value = normalise(value)
        pid3 = f"{_text(value, ST)}^^^{CPR_AUTHORITY}^{CPR_TYPE}"
    else:
        pid3 = f"{_text(value, ST)}^^^{_authority(system)}"
    name = _name(actor, contained)
    pid5 = f"{_text(name[0], ST)}^{_text(name[1], ST)}".rstrip("^") if name else "^^^^^^U"
    return [_segment("PID", {1: "1", 3: pid3, 5: pid5 or "^^^^^^U"})]


def _location(actor: dict[str, Any], contained: dict[str, dict[str, Any]]) -> str:
    """A PL: its point of care (component 1, IS) the location's id where it fits, its description (9) the
    display."""
    ident = _identifier(actor, contained)
    code = _text(ident[1] if ident else _local_id(actor), ST)
    display = _text(str(actor.get("display") or ""), ST)
    parts = [code if len(code) <= IS else ""] + [""] * 7 + [display or code]
    return "^".join(parts).rstrip("^")
