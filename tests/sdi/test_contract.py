"""The SF1470 v6 contract (issue 6, first part): KOMBIT's files in the standards store, loaded with zeep and
compiled as XSDs without the network; the example requests validate, a broken one does not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from hub.sdi.contract import OPERATIONS, WSDL, client, operations, request_schema
from tests.conftest import SHARED

EXAMPLES = SHARED / "kombit/examples/authored"


def test_the_contract_loads_from_the_store_with_its_four_operations_on_soap_11(data_root: Path) -> None:
    sdi = client(data_root / "standards")
    assert sorted(operations(sdi)) == sorted(OPERATIONS)
    port = next(iter(next(iter(sdi.wsdl.services.values())).ports.values()))
    assert type(port.binding).__name__ == "Soap11Binding"
    assert port.binding_options["address"].endswith("/sagdokumentindeks/6")


def test_a_contract_that_would_reach_the_network_is_refused(data_root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(data_root / "standards" / WSDL.parents[2], copy / WSDL.parents[2])
    wsdl = copy / WSDL
    wsdl.write_text(wsdl.read_text(encoding="utf-8").replace(
        'location="xsd/policies/OIOIDWS.wsdl"', 'location="http://example.invalid/OIOIDWS.wsdl"'), encoding="utf-8")
    with pytest.raises(OSError, match="from the store only"):
        client(copy)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.body.xml")), ids=lambda p: p.name)
def test_the_example_requests_validate_against_the_contracts_xsds(data_root: Path, example: Path) -> None:
    schema = request_schema(data_root / "standards")
    assert schema.validate(etree.parse(str(example))), [e.message for e in schema.error_log]


def test_a_value_outside_the_contract_is_refused(data_root: Path) -> None:
    schema = request_schema(data_root / "standards")
    doc = etree.parse(str(EXAMPLES / "SF1470-v6-importer-minimal-sag.body.xml"))
    (sensitivity,) = doc.xpath("//*[local-name()='Foelsomhed']")
    sensitivity.text = "MEGET_HEMMELIG"
    assert not schema.validate(doc)
    assert any("Foelsomhed" in e.message for e in schema.error_log)


def test_hub_validate_checks_sf1470_requests_as_the_local_index_does(data_root: Path, tmp_path: Path) -> None:
    for example in EXAMPLES.glob("*.body.xml"):
        shutil.copy(example, tmp_path / example.name)
    doc = etree.parse(str(EXAMPLES / "SF1470-v6-importer-minimal-sag.body.xml"))
    doc.xpath("//*[local-name()='Sagsnummer']")[0].text = "ANDET"
    envelope = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                + etree.tostring(doc.getroot()) + b"</soap:Body></soap:Envelope>")
    (tmp_path / "renamed-envelope.xml").write_bytes(envelope)
    env = {**os.environ, "HUB_DATA_DIR": str(data_root)}
    run = subprocess.run([sys.executable, "-m", "hub", "validate", str(tmp_path), "--format", "json"], env=env,
                         capture_output=True, timeout=120, check=False)
    report = {Path(r["file"]).name: r for r in json.loads(run.stdout)}
    assert run.returncode == 1
    assert all(r["valid"] for name, r in report.items() if name.endswith(".body.xml")) and len(report) == 5
    (issue,) = report["renamed-envelope.xml"]["outcome"]["issue"]
    assert issue["code"] == "business-rule" and issue["expression"] == ["Egenskaber/BrugervendtNoegle"]
    assert "§3.3" in issue["diagnostics"]
