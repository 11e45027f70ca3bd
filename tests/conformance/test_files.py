"""`hub validate` as a user runs it, and `$validate` over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from hub.fhir import io
from hub.medcom import vans
from tests.conftest import SHARED, fut_appointment
from tests.flows.test_appointment import FHIR, db_count

VIDEO = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-videoappointment"


def _without_responsible(appt: dict[str, Any]) -> dict[str, Any]:
    appt["extension"] = [e for e in appt["extension"] if not e["url"].endswith("ehealth-responsible")]
    return appt


def _hub_validate(data_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUB_DATA_DIR": str(data_root)}
    return subprocess.run([sys.executable, "-m", "hub", "validate", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_hub_validate_files_and_folders_in_every_report_format(data_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "msgs"
    folder.mkdir()
    good = fut_appointment()
    (folder / "good.json").write_text(json.dumps(good))
    (folder / "good.xml").write_bytes(io.to_xml(good))
    (folder / "no-responsible.json").write_text(json.dumps(_without_responsible(fut_appointment())))
    (folder / "broken.json").write_text('{"resourceType": "Appointment", ')
    (folder / "notes.xml").write_text("<notes>not FHIR</notes>")

    run = _hub_validate(data_root, str(folder), "--format", "json")
    assert run.returncode == 1, run.stderr
    report = {Path(r["file"]).name: r for r in json.loads(run.stdout)}
    assert {n: r["valid"] for n, r in report.items()} == {
        "good.json": True, "good.xml": True, "no-responsible.json": False, "broken.json": False, "notes.xml": False}
    rules = {i.get("details", {}).get("text") for i in report["no-responsible.json"]["outcome"]["issue"]}
    assert "Appointment.extension:responsible" in rules
    assert report["good.json"]["outcome"]["resourceType"] == "OperationOutcome"

    single = _hub_validate(data_root, str(folder / "good.json"))
    assert single.returncode == 0 and "1 files, 1 passed, 0 failed" in single.stdout
    strict = _hub_validate(data_root, str(folder / "good.json"), "--fail-on", "warning")
    assert strict.returncode == 1  # dom-6 (no narrative) is a warning

    junit = _hub_validate(data_root, str(folder), "--format", "junit")
    suite = etree.fromstring(junit.stdout.encode())
    assert suite.get("tests") == "5" and suite.get("failures") == "3"

    core_only = fut_appointment()
    core_only["meta"].pop("profile")
    (tmp_path / "plain.json").write_text(json.dumps(_without_responsible(core_only)))
    assert _hub_validate(data_root, str(tmp_path / "plain.json")).returncode == 0
    assert _hub_validate(data_root, str(tmp_path / "plain.json"), "--profile", VIDEO).returncode == 1


def test_hub_validate_reads_oioxml_by_its_namespace(data_root: Path, tmp_path: Path) -> None:
    """MedCom's conversion examples validate against their namespaces' schema sets; a broken letter fails
    with the element's path; a namespace without a schema set is said to be one."""
    examples = SHARED / "medcom/xml/examples/carecommunication-conversion"
    run = _hub_validate(data_root, str(examples), "--format", "json")
    report = {Path(r["file"]).name: r for r in json.loads(run.stdout)}
    assert run.returncode == 0, run.stdout
    assert len(report) == 6 and all(r["valid"] for r in report.values())  # 4 OIOXML, 2 FHIR XML
    broken = (examples / "Flow1-XDIS91_Ex_to_FHIR.xml").read_bytes().replace(
        "<Priority>høj_prioritet</Priority>".encode(), b"<Priority>snart</Priority>")
    (tmp_path / "broken.xml").write_bytes(broken)
    (tmp_path / "future.xml").write_bytes(broken.replace(b"schemas/2006/07/01/", b"schemas/2099/01/01/"))
    run = _hub_validate(data_root, str(tmp_path), "--format", "json")
    report = {Path(r["file"]).name: r for r in json.loads(run.stdout)}
    assert run.returncode == 1 and not report["broken.xml"]["valid"] and not report["future.xml"]["valid"]
    (issue,) = report["broken.xml"]["outcome"]["issue"]
    assert issue["expression"] == ["Emessage/ClinicalEmail/AdditionalInformation/Priority"] and "snart" in \
        issue["diagnostics"]
    assert "2099/01/01" in report["future.xml"]["outcome"]["issue"][0]["diagnostics"]


def test_hub_validate_usage_errors_exit_2(data_root: Path, tmp_path: Path) -> None:
    assert _hub_validate(data_root, str(tmp_path / "missing.json")).returncode == 2
    assert _hub_validate(data_root, str(tmp_path), "--format", "pdf").returncode == 2


def test_validate_operation(hub: Any) -> None:
    good = fut_appointment()
    r = hub.client.post("/fhir/$validate", json=good, headers=FHIR)
    assert r.status_code == 200
    assert not [i for i in r.json()["issue"] if i["severity"] == "error"]

    bad = _without_responsible(fut_appointment())
    r = hub.client.post("/fhir/Appointment/$validate", json=bad, headers=FHIR)
    assert r.status_code == 200
    assert "Appointment.extension:responsible" in {i.get("details", {}).get("text") for i in r.json()["issue"]}

    bad["meta"].pop("profile")
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": bad},
                                                          {"name": "profile", "valueUri": VIDEO}]}
    r = hub.client.post("/fhir/$validate", json=params, headers=FHIR)
    assert "Appointment.extension:responsible" in {i.get("details", {}).get("text") for i in r.json()["issue"]}
    r = hub.client.post("/fhir/$validate", params={"profile": VIDEO}, json=bad, headers=FHIR)
    assert "Appointment.extension:responsible" in {i.get("details", {}).get("text") for i in r.json()["issue"]}

    assert hub.client.post("/fhir/Patient/$validate", json=good, headers=FHIR).status_code == 400
    assert hub.client.post("/fhir/$validate", content=b"{", headers=FHIR).status_code == 400
    assert db_count(hub, "messages", "operation LIKE '%$validate' AND status = 'validated'") == 4
    assert db_count(hub, "messages", "operation LIKE '%$validate' AND status = 'rejected'") == 2
    assert db_count(hub, "appointments") == 0  # validating books nothing


def test_hub_validate_reads_a_vans_envelope_and_the_message_in_it(data_root: Path, tmp_path: Path,
                                                                   packages: Any) -> None:
    """The envelope's rules first, then the FHIR message it carries, as any FHIR message."""
    codes = vans.StatisticalCodes.from_packages(packages)
    example = SHARED / ("medcom/fhir/medcom.fhir.dk.carecommunication/examples/SendExamples/"
                        "Bundle-S-A-new-1932711d-49d0-4ad7-b1ee-61de711892d2.json")

    def envelope(data: bytes) -> bytes:
        return vans.wrap(vans.VansEnvelope(vans.Endpoint("5790001987244"), vans.Endpoint("5790001353308"),
                                           str(uuid.uuid4()), str(uuid.uuid4()), datetime.now(UTC),
                                           "MCM:FDIS91", vans.FHIR_JSON, data), codes)

    message = json.loads(example.read_bytes())
    (tmp_path / "good.xml").write_bytes(envelope(example.read_bytes()))
    communication = next(e["resource"] for e in message["entry"] if e["resource"]["resourceType"] == "Communication")
    communication.pop("category")
    (tmp_path / "bad-message.xml").write_bytes(envelope(json.dumps(message).encode()))
    (tmp_path / "bad-envelope.xml").write_bytes(envelope(example.read_bytes()).replace(
        b"<SizeInBytes>", b"<SizeInBytes>1"))
    run = _hub_validate(data_root, str(tmp_path), "--format", "json")
    report = {Path(r["file"]).name: r for r in json.loads(run.stdout)}
    assert run.returncode == 1 and len(report) == 3
    assert report["good.xml"]["valid"]
    assert any("category" in i.get("diagnostics", "") for i in report["bad-message.xml"]["outcome"]["issue"])
    assert any(i.get("expression") == ["VANSEnvelope/Message/MetaInformation/Document/SizeInBytes"]
               for i in report["bad-envelope.xml"]["outcome"]["issue"])
