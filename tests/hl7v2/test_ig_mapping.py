"""The V2-to-FHIR IG's segment and data-type sheets applied as data (`hub.hl7v2.ig_mapping`): every row of the
sheets PID leads to is applied or listed with its reason, and a full PID becomes a Patient that validates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.fhir.validator import Validator
from hub.hl7v2.adt import registry
from hub.hl7v2.ig_mapping import CORRECTED, NOT_APPLIED, IgMapping
from hub.hl7v2.ig_tables import IgTables
from hub.hl7v2.message import read
from hub.hl7v2.to_fhir import BY_PARTICIPANT, BY_SHEET, to_bundle
from tests.flows.test_hl7v2_siu import siu

PID = ("PID|1||0101011234^^^CPR^NNDNK~X77^^^OUH^MR||Hansen&&Hansen&&Berg^Nancy^Marie^^Dr.^^L~Nanni^^^^^^N||"
       "19010101120000|F|||Vestergade 1^2. th.^Odense C^^5000^DK^H||^PRN^PH^^45^66^112233~^NET^Internet^"
       "nancy@example.dk||da^Danish|M|||||||||||||20270101")


@pytest.fixture(scope="module")
def mapping(data_root: Path, validator: Validator) -> IgMapping:
    return IgMapping(IgTables.in_store(data_root / "standards"), registry, validator.structure.with_arrays)


def patient(mapping: IgMapping, pid: str = PID) -> dict[str, Any]:
    raw = f"MSH|^~\\&|EPJ|OUH|HUB|HUB|20270312090000||ADT^A28^ADT_A05|M1|P|2.5\r{pid}\r"
    message = read(raw.encode("iso-8859-1"))
    return mapping.resources(message, message.segments("PID")[0], "PID[Patient]", "Patient")[0]


@pytest.mark.parametrize("sheet", sorted(BY_SHEET | BY_PARTICIPANT))
def test_every_row_a_sheet_leads_to_is_applied_or_listed_with_its_reason(mapping: IgMapping, sheet: str) -> None:
    def key(row: tuple[str, str, str]) -> tuple[str, str, str]:
        return row[0].lower(), row[1], row[2]  # the sheets name each other without minding case

    unapplied = {key(row): why for row, why in mapping.unapplied(sheet).items()}
    listed = {key(row) for row in NOT_APPLIED}
    unlisted = {row: why for row, why in unapplied.items() if row not in listed}
    assert unlisted == {}  # a row the hub cannot apply must be listed, with the reason
    sheets = {sheet for sheet, _, _ in unapplied}
    stale = [row for row in listed if row[0] in sheets and row not in unapplied]
    assert stale == []  # and what is listed is still in the sheets
    assert mapping.tables.rows("segments", sheet)  # the sheet is there to be read


def test_each_correction_names_a_row_the_sheets_still_have(mapping: IgMapping) -> None:
    for (sheet, source, target), (fix, why) in CORRECTED.items():
        rows = mapping.tables.rows("datatypes", sheet) or mapping.tables.rows("segments", sheet) or []
        assert [(r.source, r.target) for r in rows].count((source, target)) == 1, (sheet, source, target)
        assert why and set(fix) <= {"target", "assignment"} and (sheet, source, target) not in NOT_APPLIED


def test_a_full_pid_becomes_a_patient_that_validates(mapping: IgMapping, validator: Validator) -> None:
    found = patient(mapping)
    assert found["identifier"] == [
        {"system": "urn:oid:1.2.208.176.1.2", "value": "0101011234"},
        {"system": "urn:hub:hl7v2:id:OUH", "value": "X77", "type": {"coding": [{"code": "MR"}]}}]
    official, nickname = found["name"]
    assert (official["family"], official["given"], official["prefix"], official["use"]) == (
        "Hansen", ["Nancy", "Marie"], ["Dr."], "official")
    sd = "http://hl7.org/fhir/StructureDefinition/"
    assert official["_family"]["extension"] == [  # FN.3 own name, FN.5 the partner's (FN.2 and FN.4 empty)
        {"url": sd + "humanname-own-name", "valueString": "Hansen"},
        {"url": sd + "humanname-partner-name", "valueString": "Berg"}]
    assert nickname == {"family": "Nanni", "use": "nickname"}
    assert found["birthDate"] == "1901-01-01"
    assert found["_birthDate"]["extension"][0]["valueDateTime"] == "1901-01-01T12:00:00+01:00"
    assert found["gender"] == "female"
    assert found["address"] == [{"line": ["Vestergade 1", "2. th."], "city": "Odense C", "postalCode": "5000",
                                 "country": "DK", "use": "home"}]
    phone, email = found["telecom"]
    assert (phone["system"], phone["use"], phone["value"]) == ("phone", "home", "+45 66 112233")
    assert email == {"system": "email", "value": "nancy@example.dk"}
    assert found["communication"] == [{"language": {"coding": [{"code": "da", "display": "Danish"}]}}]
    assert found["maritalStatus"]["coding"][0]["code"] == "M"
    assert found["deceasedDateTime"] == "2027-01-01"
    errors = [i.diagnostics for i in validator.validate(found).issues if i.severity in ("error", "fatal")]
    assert errors == []


def test_nulls_and_codes_no_map_lists_give_no_value(mapping: IgMapping) -> None:
    found = patient(mapping, 'PID|1||0101011234^^^CPR||""^Nancy||""|X')  # PID-8 X: not in table 0001's map
    assert found["name"] == [{"given": ["Nancy"]}]
    assert "birthDate" not in found and "gender" not in found


VISIT = "\r".join([
    "MSH|^~\\&|EPJ|OUH|HUB|HUB|20270312090000||ADT^A01^ADT_A01|V1|P|2.5",
    "EVN|A01|20270312085500",
    "PID|1||0101011234^^^CPR^NNDNK||Hansen^Nancy^^^^^L||19010101|F",
    "PV1|1|I|KIR^12^3^OUH^^^B7^2|E|||123456^Jensen^Peter^^^Dr.|||MED|||||||123456^Jensen^Peter^^^Dr.||"
    "V1234^^^OUH^VN" + "|" * 25 + "20270312084500",
    "PV2|||^Brækket ben||||||||3^d",
    "NK1|1|Hansen^Ole|SPO^Spouse|Vestergade 1^^Odense C^^5000|^PRN^PH^^45^66^112233||C",
]) + "\r"


def test_a_visit_becomes_an_encounter_with_its_locations_practitioners_and_next_of_kin(
        mapping: IgMapping, validator: Validator) -> None:
    bundle = to_bundle(read(VISIT.encode("iso-8859-1")), mapping)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    found = {f"urn:uuid:{r['id']}": r for e in bundle["entry"] for r in [e["resource"]]}
    (encounter,) = by_type["Encounter"]
    assert (encounter["status"], encounter["class"]["code"]) == ("in-progress", "IMP")  # the hub's record
    (place,) = encounter["location"]
    levels, reference = [], place["location"]["reference"]
    while reference:  # PV1-3: bed 3, room 12, floor 2, point of care KIR, building B7, facility OUH
        location = found[reference]
        levels.append((location["identifier"][0]["value"], location.get("physicalType", {}).get("coding",
                                                                                               [{}])[0].get("code")))
        reference = location.get("partOf", {}).get("reference")
    assert levels == [("3", "bd"), ("12", "ro"), ("2", "lvl"), ("KIR", None), ("OUH", "si")]
    assert place["status"] == "active"
    attending, admitting = encounter["participant"]  # PV1-7 and PV1-17: the same doctor, one Practitioner
    assert attending["individual"] == admitting["individual"]
    assert [p["type"][0]["coding"][0]["code"] for p in (attending, admitting)] == ["ATND", "ADM"]
    (doctor,) = by_type["Practitioner"]
    assert doctor["name"] == [{"family": "Jensen", "given": ["Peter"], "prefix": ["Dr."]}]
    assert encounter["serviceType"]["coding"][0]["code"] == "382"  # PV1-10 MED by the HospitalService map
    assert encounter["reasonCode"] == [{"coding": [{"display": "Brækket ben"}]}]  # PV2-3
    assert encounter["length"] == {"value": 3, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
    (kin,) = by_type["RelatedPerson"]
    assert kin["patient"] == encounter["subject"] and kin["name"] == [{"family": "Hansen", "given": ["Ole"]}]
    assert [c["coding"][0]["code"] for c in kin["relationship"]] == ["SPS", "C"]  # NK1-3 spouse, NK1-7 contact
    assert kin["telecom"][0]["value"] == "+45 66 112233"
    (header,) = by_type["MessageHeader"]
    assert header["eventCoding"] == {"code": "A01", "system": "http://terminology.hl7.org/CodeSystem/v2-0003"}
    assert header["source"]["name"] == "EPJ" and found[header["sender"]["reference"]]["identifier"] == [
        {"value": "OUH"}]  # MSH-3, MSH-4
    assert header["source"]["_endpoint"]["extension"][0]["valueCode"] == "unknown"  # no MSH-24: the IG says so
    (provenance,) = by_type["Provenance"]
    assert provenance["target"] == [{"reference": f"urn:uuid:{header['id']}"}]
    assert provenance["recorded"] == "2027-03-12T08:55:00+01:00"  # EVN-2
    assert provenance["agent"] == [{"who": header["sender"]}]  # no EVN-5: MSH-4, by MSH[Provenance-Operator]
    assert len(found) == len(bundle["entry"])  # each resource once
    errors = [i.diagnostics for i in validator.validate(bundle).issues if i.severity in ("error", "fatal")]
    assert errors == []
    core = "http://medcomfhir.dk/ig/core/StructureDefinition/medcom-core-"
    for rtype in ("Patient", "Encounter", "Practitioner", "RelatedPerson"):  # MedCom core, where it applies
        for resource in by_type[rtype]:
            outcome = validator.validate(resource, [core + rtype.lower()])
            assert [i.diagnostics for i in outcome.issues if i.severity in ("error", "fatal")] == [], rtype


def test_a_discharge_leaves_the_patients_location_completed(mapping: IgMapping) -> None:
    discharge = VISIT.replace("ADT^A01", "ADT^A03").replace("EVN|A01", "EVN|A03").replace(
        "20270312084500", "20270312084500|20270320120000")
    (encounter, *_) = [e["resource"] for e in to_bundle(read(discharge.encode("iso-8859-1")), mapping)["entry"]]
    assert encounter["status"] == "finished" and encounter["period"]["end"].startswith("2027-03-20")
    assert [p["status"] for p in encounter["location"]] == ["completed"]


def test_a_scheduling_message_adds_what_the_sheets_give_to_the_booking(mapping: IgMapping,
                                                                        validator: Validator) -> None:
    raw = siu().decode("iso-8859-1").replace("|VIDEO^Videokonsultation|KONTROL", "|VIDEO^Video^HL70276|KONTROL")
    raw = raw.replace("AIP|1|A|D123^Hansen^Peter|DOC", "AIP|1|A|D123^Hansen^Peter|ATND^attender^HL70443||"
                      "20310312100000")
    bundle = to_bundle(read(raw.encode("iso-8859-1")), mapping)
    appointment = bundle["entry"][0]["resource"]
    assert (appointment["status"], appointment["start"]) == ("booked", "2031-03-12T09:00:00Z")  # the hub's
    assert appointment["reasonCode"][0]["coding"][0]["code"] == "VIDEO"  # SCH-7, a code of table 0276
    assert appointment["serviceType"] == [{"coding": [{"code": "VIDEO", "display": "Videokonsultation"}]}]  # AIS-3
    patient, doctor, filler, enterer = appointment["participant"]
    assert doctor["type"][0]["coding"][0]["code"] == "ATND"  # AIP-4
    assert doctor["period"] == {"start": "2031-03-12T10:00:00+01:00"}  # AIP-6
    assert filler["actor"] == enterer["actor"]  # SCH-16 and SCH-20: the same person, one Practitioner
    assert enterer["type"][0]["coding"][0]["code"] == "enterer"
    contact = next(e["resource"] for e in bundle["entry"] if f"urn:uuid:{e['resource']['id']}" ==
                   enterer["actor"]["reference"])
    assert contact["name"] == [{"family": "Jensen", "given": ["Åse"]}]
    errors = [i.diagnostics for i in validator.validate(bundle).issues if i.severity in ("error", "fatal")]
    assert errors == []
