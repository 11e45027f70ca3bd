"""The V2-to-FHIR IG's message sheets applied as data (`hub.hl7v2.ig_messages`): every row of the sheets the hub
reads messages by is converted or listed with its reason, and what a message becomes follows their conditions
and references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.core.mappings import table
from hub.fhir.validator import Validator
from hub.hl7v2 import ig_messages
from hub.hl7v2.adt import registry
from hub.hl7v2.ig_mapping import IgMapping
from hub.hl7v2.ig_tables import IgTables
from hub.hl7v2.message import read
from hub.hl7v2.to_fhir import BY_PARTICIPANT, BY_SHEET, NOT_CONVERTED, to_bundle
from tests.hl7v2.test_ig_mapping import VISIT

SHEETS = sorted(set(table(ig_messages.SHEETS)["sheets"].values()))


@pytest.fixture(scope="module")
def mapping(data_root: Path, validator: Validator) -> IgMapping:
    return IgMapping(IgTables.in_store(data_root / "standards"), registry, validator.structure.with_arrays)


@pytest.mark.parametrize("sheet", SHEETS)
def test_every_row_of_a_message_sheet_is_converted_or_listed_with_its_reason(mapping: IgMapping,
                                                                             sheet: str) -> None:
    rows = mapping.tables.messages(sheet)
    assert rows, sheet  # the sheet is there to be read
    unapplied = ig_messages.unapplied(rows, BY_SHEET | BY_PARTICIPANT)
    assert [(r.identifier, r.sheet) for r in unapplied if r.sheet not in NOT_CONVERTED] == []
    assert [r.sheet for r in rows if r.sheet in BY_SHEET and r in unapplied] == []  # what is applied can be read
    assert {r.sheet for r in rows} & BY_SHEET  # and the sheet is read by some


def test_what_is_listed_is_still_in_the_message_sheets(mapping: IgMapping) -> None:
    named = {r.sheet for sheet in SHEETS for r in mapping.tables.messages(sheet) or []}
    assert sorted(set(NOT_CONVERTED) - named) == [] and sorted((BY_SHEET | BY_PARTICIPANT) - named) == []


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_next_of_kin_follow_the_sheets_conditions(mapping: IgMapping, validator: Validator) -> None:
    """ADT_A01: every NK1 is a contact of the Patient (NK1[Patient]); a relative is a RelatedPerson too, an
    emergency contact (NK1-3 EMR) or employer (E) is not (`IF NK1-3.1 NOT IN ("EMR", "E", …)`)."""
    raw = VISIT + "NK1|2|Jensen A/S^^^^^^L|E^Employer|||^WPN^PH^^45^70^101010\r"
    bundle = to_bundle(read(raw.encode("iso-8859-1")), mapping)
    (kin,) = resources(bundle, "RelatedPerson")
    (patient,) = resources(bundle, "Patient")
    assert kin["name"] == [{"family": "Hansen", "given": ["Ole"]}]
    assert kin["patient"] == {"reference": f"urn:uuid:{patient['id']}"}  # by the sheet's reference
    assert [c["relationship"][0]["coding"][0]["code"] for c in patient["contact"]] == ["SPS", "E"]
    assert patient["contact"][1]["telecom"][0]["use"] == "work"
    errors = [i.diagnostics for i in validator.validate(bundle).issues if i.severity in ("error", "fatal")]
    assert errors == []


def test_a_message_is_read_by_its_structures_sheet_else_its_triggers(mapping: IgMapping) -> None:
    """A11 with MSH-9.3 ADT_A09 by the IG's ADT_A09 sheet; without it by ADT_A11's
    (`mappings/hl7v2-message-sheets.json`), where MSH makes the Encounter (MSH[Encounter]) and PV1 adds to it."""
    cancel = VISIT.replace("EVN|A01", "EVN|A11")
    named = read(cancel.replace("ADT^A01^ADT_A01", "ADT^A11^ADT_A09").encode("iso-8859-1"))
    assert ig_messages.sheet_for(named, mapping) == "ADT_A09"
    bare = read(cancel.replace("ADT^A01^ADT_A01", "ADT^A11").encode("iso-8859-1"))
    assert ig_messages.sheet_for(bare, mapping) == "ADT_A11"
    for message in (named, bare):
        (encounter,) = resources(to_bundle(message, mapping), "Encounter")
        assert encounter["status"] == "cancelled" and encounter["location"]  # the hub's record; PV1-3


def test_the_stays_identifier_comes_first_then_the_sheets_others(mapping: IgMapping) -> None:
    lines = VISIT.split("\r")
    lines[3] += "|" * 6 + "ALT-77"  # PV1-50, the alternate visit id
    (encounter,) = resources(to_bundle(read("\r".join(lines).encode("iso-8859-1")), mapping), "Encounter")
    assert [i["value"] for i in encounter["identifier"]] == ["V1234", "ALT-77"]
    assert encounter["identifier"][0]["system"] == "urn:hub:hl7v2:visit:OUH"  # as the hub records the stay


def test_a_pending_location_is_reserved(mapping: IgMapping, validator: Validator) -> None:
    """PV1-42, by `CORRECTED`: the sheet's status for it is on the wrong row."""
    pv1 = VISIT.split("\r")[3].split("|")
    pv1[42:43] = ["NEW^5^1^OUH"]
    raw = VISIT.replace(VISIT.split("\r")[3], "|".join(pv1))
    bundle = to_bundle(read(raw.encode("iso-8859-1")), mapping)
    (encounter,) = resources(bundle, "Encounter")
    assert [p["status"] for p in encounter["location"]] == ["active", "reserved"]
    assert [i.diagnostics for i in validator.validate(bundle).issues if i.severity == "error"] == []


def test_a_swap_converts_to_both_patients_stays(mapping: IgMapping, validator: Validator) -> None:
    """ADT_A17: each PID and PV1 its own Patient and Encounter (`Patient[1]`, `Patient[2]`), each stay's subject
    its own patient."""
    lines = VISIT.replace("ADT^A01^ADT_A01", "ADT^A17^ADT_A17").replace("EVN|A01", "EVN|A17").split("\r")
    other = [lines[2].replace("0101011234", "0303031234").replace("Hansen^Nancy", "Berg^Ole"),
             lines[3].replace("KIR^12^3", "KIR^12^4").replace("V1234", "V777")]
    bundle = to_bundle(read("\r".join([*lines[:4], *other]).encode("iso-8859-1") + b"\r"), mapping)
    patients = {f"urn:uuid:{p['id']}": p["name"][0]["family"] for p in resources(bundle, "Patient")}
    stays = {e["identifier"][0]["value"]: patients[e["subject"]["reference"]] for e in resources(bundle, "Encounter")}
    assert stays == {"V1234": "Hansen", "V777": "Berg"}
    assert [i.diagnostics for i in validator.validate(bundle).issues if i.severity == "error"] == []
