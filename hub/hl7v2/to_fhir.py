"""An HL7 v2 message as the FHIR the hub acts on (pure): `hub convert FILE.hl7 --to fhir`.

The message becomes what the V2-to-FHIR IG's message sheet for its structure says (`hub.hl7v2.ig_messages`:
`ADT_A01`, `SIU_S12`, …), by the segment sheets the hub applies (`BY_SHEET`; `hub.hl7v2.ig_mapping`): the Patient
(PID, PD1, PV1, NK1 as its contacts), the Encounter (PV1, PV2) with the Locations and Practitioners the visit
names, the next of kin (NK1, RelatedPerson), the MessageHeader (MSH) and the Provenance of the event (EVN, or
MSH's operator), the Appointment's reason, type, services and contacts (SCH, AIS). Every other row of the message
sheets is listed in `NOT_CONVERTED` with the reason. In place of the sheets' own, what the hub acts on:
- an ADT's stay as the hub records it (`hub.hl7v2.adt`: its identifier first, status, class, period); the stay's
  life cycle also decides the status of where the patient is (the sheets' `active`: `completed` once discharged);
- an SIU's booking as the flows make it (`hub.hl7v2.siu`: status, times, the patient and the participants AIP,
  AIL and AIG name), each participant with its role and start by its segment's sheet (`BY_PARTICIPANT`);
- after a merge (A40) the Patient replaces the one MRG-1 names.
A `collection` Bundle, its resources referring to each other by `urn:uuid` (ids derived from the message, or for
the resources the sheets make from their content, so the same message gives the same Bundle).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hub.core.model import EncounterEvent, Participant, ParticipantKind
from hub.fhir import appointment as fa
from hub.fhir.messaging import narrative
from hub.hl7v2 import adt, ig_messages, siu
from hub.hl7v2.ig_mapping import IgMapping
from hub.hl7v2.ig_messages import Made
from hub.hl7v2.message import Hl7Message, Unmappable, hl7_time

IDS = uuid.UUID("3b0d6c55-1f4e-4b8e-9c3a-2d8f6f1e0a47")
RESOURCE_TYPES = {ParticipantKind.PATIENT: "Patient", ParticipantKind.PRACTITIONER: "Practitioner",
                  ParticipantKind.LOCATION: "Location"}
# The segment sheets the message sheets' rows are applied by; and those applied to the booking's participants.
BY_SHEET = frozenset({"PID[Patient]", "PD1[Patient]", "PV1[Patient]", "NK1[Patient]", "NK1[RelatedPerson]",
                      "PV1[Encounter]", "PV2[Encounter]", "MSH[Encounter]", "MSH[MessageHeader]", "EVN[Provenance]",
                      "MSH[Provenance-Operator]", "SCH[Appointment]", "AIS[Appointment]"})
BY_PARTICIPANT = frozenset({"AIP[Appointment]", "AIL[Appointment]", "AIG[Appointment]"})
_OUTSIDE = "outside what the hub converts (stays, patients, their next of kin, appointments)"
# The message sheets' other segment sheets, and why the hub does not apply them.
NOT_CONVERTED: dict[str, str] = {
    "MSH[Bundle]": "the Bundle is the hub's own (a collection, its id derived from the message)",
    "MSH[Provenance-Source]": "the sending system's Provenance: the MessageHeader names the source",
    "MSH[Provenance-Transformation]": "a Provenance of the conversion itself: the hub keeps the raw message",
    "SFT[Device]": "the sending software as a Device: " + _OUTSIDE,
    "PID[Account]": "the patient's account (billing): " + _OUTSIDE,
    "PID[Provenance-Patient]": "the provenance of the patient's identity (PID-33/34): " + _OUTSIDE,
    "PID[Appointment]": "the patient as the Appointment's participant: the booking names the patient (hub.hl7v2.siu)",
    "PD1[Observation-LivingWill]": "a living will as an Observation: " + _OUTSIDE,
    "ROL[Patient-GeneralPractitioner]": "roles (ROL) follow the PID or the PV1 they are about; which occurrence, "
    "the message sheets say by position only",
    "ROL[CareTeam]": "(ROL[Patient-GeneralPractitioner]'s)",
    "ROL[Encounter-PractitionerRole]": "(ROL[Patient-GeneralPractitioner]'s)",
    "PRT[Patient-GeneralPractitioner-Practitioner]": "(ROL[Patient-GeneralPractitioner]'s)",
    "PRT[CareTeam]": "(ROL[Patient-GeneralPractitioner]'s)",
    "PV1[Basic-EncounterHistory]": "the stay's history as a Basic resource: the hub keeps the stay's events "
    "(GET /fhir/Encounter)",
    "PV1[Coverage]": "the insurance (PV1-20): " + _OUTSIDE,
    "OBX[Observation]": "observations: " + _OUTSIDE,
    "OBX[Observation-Component]": "(OBX[Observation]'s)",
    "AL1[AllergyIntolerance]": "allergies: " + _OUTSIDE,
    "DG1[Condition]": "diagnoses: " + _OUTSIDE,
    "DG1[Encounter]": "(DG1[Condition]'s)",
    "PR1[Procedure]": "procedures: " + _OUTSIDE,
    "DG1[EpisodeOfCare]": "(DG1[Condition]'s)",
    "PRT[Patient-GeneralPractitioner-PractitionerRole]": "(ROL[Patient-GeneralPractitioner]'s)",
    "MRG[Account]": "the merged patient's account (billing): " + _OUTSIDE + "; the merge itself moves the stays "
    "(hub.hl7v2.adt)",
    "IN3[CareTeam]": "(IN1[Coverage]'s)",
    "IN1[Coverage]": "insurance: " + _OUTSIDE,
    "NTE[Appointment-Comment]": "notes: the hub keeps the raw message",
    "SCH[ServiceRequest]": "the order behind the appointment: the hub converts the scheduling, not the order",
    "AIS[ServiceRequest]": "(SCH[ServiceRequest]'s)",
    "SCH[Provenance]": "the scheduling's Provenance: the MessageHeader names the source",
}


class NotConvertible(ValueError):
    """The message is not one the hub converts (only the SIU and ADT events it takes)."""


def to_bundle(message: Hl7Message, mapping: IgMapping) -> dict[str, Any]:
    key = f"{message.sender}:{message.control_id}"
    if not (message.message_type == "SIU" and message.trigger in siu.TRIGGERS
            or message.message_type == "ADT" and message.trigger in adt.TRIGGERS):
        raise NotConvertible(f"{message.message_type}^{message.trigger} is not converted; the hub converts SIU "
                             f"{', '.join(siu.TRIGGERS)} and ADT {', '.join(adt.TRIGGERS)}")
    if adt.patient_identifier(message) is None:
        raise Unmappable("The message names no patient (PID-3)", "PID", 3)
    sheet = ig_messages.sheet_for(message, mapping)
    made = ig_messages.apply(message, mapping, sheet, BY_SHEET, lambda target, n: _id(key, f"{target}/{n}")) \
        if sheet else Made()
    patient = _patient(message, key, made)
    if message.message_type == "SIU":
        entries = _appointment(message, key, mapping, made, patient)
    elif message.trigger in adt.PATIENT_TRIGGERS:
        entries = [patient]
    else:
        entries = _encounters(message, key, mapping, made, patient)
    entries += [r for resources in made.targets.values() for r in resources] + list(made.made.values())
    sent = hl7_time(message.get("MSH.7")) or datetime.now(UTC)
    unique: dict[str, dict[str, Any]] = {}
    for resource in entries:
        unique.setdefault(resource["id"], resource)  # each resource once, where it first comes
    for resource in unique.values():
        resource.setdefault("text", narrative(_summary(resource)))
    return {"resourceType": "Bundle", "id": _id(key, "bundle"), "type": "collection",
            "timestamp": sent.isoformat().replace("+00:00", "Z"),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in unique.values()]}


def _summary(resource: dict[str, Any]) -> str:
    """A line a reader recognises the resource by, for its narrative (MedCom's profiles require one): its type
    and name, else its identifier, status or time."""
    names = resource.get("name")
    name = names[0] if isinstance(names, list) and names else names
    if isinstance(name, dict):
        name = " ".join([*name.get("prefix", []), *name.get("given", []), name.get("family", "")]).strip()
    identifier = next((i.get("value") for i in resource.get("identifier", []) if i.get("value")), None)
    said = name or identifier or resource.get("status") or resource.get("recorded") or ""
    return f"{resource['resourceType']} {said}".strip()


def _id(key: str, role: str) -> str:
    return str(uuid.uuid5(IDS, f"{key}|{role}"))


def _reference(resource: dict[str, Any]) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource['id']}"}


def _patient(message: Hl7Message, key: str, made: Made) -> dict[str, Any]:
    """The Patient the sheets made; after a merge (A40) it replaces the one MRG-1 names."""
    patient = made.first("Patient[1]") or {"resourceType": "Patient", "id": _id(key, "Patient[1]/0")}
    if message.trigger == "A40":
        gone, _ = adt.merge(message)
        patient["link"] = [{"other": {"identifier": {"system": gone.system, "value": gone.value}},
                            "type": "replaces"}]
    return patient


def _appointment(message: Hl7Message, key: str, mapping: IgMapping, made: Made,
                 patient: dict[str, Any]) -> list[dict[str, Any]]:
    request = siu.meeting_request(message)
    booked = fa.core_appointment(request, f"urn:hub:{siu.KEY_PREFIX}")
    sheets = made.first("Appointment[1]") or {"resourceType": "Appointment", "id": _id(key, "Appointment[1]/0")}
    # SCH's contacts (AIS's participants name no one), with the status the hub gives every participant
    contacts = [{**p, "status": "accepted"} for p in sheets.get("participant", []) if "actor" in p]
    appointment = {"resourceType": "Appointment", "id": sheets["id"],
                   **{k: v for k, v in booked.items() if k != "resourceType"},
                   **{k: v for k, v in sheets.items() if k not in booked and k not in ("resourceType", "id")}}
    _scheduled_parts(message, mapping, appointment["participant"])
    resources: list[dict[str, Any]] = [appointment]
    for number, (participant, entry) in enumerate(zip(request.participants, appointment["participant"],
                                                      strict=True)):
        rtype = RESOURCE_TYPES.get(participant.kind)
        if rtype is None:
            continue
        resource = patient if participant.kind is ParticipantKind.PATIENT else \
            _party(rtype, participant, _id(key, f"participant{number}"))
        resources.append(resource)
        entry["actor"] = {**_reference(resource), **({"display": participant.display} if participant.display else {})}
    appointment["participant"].extend(contacts)
    return resources


def _scheduled_parts(message: Hl7Message, mapping: IgMapping, participants: list[dict[str, Any]]) -> None:
    """The role and time of each participant an AIP, AIL or AIG gives, by the IG's sheet for the segment
    (`AIP[Appointment]`: AIP-4 the role, AIP-6 the start); the participants come last, after the patient."""
    named = siu.resource_segments(message)
    for (segment, occurrence), entry in zip(named, participants[len(participants) - len(named):], strict=True):
        fields = message.segments(segment)[occurrence - 1]
        mapped = mapping.resources(message, fields, f"{segment}[Appointment]", "Appointment")[0]
        for part in mapped.get("participant", [])[:1]:
            entry.update({k: part[k] for k in ("type", "period") if k in part})


def _encounters(message: Hl7Message, key: str, mapping: IgMapping, made: Made,
                patient: dict[str, Any]) -> list[dict[str, Any]]:
    """Each stay the message is about (A17: both patients'), with its patient."""
    out: list[dict[str, Any]] = []
    for n, event in enumerate(adt.encounter_events(message, mapping.tables), 1):
        whose = patient if n == 1 else made.first(f"Patient[{n}]") or \
            {"resourceType": "Patient", "id": _id(key, f"Patient[{n}]/0")}
        out += [_encounter(event, made.first(f"Encounter[{n}]") or
                           {"resourceType": "Encounter", "id": _id(key, f"Encounter[{n}]/0")}, whose), whose]
    return out


def _encounter(event: EncounterEvent, encounter: dict[str, Any], patient: dict[str, Any]) -> dict[str, Any]:
    """The Encounter the sheets made, with the stay as the hub records it in place of theirs."""
    recorded = event.resource["identifier"]  # the stay's, as the hub records it; then the sheets' others (PV1-50)
    others = [i for i in encounter.get("identifier", []) if i.get("value") not in {r["value"] for r in recorded}]
    encounter.update({k: v for k, v in event.resource.items() if k in ("status", "class", "period")},
                     identifier=[*recorded, *others])
    encounter["subject"] = _reference(patient)
    state = adt.LOCATION_STATUS.get(event.status)
    for place in encounter.get("location", []):
        if state and place.get("status") == "active":
            place["status"] = state  # where the patient is, as the stay's life cycle has it
    return encounter


def _party(rtype: str, participant: Participant, rid: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": rtype, "id": rid}
    if participant.identifier is not None:
        resource["identifier"] = [{"system": participant.identifier.system, "value": participant.identifier.value}]
    if participant.display:
        if rtype == "Location":
            resource["name"] = participant.display
        else:
            *given, family = participant.display.split(" ")
            resource["name"] = [{"family": family, **({"given": given} if given else {})}]
    return resource
