"""The V2-to-FHIR IG's segment and data-type sheets applied as data (`hub.hl7v2.ig_mapping`): every row of the
sheets PID leads to is applied or listed with its reason, and a full PID becomes a Patient that validates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.fhir.validator import Validator
from hub.hl7v2.adt import registry
from hub.hl7v2.ig_mapping import NOT_APPLIED, IgMapping
from hub.hl7v2.ig_tables import IgTables
from hub.hl7v2.message import read

PID = ("PID|1||0101011234^^^CPR^NNDNK~X77^^^OUH^MR||Hansen&&Hansen&&Berg^Nancy^Marie^^Dr.^^L~Nanni^^^^^^N||"
       "19010101120000|F|||Vestergade 1^2. th.^Odense C^^5000^DK^H||^PRN^PH^^45^66^112233~^NET^Internet^"
       "nancy@example.dk||da^Danish|M|||||||||||||20270101")


@pytest.fixture(scope="module")
def mapping(data_root: Path, validator: Validator) -> IgMapping:
    return IgMapping(IgTables.in_store(data_root / "standards"), registry, validator.structure.with_arrays)


def patient(mapping: IgMapping, pid: str = PID) -> dict[str, Any]:
    raw = f"MSH|^~\\&|EPJ|OUH|HUB|HUB|20270312090000||ADT^A28^ADT_A05|M1|P|2.5\r{pid}\r"
    return mapping.resource(read(raw.encode("iso-8859-1")), "PID", "PID[Patient]", "Patient")


def test_every_row_pid_leads_to_is_applied_or_listed_with_its_reason(mapping: IgMapping) -> None:
    unapplied = mapping.unapplied("PID[Patient]")
    unlisted = {row: why for row, why in unapplied.items() if row not in NOT_APPLIED}
    assert unlisted == {}  # a row the hub cannot apply must be listed, with the reason
    sheets = {sheet for sheet, _, _ in unapplied}
    stale = [row for row in NOT_APPLIED if row[0] in sheets and row not in unapplied]
    assert stale == []  # and what is listed is still in the sheets
    assert len(unapplied) >= 10


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
