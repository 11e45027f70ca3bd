"""An HL7 v2 message as the FHIR the hub acts on (pure): `hub convert FILE.hl7 --to fhir`.

An SIU gives an Appointment with its Patient, Practitioners and Location, from the canonical mapping the flows
use (`hub.hl7v2.siu`), so the file shows exactly what the hub would book, and what else the IG's sheets
`SCH[Appointment]`, `AIS[Appointment]` (reason, type, services, the placer's and filler's contacts) and the AIP,
AIL and AIG sheets (each participant's role and start) give. An ADT gives the Encounter with its
Patient, the patient's next of kin (NK1, RelatedPerson) and the Locations and Practitioners the visit names, by the
V2-to-FHIR IG's sheets (`PV1[Encounter]`, `PV2[Encounter]`, `NK1[RelatedPerson]`; `hub.hl7v2.ig_mapping`), with
what the hub records of the stay (`hub.hl7v2.adt`: its identifier, status, class, period and patient) in place of
the sheets' own: the stay's life cycle also decides the status of the location the patient is at (the sheets'
`active`: `completed` once discharged). The Patient is PID by `PID[Patient]` in both. A `collection` Bundle, its
resources referring to each other by `urn:uuid` (ids derived from the message, or for the resources the sheets
make from their content, so the same message gives the same Bundle).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from hub.core.model import Participant, ParticipantKind
from hub.fhir import appointment as fa
from hub.hl7v2 import adt, siu
from hub.hl7v2.ig_mapping import IgMapping
from hub.hl7v2.message import Hl7Message, Unmappable, hl7_time

IDS = uuid.UUID("3b0d6c55-1f4e-4b8e-9c3a-2d8f6f1e0a47")
RESOURCE_TYPES = {ParticipantKind.PATIENT: "Patient", ParticipantKind.PRACTITIONER: "Practitioner",
                  ParticipantKind.LOCATION: "Location"}


class NotConvertible(ValueError):
    """The message is not one the hub converts (only the SIU and ADT events it takes)."""


def to_bundle(message: Hl7Message, mapping: IgMapping) -> dict[str, Any]:
    key = f"{message.sender}:{message.control_id}"
    if message.message_type == "SIU" and message.trigger in siu.TRIGGERS:
        entries = _appointment(message, key, mapping)
    elif message.message_type == "ADT" and message.trigger in adt.PATIENT_TRIGGERS:
        entries = [_person(message, key, mapping)]
    elif message.message_type == "ADT" and message.trigger in adt.TRIGGERS:
        entries = _encounter(message, key, mapping)
    else:
        raise NotConvertible(f"{message.message_type}^{message.trigger} is not converted; the hub converts SIU "
                             f"{', '.join(siu.TRIGGERS)} and ADT {', '.join(adt.TRIGGERS)}")
    entries += _header(message, key, mapping)
    sent = hl7_time(message.get("MSH.7")) or datetime.now(UTC)
    unique = {r["id"]: r for r in reversed(entries)}  # a resource the sheets made twice (an Organization), once
    return {"resourceType": "Bundle", "id": _id(key, "bundle"), "type": "collection",
            "timestamp": sent.isoformat().replace("+00:00", "Z"),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in entries if unique[r["id"]] is r]}


def _header(message: Hl7Message, key: str, mapping: IgMapping) -> list[dict[str, Any]]:
    """The MessageHeader MSH becomes (`MSH[MessageHeader]`), and the Provenance of the event EVN records
    (`EVN[Provenance]`; its agent by `MSH[Provenance-Operator]` when EVN-5 names no operator), whose target is
    the MessageHeader, as the IG's message sheets have them; with the Organizations and Devices they name."""
    made: dict[str, dict[str, Any]] = {}
    header = {"resourceType": "MessageHeader", "id": _id(key, "header"),
              **_body(_kept(mapping.resources(message, message.segments("MSH")[0], "MSH[MessageHeader]",
                                              "MessageHeader"), made))}
    out = [header]
    for fields in message.segments("EVN")[:1]:
        provenance = _kept(mapping.resources(message, fields, "EVN[Provenance]", "Provenance"), made)
        if "agent" not in provenance:
            operator = _kept(mapping.resources(message, message.segments("MSH")[0], "MSH[Provenance-Operator]",
                                               "Provenance"), made)
            provenance.update({k: v for k, v in operator.items() if k == "agent"})
        out.append({"resourceType": "Provenance", "id": _id(key, "provenance"),
                    "target": [{"reference": f"urn:uuid:{header['id']}"}], **_body(provenance)})
    return [*out, *made.values()]


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "resourceType"}


def _id(key: str, role: str) -> str:
    return str(uuid.uuid5(IDS, f"{key}|{role}"))


def _appointment(message: Hl7Message, key: str, mapping: IgMapping) -> list[dict[str, Any]]:
    request = siu.meeting_request(message)
    booked = fa.core_appointment(request, f"urn:hub:{siu.KEY_PREFIX}")
    made: dict[str, dict[str, Any]] = {}
    sheets: dict[str, Any] = {}
    for segment in ("SCH", "AIS"):
        for fields in message.segments(segment):
            _merge(sheets, _kept(mapping.resources(message, fields, f"{segment}[Appointment]", "Appointment"), made))
    # SCH's contacts (AIS's participants name no one), with the status the hub gives every participant
    contacts = [{**p, "status": "accepted"} for p in sheets.pop("participant", []) if "actor" in p]
    appointment = {"resourceType": "Appointment", "id": _id(key, "appointment"),
                   **{k: v for k, v in booked.items() if k != "resourceType"},
                   **{k: v for k, v in sheets.items() if k not in booked}}
    _scheduled_parts(message, mapping, appointment["participant"])
    resources: list[dict[str, Any]] = [appointment]
    for number, (participant, entry) in enumerate(zip(request.participants, appointment["participant"],
                                                      strict=True)):
        rtype = RESOURCE_TYPES.get(participant.kind)
        if rtype is None:
            continue
        resource = _person(message, key, mapping) if participant.kind is ParticipantKind.PATIENT else \
            _party(rtype, participant, _id(key, f"participant{number}"))
        resources.append(resource)
        entry["actor"] = {"reference": f"urn:uuid:{resource['id']}",
                          **({"display": participant.display} if participant.display else {})}
    appointment["participant"].extend(contacts)
    return [*resources, *made.values()]


def _scheduled_parts(message: Hl7Message, mapping: IgMapping, participants: list[dict[str, Any]]) -> None:
    """The role and time of each participant an AIP, AIL or AIG gives, by the IG's sheet for the segment
    (`AIP[Appointment]`: AIP-4 the role, AIP-6 the start); the participants come last, after the patient."""
    named = siu.resource_segments(message)
    for (segment, occurrence), entry in zip(named, participants[len(participants) - len(named):], strict=True):
        fields = message.segments(segment)[occurrence - 1]
        mapped = mapping.resources(message, fields, f"{segment}[Appointment]", "Appointment")[0]
        for part in mapped.get("participant", [])[:1]:
            entry.update({k: part[k] for k in ("type", "period") if k in part})


def _encounter(message: Hl7Message, key: str, mapping: IgMapping) -> list[dict[str, Any]]:
    event = adt.encounter_event(message, mapping.tables)
    made: dict[str, dict[str, Any]] = {}
    encounter: dict[str, Any] = {"resourceType": "Encounter", "id": _id(key, "encounter")}
    for segment, sheet in (("PV1", "PV1[Encounter]"), ("PV2", "PV2[Encounter]")):
        for fields in message.segments(segment)[:1]:
            _merge(encounter, _kept(mapping.resources(message, fields, sheet, "Encounter"), made))
    recorded = {k: v for k, v in event.resource.items() if k in ("identifier", "status", "class", "period")}
    encounter.update(recorded)
    state = adt.LOCATION_STATUS.get(event.status)
    for place in encounter.get("location", []):
        if state and place.get("status") == "active":
            place["status"] = state  # where the patient is, as the stay's life cycle has it
    patient = _person(message, key, mapping)
    encounter["subject"] = {"reference": f"urn:uuid:{patient['id']}"}
    kin = []
    for number, fields in enumerate(message.segments("NK1")):
        person = _kept(mapping.resources(message, fields, "NK1[RelatedPerson]", "RelatedPerson"), made)
        kin.append({"resourceType": "RelatedPerson", "id": _id(key, f"kin{number}"),
                    "patient": encounter["subject"], **{k: v for k, v in person.items() if k != "resourceType"}})
    return [encounter, patient, *kin, *made.values()]


def _kept(resources: list[dict[str, Any]], made: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The first of `resources`, the others (the resources its sheet made) kept in `made` by their ids."""
    for resource in resources[1:]:
        made.setdefault(resource["id"], resource)
    return resources[0]


def _merge(into: dict[str, Any], mapped: dict[str, Any]) -> None:
    """A second segment's elements into a resource: lists extended, other elements where it has none."""
    for name, value in mapped.items():
        if isinstance(value, list) and isinstance(into.get(name), list):
            into[name].extend(value)
        elif name not in into:
            into[name] = value


def _person(message: Hl7Message, key: str, mapping: IgMapping) -> dict[str, Any]:
    """The Patient PID becomes by the IG's sheet `PID[Patient]` (`hub.hl7v2.ig_mapping`); after a merge (A40) it
    replaces the one MRG-1 names."""
    if adt.patient_identifier(message) is None:
        raise Unmappable("The message names no patient (PID-3)", "PID", 3)
    mapped = mapping.resource(message, "PID", "PID[Patient]", "Patient")
    patient = {"resourceType": "Patient", "id": _id(key, "patient"),
               **{k: v for k, v in mapped.items() if k != "resourceType"}}
    if message.trigger == "A40":
        gone, _ = adt.merge(message)
        patient["link"] = [{"other": {"identifier": {"system": gone.system, "value": gone.value}},
                            "type": "replaces"}]
    return patient


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
