"""HL7 v2 ADT → the canonical `EncounterEvent` (pure), the same event a MedCom HospitalNotification gives.

- The stay is the visit number (PV1-19, with its assigning authority), else the placer's account (PID-18): a
  hospital keeps it the same in every message about one stay. No visit number, no stay: the message is refused.
- The encounter life cycle: A01 (admit) and A04 (register) start the stay (`in-progress`), A05 (pre-admit)
  plans it (`planned`); A02 (transfer) moves it to PV1-3, the location it leaves (PV1-6) kept as `completed`;
  A06 and A07 (outpatient to inpatient and back) change its class; A09 and A10 (patient tracking: departing
  for and arriving at a temporary location) keep it where it is (PV1-3) with the temporary location PV1-11
  beside it (`planned`, then `active`); A17 (swap patients) restates both patients' stays (each PID and PV1) at
  their new places; A03 (discharge) ends it (`finished`, PV1-45 the end); A08 (update) restates it
  (`finished` when PV1-45 is given, else `in-progress`). A cancel undoes what it cancels: A11 the admission
  (`cancelled`), A12 the transfer (PV1-3 is where the patient is again, as HL7 has the cancel say it), A13 the
  discharge (`in-progress`, no end, whatever PV1-45 still says).
- The class from PV1-2 by the V2-to-FHIR IG's vocabulary map `PatientClass[EncounterClass]` (table 0004 → v3
  ActCode, or table 0004's own code where ActCode has none; `hub.hl7v2.ig_tables`); start PV1-44, end PV1-45; the
  location PV1-3 (point of care^room^bed); the patient by PID-3 (a CPR number when the identifier type, or its
  authority, says so); the hospital by MSH-4; when it happened by EVN-6, else EVN-2, else MSH-7. Times without
  an offset are Danish time.
- Patient events: A28 (add person) and A31 (update person) concern no stay: taken and kept, nothing to change
  in the stays; A40 (merge patient) moves every stay of the patient MRG-1 names to the patient PID-3 names
  (`merge`).
"""

from __future__ import annotations

import functools

from hub.core.cpr import CPR_SYSTEM
from hub.core.mappings import table
from hub.core.model import EncounterEvent, Identifier
from hub.hl7v2.ig_tables import IgTables
from hub.hl7v2.message import Hl7Message, Unmappable, hl7_time

PATIENT_CLASS = "PatientClass[EncounterClass]"  # the IG's map of table 0004
STATUS = {"A01": "in-progress", "A02": "in-progress", "A03": "finished", "A04": "in-progress", "A05": "planned",
          "A06": "in-progress", "A07": "in-progress", "A09": "in-progress", "A10": "in-progress",
          "A11": "cancelled", "A12": "in-progress", "A13": "in-progress", "A17": "in-progress"}
# patient tracking: the temporary location PV1-11 the patient departs for (A09) or has arrived at (A10)
TRACKING = {"A09": "planned", "A10": "active"}
# the status of the stay's location, by the stay's
LOCATION_STATUS = {"in-progress": "active", "finished": "completed", "planned": "planned"}
PATIENT_TRIGGERS = ("A28", "A31", "A40")  # about the person, not a stay
TRIGGERS = ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A09", "A10", "A11", "A12", "A13", "A17",
            *PATIENT_TRIGGERS)
AUTHORITIES = "hl7v2-assigning-authorities.json"  # in mappings/: identifier systems by CX-4 or CX-5


def encounter_events(message: Hl7Message, tables: IgTables) -> list[EncounterEvent]:
    """The stays a message is about: one; A17's two (each patient's PID and PV1, their places swapped)."""
    pairs = min(len(message.segments("PID")), len(message.segments("PV1"))) if message.trigger == "A17" else 1
    return [encounter_event(message, tables, n) for n in range(1, max(pairs, 1) + 1)]


def encounter_event(message: Hl7Message, tables: IgTables, occurrence: int = 1) -> EncounterEvent:
    """The stay of the `occurrence`-th patient (PID and PV1) of the message."""
    n = occurrence
    trigger = message.trigger or message.get("EVN.1")
    visit, authority = message.get("PV1.19.1", n), message.get("PV1.19.4", n)
    if not visit:
        visit, authority = message.get("PID.18.1", n), message.get("PID.18.4", n)
    if not visit:
        raise Unmappable("The message has no visit number (PV1-19) or account (PID-18) naming the stay",
                             "PV1", 19)
    facility = message.get("MSH.4") or message.get("MSH.3")
    stay = f"urn:hub:hl7v2:visit:{authority or facility}|{visit}"
    end = message.time("PV1.45", n) if trigger != "A13" else None  # A13: the discharge is undone
    status = STATUS.get(trigger) or ("finished" if end else "in-progress")
    start = message.time("PV1.44", n)
    patient = patient_identifier(message, n)
    if patient is None:
        raise Unmappable("The message names no patient (PID-3)", "PID", 3)
    found = tables.concepts(PATIENT_CLASS).get(message.get("PV1.2", n))
    encounter_class = found.code if found is not None else None
    resource: dict[str, object] = {
        "resourceType": "Encounter",
        "identifier": [{"system": f"urn:hub:hl7v2:visit:{authority or facility}", "value": visit}],
        "status": status,
        "class": found.json() if found is not None else
        {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"},
    }
    if patient is not None:
        resource["subject"] = {"identifier": {"system": patient.system, "value": patient.value}}
    period = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v is not None}
    if period:
        resource["period"] = period
    here, state = _location(message, 3, facility, n), LOCATION_STATUS.get(status)
    locations = [{"location": here, **({"status": state} if state else {})}] if here is not None else []
    if trigger == "A02" and (left := _location(message, 6, facility, n)) is not None:
        locations.append({"location": left, "status": "completed"})  # where the transfer came from
    if trigger in TRACKING and (going := _location(message, 11, facility, n)) is not None:
        locations.append({"location": going, "status": TRACKING[trigger]})  # the temporary location
    if locations:
        resource["location"] = locations
    occurred = hl7_time(message.get("EVN.6")) or hl7_time(message.get("EVN.2")) or hl7_time(message.get("MSH.7"))
    return EncounterEvent(stay=stay, event=f"ADT^{trigger}", status=status, encounter_class=encounter_class,
                          start=start, end=end, patient=patient,
                          service_provider=f"hl7v2:{facility}" if facility else None, occurred_at=occurred,
                          resource=resource)


def _location(message: Hl7Message, field: int, facility: str, occurrence: int = 1) -> dict[str, object] | None:
    """A PV1 location (PL: point of care^room^bed^facility…) as a Reference to the Location by identifier."""
    place = [message.get(f"PV1.{field}.{c}", occurrence) for c in (1, 2, 3)]
    if not any(place):
        return None
    where = message.get(f"PV1.{field}.4", occurrence) or facility
    return {"identifier": {"system": f"urn:hub:hl7v2:location:{where}", "value": "^".join(place).rstrip("^")},
            "display": " ".join(p for p in place if p)}


def merge(message: Hl7Message) -> tuple[Identifier, Identifier]:
    """A40: the patient merged away (MRG-1) and the one kept (PID-3), by the rules of `patient_identifier`."""
    kept = patient_identifier(message)
    if kept is None:
        raise Unmappable("The merge names no patient to keep (PID-3)", "PID", 3)
    gone = _identifier(message, "MRG", 1)
    if gone is None:
        raise Unmappable("The merge names no patient to merge (MRG-1)", "MRG", 1)
    return gone, kept


def patient_identifier(message: Hl7Message, occurrence: int = 1) -> Identifier | None:
    """The PID-3 repetition that is a CPR number, else the first (`identifier`), of the `occurrence`-th PID."""
    return _identifier(message, "PID", 3, occurrence)


def identifier(message: Hl7Message, cx: list[str]) -> Identifier | None:
    """A CX value (its components) as an Identifier: the system by the assigning authority (CX-4: its universal
    id, then its namespace id) or the identifier type (CX-5), by `mappings/hl7v2-assigning-authorities.json`;
    a CPR number without its hyphen. None when it has no value."""
    cx = cx + [""] * 5  # CX: ID ^ check digit ^ its scheme ^ assigning authority ^ identifier type
    value, authority, kind = cx[0], cx[3].split(message.separators.subcomponent), cx[4].strip()
    if not value:
        return None
    systems = _authorities()
    namespace, universal = authority[0].strip(), (authority + ["", ""])[1].strip()
    system = systems["authorities"].get(universal) or _folded(systems["authorities"], namespace) or \
        _folded(systems["identifier_types"], kind)
    if system == CPR_SYSTEM:
        value = value.replace("-", "")
    return Identifier(system or f"urn:hub:hl7v2:id:{namespace or universal or kind or 'local'}", value)


@functools.cache
def _authorities() -> dict[str, dict[str, str]]:
    return table(AUTHORITIES)  # type: ignore[no-any-return]


def registry(message: Hl7Message, cx: list[str]) -> str | None:
    """The identifier system of a CX value (its components): the V2-to-FHIR IG's "identifier registry", as the
    hub keeps it (`identifier`)."""
    found = identifier(message, cx)
    return found.system if found is not None else None


def _folded(systems: dict[str, str], key: str) -> str | None:
    """A system by a name, whatever its case."""
    return next((s for k, s in systems.items() if key and k.upper() == key.upper()), None)


def _identifier(message: Hl7Message, segment: str, field: int, occurrence: int = 1) -> Identifier | None:
    """Of a CX field's repetitions, the CPR number, else the first."""
    found = [i for cx in message.repetitions(segment, field, occurrence)
             if (i := identifier(message, cx)) is not None]
    return next((i for i in found if i.system == CPR_SYSTEM), found[0] if found else None)
