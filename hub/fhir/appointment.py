"""FUT video appointment (FHIR Appointment) ⇄ the canonical meeting.

Inbound: which meeting the sender wants, and the key that makes a resend recognisable. Outbound: the
Appointment as FUT shows a booked video appointment, with the VDX meeting id as identifier and the meeting
link, room URI and PINs as extensions. Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.core.model import Identifier, MeetingRequest, Participant, ParticipantKind, Room
from hub.fhir.references import contained_by_id, identifiers_of, target_type
from hub.fhir.videoappointment import PROFILE, parse_datetime

VDX_SYSTEM = "http://vdx.medcom.dk/meeting"
EXT = "http://ehealth.sundhed.dk/fhir/StructureDefinition/"
ROOM_EXTENSIONS = {
    "meeting_url": (EXT + "ehealth-meeting-url", "valueUri"),
    "uri": (EXT + "ehealth-vmr-uri", "valueUri"),
    "guest_pin": (EXT + "ehealth-guest-pin-code", "valueString"),
    "host_pin": (EXT + "ehealth-host-pin-code", "valueString"),
}
_KINDS = {
    "Patient": ParticipantKind.PATIENT,
    "Practitioner": ParticipantKind.PRACTITIONER,
    "PractitionerRole": ParticipantKind.PRACTITIONER,
    "RelatedPerson": ParticipantKind.RELATED_PERSON,
    "CareTeam": ParticipantKind.CARE_TEAM,
    "Location": ParticipantKind.LOCATION,
}
DEFAULT_SUBJECT = "Videomøde"


def source_key(appt: dict[str, Any], if_none_exist: str | None = None) -> str:
    """What makes a resend the same booking: the sender's identifier, If-None-Exist, or the content itself.

    The first identifier not assigned by VDX wins. Without one, `If-None-Exist` is used; without that, a hash
    of the resource as sent (so an unchanged resend is still recognised).
    """
    for ident in appt.get("identifier", []):
        if ident.get("system") and ident.get("value") and ident["system"] != VDX_SYSTEM:
            return f"{ident['system']}|{ident['value']}"
    if if_none_exist:
        return f"if-none-exist:{if_none_exist.strip()}"
    stripped = {k: v for k, v in appt.items() if k not in ("id", "meta", "text")}
    return "sha256:" + hashlib.sha256(orjson.dumps(stripped, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _extension(appt: dict[str, Any], name: str) -> Any:
    for e in appt.get("extension", []):
        if e.get("url") == EXT + name:
            return next((v for k, v in e.items() if k.startswith("value")), None)
    return None


def _participant(p: dict[str, Any], contained: dict[str, dict[str, Any]]) -> Participant:
    actor = p.get("actor")
    kind = _KINDS.get(target_type(actor, contained) or "", ParticipantKind.OTHER)
    idents = [i for i in identifiers_of(actor, contained) if i.get("system") and i.get("value")]
    ident = Identifier(idents[0]["system"], idents[0]["value"]) if idents else None
    ref = actor.get("reference") if actor else None
    return Participant(kind, ref, ident, (actor or {}).get("display"), p.get("status"))


def to_meeting_request(appt: dict[str, Any], key: str) -> MeetingRequest:
    """The canonical meeting; call only on an Appointment that passed the video-appointment rules."""
    contained = contained_by_id(appt)
    start = parse_datetime(appt["start"])
    end = parse_datetime(appt["end"])
    assert start and end
    subject = (appt.get("description") or DEFAULT_SUBJECT).strip()[:100] or DEFAULT_SUBJECT
    return MeetingRequest(
        source_key=key,
        subject=subject,
        start=start,
        end=end,
        status=appt.get("status", "booked"),
        max_participants=_extension(appt, "ehealth-max-participants"),
        end_meeting_on_end_time=_extension(appt, "ehealth-end-meeting-on-end-time"),
        participants=tuple(_participant(p, contained) for p in appt.get("participant", [])),
    )


def core_appointment(request: MeetingRequest, identifier_system: str) -> dict[str, Any]:
    """The core R4 Appointment the hub keeps and shows for a meeting booked from another format (a MedCom
    booking confirmation, an HL7 v2 SIU): what those say is not enough for FUT's video appointment profile.
    The source key is its identifier; participants by identifier."""
    return {
        "resourceType": "Appointment",
        "identifier": [{"system": identifier_system, "value": request.source_key}],
        "status": request.status,
        "description": request.subject,
        "start": request.start.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "end": request.end.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "participant": [{"actor": {**({"identifier": {"system": p.identifier.system, "value": p.identifier.value}}
                                      if p.identifier else {}), **({"display": p.display} if p.display else {})},
                         "status": p.status or "accepted"} for p in request.participants
                        if p.identifier or p.display],
    }


def patient_search_keys(req: MeetingRequest) -> tuple[str | None, str | None]:
    """(reference, system|value) of the patient, the columns `?patient=` searches."""
    p = req.patient
    if p is None:
        return None, None
    return p.reference, p.identifier.key if p.identifier else None


def render(
    appt: dict[str, Any],
    appointment_id: str,
    version: int,
    last_updated: datetime,
    room: Room | None,
    old_rooms: Sequence[Room] = (),
    profile: str | None = PROFILE,
) -> dict[str, Any]:
    """The Appointment the hub answers with: the sender's resource plus what the booking added (and the FUT
    video appointment profile, unless `profile` is None: a meeting booked from a MedCom letter is core R4)."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(appt))  # a deep copy, several times faster than deepcopy
    out["id"] = appointment_id
    meta = dict(out.get("meta", {}))
    meta["versionId"] = str(version)
    meta["lastUpdated"] = last_updated.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    profiles = list(meta.get("profile", []))
    if profile is not None and profile not in profiles:
        profiles.append(profile)
    if profiles:
        meta["profile"] = profiles
    out["meta"] = meta
    idents = [i for i in out.get("identifier", []) if i.get("system") != VDX_SYSTEM]
    if room is not None:
        idents.append({"use": "official", "system": VDX_SYSTEM, "value": room.vdx_uuid})
    idents += [{"use": "old", "system": VDX_SYSTEM, "value": r.vdx_uuid} for r in old_rooms]
    if idents:
        out["identifier"] = idents
    room_urls = {url for url, _ in ROOM_EXTENSIONS.values()}
    exts = [e for e in out.get("extension", []) if e.get("url") not in room_urls]
    if room is not None:
        for attr, (url, value_type) in ROOM_EXTENSIONS.items():
            value = getattr(room, attr)
            if value:
                exts.append({"url": url, value_type: str(value)})
    out["extension"] = exts
    return out
