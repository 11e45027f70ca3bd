"""`hub convert FILE.hl7 --to fhir` gives the FHIR the hub acts on, and it validates; `hub validate` checks HL7 v2
files' structure for their version and reports like every other format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hub.fhir.validator import Validator
from tests.flows.test_hl7v2 import CPR, adt
from tests.flows.test_hl7v2_siu import siu


def hub(data_root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "HUB_DATA_DIR": str(data_root)}
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, capture_output=True, timeout=120,
                          check=False)


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_an_siu_and_an_adt_convert_to_fhir_that_validates(data_root: Path, tmp_path: Path,
                                                          validator: Validator) -> None:
    (tmp_path / "siu.hl7").write_bytes(siu())
    (tmp_path / "adt.hl7").write_bytes(adt().encode("iso-8859-1"))
    run = hub(data_root, "convert", str(tmp_path / "siu.hl7"), str(tmp_path / "adt.hl7"), "--to", "fhir",
              "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    names = sorted(Path(n).name for n in run.stdout.decode().split())
    assert names == ["Appointment-M1.json", "Encounter-M1.json"]
    appointment_bundle = json.loads((tmp_path / "out/Appointment-M1.json").read_bytes())
    encounter_bundle = json.loads((tmp_path / "out/Encounter-M1.json").read_bytes())
    for bundle in (appointment_bundle, encounter_bundle):
        verdict = validator.validate(bundle)
        assert verdict.ok, [i.diagnostics for i in verdict.issues if i.severity == "error"]
    (appointment,) = resources(appointment_bundle, "Appointment")
    (patient,) = resources(appointment_bundle, "Patient")
    doctor, contact = resources(appointment_bundle, "Practitioner")  # AIP-3's, and SCH-16's (the IG's sheet)
    assert appointment["start"] == "2031-03-12T09:00:00Z" and appointment["status"] == "booked"
    assert patient["identifier"] == [{"system": "urn:oid:1.2.208.176.1.2", "value": CPR}]
    assert patient["name"] == [{"family": "Bærggren", "given": ["Nåncy"]}]
    assert (patient["birthDate"], patient["gender"]) == ("1901-01-01", "female")  # PID by the IG's sheets
    assert doctor["name"] == [{"family": "Hansen", "given": ["Peter"]}]
    assert contact["name"] == [{"family": "Jensen", "given": ["Åse"]}]
    actors = {p["actor"]["reference"] for p in appointment["participant"]}
    assert actors == {f"urn:uuid:{r['id']}" for r in (patient, doctor, contact)}
    (encounter,) = resources(encounter_bundle, "Encounter")
    assert encounter["class"]["code"] == "IMP" and encounter["status"] == "in-progress"
    assert encounter["subject"]["reference"].startswith("urn:uuid:")
    again = hub(data_root, "convert", str(tmp_path / "siu.hl7"), "--to", "fhir")
    assert json.loads(again.stdout) == appointment_bundle  # the same message, the same Bundle


def test_hub_convert_refuses_what_it_does_not_convert(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "oru.hl7").write_bytes(adt().replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01").encode("iso-8859-1"))
    run = hub(data_root, "convert", str(tmp_path / "oru.hl7"), "--to", "fhir")
    assert run.returncode == 1 and b"ORU^R01 is not converted" in run.stderr
    wrong = hub(data_root, "convert", str(tmp_path / "oru.hl7"), "--to", "oioxml")
    assert wrong.returncode == 1 and b"convert --to fhir" in wrong.stderr


def test_hub_validate_checks_hl7v2_structure(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "good.hl7").write_bytes(siu())
    (tmp_path / "no-name.hl7").write_bytes(adt().replace("||Bærggren^Nåncy||", "||||").encode("iso-8859-1"))
    (tmp_path / "garbage.hl7").write_bytes(b"MSH|^~|broken")
    run = hub(data_root, "validate", str(tmp_path), "--format", "json")
    report = {Path(r["file"]).name: r for r in json.loads(run.stdout)}
    assert run.returncode == 1
    assert report["good.hl7"]["valid"]
    (issue,) = report["no-name.hl7"]["outcome"]["issue"]
    assert issue["expression"] == ["PID-5"] and issue["diagnostics"].startswith("101: ")
    assert not report["garbage.hl7"]["valid"] and report["garbage.hl7"]["outcome"]["issue"][0]["expression"] == \
        ["MSH-2"]


def test_hub_validate_checks_each_version_from_2_3_to_2_8_2(data_root: Path, tmp_path: Path) -> None:
    """2.7 withdrew EVN-1 (it must be empty from then on); 2.7.1 is checked against 2.7's structures."""
    for version in ("2.3.1", "2.4", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"):
        (tmp_path / f"adt-{version}.hl7").write_bytes(adt(version=version).replace("EVN|A01|", "EVN||")
                                                      .encode("iso-8859-1"))
    (tmp_path / "evn-1-in-2.7.1.hl7").write_bytes(adt(version="2.7.1").encode("iso-8859-1"))
    run = hub(data_root, "validate", str(tmp_path), "--format", "json")
    report = {Path(r["file"]).name: r["valid"] for r in json.loads(run.stdout)}
    assert report.pop("evn-1-in-2.7.1.hl7") is False
    assert all(report.values()) and len(report) == 9, report


def test_a_transfer_and_a_merge_convert_to_fhir_that_validates(data_root: Path, tmp_path: Path,
                                                                validator: Validator) -> None:
    moved = adt("A02", "T1", name="Bærggren&&Bærggren^Nåncy").replace("|OUH^K1^3||||", "|OUH^K2^7|||OUH^K1^3|")
    moved = moved.replace("||19010101|F", "||19010101|F" + "|" * 8 + "M")  # PID-16 married
    merge = "\r".join([adt("A40", "T2").replace("ADT_A01", "ADT_A39").split("\r")[0], "EVN|A40|20270312085500",
                       f"PID|1||{CPR}^^^CPR^NNDNK||Bærggren^Nåncy", "MRG|0303031234^^^CPR^NNDNK"]) + "\r"
    (tmp_path / "a02.hl7").write_bytes(moved.encode("iso-8859-1"))
    (tmp_path / "a40.hl7").write_bytes(merge.encode("iso-8859-1"))
    run = hub(data_root, "convert", str(tmp_path / "a02.hl7"), str(tmp_path / "a40.hl7"), "--to", "fhir",
              "--out", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    transfer = json.loads((tmp_path / "out/Encounter-T1.json").read_bytes())
    merged = json.loads((tmp_path / "out/Patient-T2.json").read_bytes())
    for bundle in (transfer, merged):
        verdict = validator.validate(bundle)
        assert verdict.ok, [i.diagnostics for i in verdict.issues if i.severity == "error"]
    (encounter,) = resources(transfer, "Encounter")
    places = {f"urn:uuid:{r['id']}": r for r in resources(transfer, "Location")}

    def levels(reference: str | None) -> list[str]:  # the bed, then what it is part of
        found = []
        while reference:
            found.append(places[reference]["identifier"][0]["value"])
            reference = places[reference].get("partOf", {}).get("reference")
        return found

    assert [(levels(p["location"]["reference"]), p["status"]) for p in encounter["location"]] == [
        (["7", "K2", "OUH"], "active"), (["3", "K1", "OUH"], "completed")]  # PV1-3 bed^room^point of care, PV1-6
    (patient,) = resources(transfer, "Patient")
    assert (patient["birthDate"], patient["gender"]) == ("1901-01-01", "female")
    assert patient["maritalStatus"]["coding"][0]["code"] == "M"
    assert patient["name"] == [{"family": "Bærggren", "given": ["Nåncy"], "_family": {"extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/humanname-own-name", "valueString": "Bærggren"}]}}]
    (patient,) = resources(merged, "Patient")
    assert patient["link"] == [{"other": {"identifier": {"system": "urn:oid:1.2.208.176.1.2",
                                                         "value": "0303031234"}}, "type": "replaces"}]
