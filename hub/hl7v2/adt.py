"""HL7 v2 ADT → the canonical `EncounterEvent` (pure), the same event a MedCom HospitalNotification gives.

- The stay is the visit number (PV1-19, with its assigning authority), else the placer's account (PID-18): a
  hospital keeps it the same in every message about one stay. No visit number, no stay: the message is refused.
- A01 (admit) and A04 (register) start the stay (`in-progress`); A03 (discharge) ends it (`finished`, PV1-45
  the end); A08 (update) restates it (`finished` when PV1-45 is given, else `in-progress`); A11 (cancel admit)
  cancels it (`cancelled`).
- The class from PV1-2 by the ConceptMap `mappings/hl7v2-patient-class.json`; start PV1-44, end PV1-45; the
  patient by PID-3 (a CPR number when the identifier type, or its authority, says so); the hospital by MSH-4;
  when it happened by EVN-6, else EVN-2, else MSH-7. Times without an offset are Danish time.
"""

from __future__ import annotations

from hub.core.cpr import CPR_SYSTEM
from hub.core.mappings import MAPPINGS, code_maps
from hub.core.model import EncounterEvent, Identifier
from hub.hl7v2.message import Hl7Message, Unmappable, hl7_time

V2_CLASS = "http://terminology.hl7.org/CodeSystem/v2-0004"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
STATUS = {"A01": "in-progress", "A04": "in-progress", "A03": "finished", "A11": "cancelled"}
TRIGGERS = ("A01", "A03", "A04", "A08", "A11")
CPR_MARKS = ("CPR", "1.2.208.176.1.2")


def encounter_event(message: Hl7Message) -> EncounterEvent:
    trigger = message.trigger or message.get("EVN.1")
    visit, authority = message.get("PV1.19.1"), message.get("PV1.19.4")
    if not visit:
        visit, authority = message.get("PID.18.1"), message.get("PID.18.4")
    if not visit:
        raise Unmappable("The message has no visit number (PV1-19) or account (PID-18) naming the stay",
                             "PV1", 19)
    facility = message.get("MSH.4") or message.get("MSH.3")
    stay = f"urn:hub:hl7v2:visit:{authority or facility}|{visit}"
    end = message.time("PV1.45")
    status = STATUS.get(trigger) or ("finished" if end else "in-progress")
    start = message.time("PV1.44")
    patient = patient_identifier(message)
    if patient is None:
        raise Unmappable("The message names no patient (PID-3)", "PID", 3)
    encounter_class = code_maps(MAPPINGS / "hl7v2-patient-class.json").get(V2_CLASS, ACT_CODE,
                                                                          message.get("PV1.2") or None)
    resource: dict[str, object] = {
        "resourceType": "Encounter",
        "identifier": [{"system": f"urn:hub:hl7v2:visit:{authority or facility}", "value": visit}],
        "status": status,
        "class": {"system": ACT_CODE, "code": encounter_class} if encounter_class else
        {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"},
    }
    if patient is not None:
        resource["subject"] = {"identifier": {"system": patient.system, "value": patient.value}}
    period = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v is not None}
    if period:
        resource["period"] = period
    occurred = hl7_time(message.get("EVN.6")) or hl7_time(message.get("EVN.2")) or hl7_time(message.get("MSH.7"))
    return EncounterEvent(stay=stay, event=f"ADT^{trigger}", status=status, encounter_class=encounter_class,
                          start=start, end=end, patient=patient,
                          service_provider=f"hl7v2:{facility}" if facility else None, occurred_at=occurred,
                          resource=resource)


def patient_identifier(message: Hl7Message) -> Identifier | None:
    """The PID-3 repetition that is a CPR number (by identifier type or authority), else the first."""
    first: Identifier | None = None
    for repetition in message.repetitions("PID", 3):
        cx = repetition + [""] * 5  # CX: ID ^ check digit ^ its scheme ^ assigning authority ^ identifier type
        value, authority, kind = cx[0], cx[3], cx[4]
        if not value:
            continue
        if any(mark in (authority + kind).upper() for mark in CPR_MARKS):
            return Identifier(CPR_SYSTEM, value.replace("-", ""))
        first = first or Identifier(f"urn:hub:hl7v2:id:{authority or kind or 'local'}", value)
    return first
