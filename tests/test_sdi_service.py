"""The hub's local case index over real HTTP (issue 6, first part): SOAP 1.1 requests checked against the XSDs
and the anvisning rules, cases kept so fremsoeg finds them, a Master that never changes, and clear answers."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from hub.api.server_thread import ServerThread
from hub.sdi.contract import request_schema
from hub.sdi.rules import NS, roles
from hub.sdi.service import REQUEST_HEADER, SOAP, create_sdi_app
from tests.conftest import SHARED

EXAMPLES = SHARED / "kombit/examples/authored"
CASE = "6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5"  # the example case's UUID


@pytest.fixture
def sdi(data_root: Path) -> Iterator[ServerThread]:
    with ServerThread(create_sdi_app(data_root / "standards")) as server:
        yield server


def body(name: str) -> etree._Element:
    return etree.parse(str(EXAMPLES / name)).getroot()


def call(server: ServerThread, operation: etree._Element, transaction: str | None = "auto") -> etree._Element:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
    header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    if transaction is not None:
        request_header = etree.SubElement(header, f"{{{REQUEST_HEADER}}}RequestHeader")
        etree.SubElement(request_header, f"{{{REQUEST_HEADER}}}TransactionUUID").text = \
            str(uuid.uuid4()) if transaction == "auto" else transaction
    etree.SubElement(envelope, f"{{{SOAP}}}Body").append(copy.deepcopy(operation))
    answer = httpx.post(f"{server.url}/sdi", content=etree.tostring(envelope), headers={"Content-Type": "text/xml"})
    assert answer.status_code == 200, answer.text
    return etree.fromstring(answer.content)


def output(answer: etree._Element, data_root: Path) -> etree._Element:
    (found,) = answer.find(f"{{{SOAP}}}Body")
    assert request_schema(data_root / "standards").validate(etree.ElementTree(copy.deepcopy(found))), \
        "the answer breaks the contract"
    return found  # type: ignore[no-any-return]


def statuses(found: etree._Element) -> list[tuple[int, str]]:
    return [(int(r.findtext(f"{{{NS['sd']}}}StatusKode") or 0), r.findtext(f"{{{NS['sd']}}}FejlbeskedTekst") or "")
            for r in found]


def test_a_case_is_imported_found_and_removed(sdi: ServerThread, data_root: Path) -> None:
    transaction = "7d1b1d0a-0000-4000-8000-000000000001"
    answer = call(sdi, body("SF1470-v6-importer-minimal-sag.body.xml"), transaction=transaction)
    assert answer.findtext(f".//{{{REQUEST_HEADER}}}TransactionUUID") == transaction  # echoed
    assert statuses(output(answer, data_root)) == [(20, "OK")]

    found = output(call(sdi, body("SF1470-v6-fremsoeg-sag-by-uuid.body.xml")), data_root)
    snapshots = found.findall(f"{{{NS['sdi']}}}SagFiltreretOejebliksbillede")
    assert [s.findtext(f".//{{{NS['sd']}}}UUIDIdentifikator") for s in snapshots] == [CASE]
    assert snapshots[0].findtext(f".//{{{NS['sag']}}}Sagsnummer") == "HUB-2026-000123"

    assert statuses(output(call(sdi, body("SF1470-v6-fjern-sag.body.xml")), data_root)) == [(20, "OK")]
    found = output(call(sdi, body("SF1470-v6-fremsoeg-sag-by-uuid.body.xml")), data_root)
    assert found.findall(f"{{{NS['sdi']}}}SagFiltreretOejebliksbillede") == []
    assert statuses(output(call(sdi, body("SF1470-v6-fjern-sag.body.xml")), data_root))[0][0] == 44


def test_what_the_index_must_not_take_is_answered_40_with_the_reason(sdi: ServerThread, data_root: Path) -> None:
    importer = body("SF1470-v6-importer-minimal-sag.body.xml")
    assert statuses(output(call(sdi, importer), data_root))[0][0] == 20

    other_master = copy.deepcopy(importer)
    master = {name: key for key, name in roles().items()}["Master"]
    other_master.xpath(f".//si:SagsitsystemRelation[gd:Rolle/sd:UUIDIdentifikator='{master}']"
                       "/gd:ReferenceID/sd:UUIDIdentifikator", namespaces=NS)[0].text = str(uuid.uuid4())
    (refused,) = statuses(output(call(sdi, other_master), data_root))
    assert refused[0] == 40 and "a Master never changes" in refused[1]

    renamed = copy.deepcopy(importer)
    renamed.xpath(".//sag:Sagsnummer", namespaces=NS)[0].text = "ANDET-NUMMER"
    (refused,) = statuses(output(call(sdi, renamed), data_root))
    assert refused[0] == 40 and "BrugervendtNoegle must be the Sagsnummer" in refused[1] and "§3.3" in refused[1]

    secret = copy.deepcopy(importer)
    secret.xpath(".//si:Foelsomhed", namespaces=NS)[0].text = "MEGET_HEMMELIG"
    (refused,) = statuses(output(call(sdi, secret), data_root))
    assert refused[0] == 40 and "XSD" in refused[1] and "Foelsomhed" in refused[1]

    (refused,) = statuses(output(call(sdi, importer, transaction=None), data_root))
    assert refused == (40, "RequestHeader/TransactionUUID is required")

    update = body("SF1470-v6-opdater-afslut-sag.body.xml")
    update.xpath(".//sdi:OpdaterSagIndeks/sd:UUIDIdentifikator", namespaces=NS)[0].text = str(uuid.uuid4())
    assert statuses(output(call(sdi, update), data_root))[0][0] == 44


def test_what_is_not_soap_gets_a_fault(sdi: ServerThread) -> None:
    for content in (b"not xml", b"<x/>", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'):
        answer = httpx.post(f"{sdi.url}/sdi", content=content)
        assert answer.status_code == 400 and b"soap:Client" in answer.content and b"root:" not in answer.content
