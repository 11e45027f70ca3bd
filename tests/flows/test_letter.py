"""OIOXML through the hub over real HTTP: `POST /medcom/oioxml` validates an Emessage against the schema set of
its namespace, answers with MedCom's receipts (which validate against their own schemas), recognises an
envelope sent again, and delivers accepted envelopes to the receiver's route."""

from __future__ import annotations

from typing import Any

from lxml import etree
from sqlalchemy import select

from hub.medcom.schemas import OioxmlSchemas
from hub.store.statements import MESSAGES
from tests.conftest import SHARED, Receiver

EXAMPLES = SHARED / "medcom/xml/examples/carecommunication-conversion"
XDIS91 = (EXAMPLES / "Flow1-XDIS91_Ex_to_FHIR.xml").read_bytes()  # asks for a positive receipt
XBIN01 = (EXAMPLES / "Flow1-XBIN01_Ex_to_FHIR.xml").read_bytes()  # does not
RECEIVER_EAN = "5790000121441"  # Hjemmeplejen, Odense Kommune: the examples' receiver
XML = {"Content-Type": "application/xml"}


def receipts(body: bytes, schemas: OioxmlSchemas) -> list[etree._Element]:
    """The receipts of an answer, after checking the answer against the receipts' schema set."""
    assert body.startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")
    root = etree.fromstring(body)
    assert schemas.validate(root) == []
    return [child for child in root if etree.QName(child).localname != "Envelope"]


def text(element: etree._Element, path: str) -> str | None:
    found = element.xpath(path, namespaces={"m": etree.QName(element).namespace})
    return str(found[0]) if found else None


def test_letters_get_the_receipts_their_envelope_asks_for_and_are_delivered(
        messaging_hub: Any, receiver: Receiver, data_root: Any) -> None:
    schemas = OioxmlSchemas(data_root / "standards")
    hub = messaging_hub([{"name": "Odense hjemmepleje", "gln": RECEIVER_EAN, "format": "oioxml"}])
    answer = hub.client.post("/medcom/oioxml", content=XDIS91, headers=XML)
    assert answer.status_code == 200 and "ISO-8859-1" in answer.headers["content-type"]
    (positive,) = receipts(answer.content, schemas)
    assert etree.QName(positive).localname == "PositiveReceipt"
    assert text(positive, "m:Letter/m:StatisticalCode/text()") == "XCTL03"
    assert text(positive, "m:Letter/m:VersionCode/text()") == "XC0330Q"
    assert text(positive, "m:OriginalEmessage/m:OriginalEnvelopeIdentifier/text()") == "KuvNrerwerwe99"
    assert text(positive, "m:OriginalEmessage/m:OriginalLetter/m:OriginalLetterIdentifier/text()") == "Brevt23400929"
    assert text(positive, "m:OriginalEmessage/m:OriginalLetter/m:OriginalVersionCode/text()") == "XD9134L"
    assert text(positive, "m:Sender/m:EANIdentifier/text()") == RECEIVER_EAN  # from the receiver to the sender
    assert text(positive, "m:Receiver/m:EANIdentifier/text()") == "5790001382445"
    assert receiver.wait_for(1) == [XDIS91]  # the envelope itself, unchanged, through the outbox

    again = hub.client.post("/medcom/oioxml", content=XDIS91, headers=XML)
    assert again.content == answer.content and again.headers["x-duplicate-message"] == "true"

    quiet = hub.client.post("/medcom/oioxml", content=XBIN01, headers=XML)
    assert quiet.status_code == 204  # minuspositivkvitt and nothing wrong: nothing to say
    assert receiver.wait_for(2)[1] == XBIN01


def test_a_refused_letter_gets_a_negative_receipt_beside_the_positive_one(
        messaging_hub: Any, receiver: Receiver, data_root: Any) -> None:
    schemas = OioxmlSchemas(data_root / "standards")
    hub = messaging_hub([{"name": "Odense hjemmepleje", "gln": RECEIVER_EAN, "format": "oioxml"}])
    root = etree.fromstring(XDIS91)
    good = root[1]
    bad = etree.fromstring(etree.tostring(good))
    bad.xpath("//m:Letter/m:Identifier", namespaces={"m": etree.QName(root).namespace})[0].text = "Brev2"
    bad.xpath("//m:Priority", namespaces={"m": etree.QName(root).namespace})[0].text = "når det passer"
    root.append(bad)
    answer = hub.client.post("/medcom/oioxml", content=etree.tostring(root, encoding="ISO-8859-1"), headers=XML)
    negative, positive = receipts(answer.content, schemas)
    assert etree.QName(negative).localname == "NegativeReceipt"
    assert text(negative, "m:Letter/m:StatisticalCode/text()") == "XCTL02"
    assert text(negative, "m:OriginalEmessage/m:OriginalLetter/m:OriginalLetterIdentifier/text()") == "Brev2"
    assert text(negative, "m:OriginalEmessage/m:OriginalLetter/m:RefuseCode/text()") == "syntaksfejl"
    assert "når det passer" in (text(negative, "m:OriginalEmessage/m:OriginalLetter/m:RefuseText/text()") or "")
    assert text(positive, "m:OriginalEmessage/m:OriginalLetter/m:OriginalLetterIdentifier/text()") == "Brevt23400929"
    assert receiver.wait_for(1)  # the accepted letter's envelope goes on


def test_a_broken_envelope_or_an_unknown_namespace_gets_a_negative_vans_receipt(
        messaging_hub: Any, receiver: Receiver, data_root: Any) -> None:
    schemas = OioxmlSchemas(data_root / "standards")
    hub = messaging_hub([{"name": "Odense hjemmepleje", "gln": RECEIVER_EAN, "format": "oioxml"}])
    too_long = XDIS91.replace(b"<Identifier>KuvNrerwerwe99</Identifier>",
                              b"<Identifier>Kuvert-nummer-alt-for-langt</Identifier>")
    (vans,) = receipts(hub.client.post("/medcom/oioxml", content=too_long, headers=XML).content, schemas)
    assert etree.QName(vans).localname == "NegativeVansReceipt"
    assert text(vans, "m:Letter/m:StatisticalCode/text()") == "XCTL01"
    assert text(vans, "m:OriginalEmessage/m:RefuseCode/text()") == "syntaksfejl"
    assert text(vans, "m:OriginalEmessage/m:OriginalEnvelopeIdentifier/text()") == "Kuvert-nummer-"  # cut to 14
    unknown = XDIS91.replace(b"schemas/2006/07/01/", b"schemas/2099/01/01/")
    (vans,) = receipts(hub.client.post("/medcom/oioxml", content=unknown, headers=XML).content, schemas)
    assert text(vans, "m:OriginalEmessage/m:RefuseCode/text()") == "problem_med_version"
    assert receiver.got == []


def test_a_letter_to_an_unknown_receiver_is_refused(messaging_hub: Any, receiver: Receiver, data_root: Any) -> None:
    schemas = OioxmlSchemas(data_root / "standards")
    hub = messaging_hub([])
    (negative,) = receipts(hub.client.post("/medcom/oioxml", content=XBIN01, headers=XML).content, schemas)
    assert text(negative, "m:OriginalEmessage/m:OriginalLetter/m:RefuseCode/text()") == "ukendt_lokationsnummer"
    assert receiver.got == []


def test_what_is_not_an_emessage_is_refused_and_kept(messaging_hub: Any) -> None:
    hub = messaging_hub([])
    bodies = [b"not xml <", b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>',
              b"<Letter xmlns='urn:x'/>"]
    for body in bodies:
        answer = hub.client.post("/medcom/oioxml", content=body, headers={**XML, "Accept": "application/fhir+json"})
        assert answer.status_code == 400 and answer.json()["resourceType"] == "OperationOutcome"
        xml = hub.client.post("/medcom/oioxml", content=body, headers=XML)  # as the request: FHIR XML
        assert etree.QName(etree.fromstring(xml.content)).localname == "OperationOutcome"
    with hub.engine.connect() as conn:
        kept = conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.channel == "oioxml")).scalars().all()
    assert sorted(kept) == sorted(bodies * 2)
