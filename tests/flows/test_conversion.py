"""Conversion in the hub's flows, over real HTTP: a receiver that reads the other format gets the message
converted, its answer goes back converted, and what cannot be converted is refused in the sender's terms."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from hub.conformance import testscript
from hub.convert.service import Converter, danish_display
from hub.core.routing import RoutingTable
from hub.fhir.messaging import ErrorCodes, ack_event, acknowledgement, read_message
from hub.fhir.validator import Validator
from hub.medcom.envelope import read_emessage
from hub.medcom.receipts import NEGATIVE, POSITIVE, Receipt, ReceiptWriter, Refusal
from hub.medcom.schemas import OioxmlSchemas
from hub.store.conversions import ConversionStore
from hub.store.statements import CONVERSIONS, MESSAGES, PENDING_LETTERS
from tests.conftest import SHARED, Receiver, outbox_settled

EXAMPLES = SHARED / "medcom/xml/examples/carecommunication-conversion"
XDIS91 = (EXAMPLES / "Flow1-XDIS91_Ex_to_FHIR.xml").read_bytes()
XBIN01 = (EXAMPLES / "Flow1-XBIN01_Ex_to_FHIR.xml").read_bytes()
SEND_EXAMPLE = SHARED / ("medcom/fhir/medcom.fhir.dk.carecommunication/examples/SendExamples/"
                         "Bundle-S-A-new-1932711d-49d0-4ad7-b1ee-61de711892d2.json")
HOSPITAL_NOTIFICATION = SHARED / ("medcom/fhir/medcom.fhir.dk.hospitalnotification/3.0.2/package/example/"
                                  "Bundle-a5e5b880-c087-4055-b9ec-99108695f81d.json")
HUB_BASE = "http://localhost/fhir"  # the hub's base URL in these tests (no HUB_PUBLIC_BASE_URL)
XML = {"Content-Type": "application/xml"}
FHIR = {"Content-Type": "application/fhir+json"}

# flow 1: MedCom's test centre writes OIOXML to Odense, which reads FHIR
TESTCENTER = {"name": "MedCom testcenter", "sor": "359001000016000", "gln": "5790001382445", "phone": "65432030",
              "format": "oioxml"}
ODENSE = {"name": "Social og Sundhed Odense Kommune", "sor": "328051000016008", "gln": "5790000121441"}
# the send example: its sender reads FHIR, its receiver OIOXML
EXAMPLE_SENDER = {"name": "Example sender", "sor": "441211000016000", "gln": "5790001987244"}
EXAMPLE_RECEIVER = {"name": "Example receiver", "sor": "330461000016004", "gln": "5790001353308", "format": "oioxml"}


@pytest.fixture
def mailbox() -> Iterator[Receiver]:
    """The second receiving system: what the OIOXML party is sent."""
    r = Receiver()
    with r.server:
        yield r




def converter_for(routes: list[dict[str, Any]], data_root: Any, packages: Any) -> Converter:
    """The converter as the hub builds it for these routes: what the hub sends is compared with its output."""
    table = RoutingTable.from_json({"receivers": [{"endpoint": "http://127.0.0.1:9/", **r} for r in routes]})
    return Converter(data_root / "standards/files/medcom/xml/schemas", table.organisation, danish_display(packages),
                     HUB_BASE)


def waiting(hub: Any) -> int:
    with hub.engine.connect() as conn:
        return len(conn.execute(select(PENDING_LETTERS.c.id)).all())


def receipt_letters(body: bytes, schemas: OioxmlSchemas) -> list[etree._Element]:
    root = etree.fromstring(body)
    assert schemas.validate(root) == []
    return [child for child in root if etree.QName(child).localname != "Envelope"]


def xpath(element: etree._Element, path: str) -> str:
    return str(element.xpath(f"string({path})", namespaces={"m": etree.QName(element).namespace}))


def ack_of(bundle: dict[str, Any], code: str, packages: Any) -> dict[str, Any]:
    """The receiver's Acknowledgement of a message it got, as a FHIR system writes it."""
    return acknowledgement(read_message(bundle), code, [], ErrorCodes.load(), ack_event(packages),
                           "https://receiver.example/fhir", lambda: str(uuid.uuid4()))


# --- OIOXML sender, FHIR receiver ---------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["XDIS91 first", "XBIN01 first"])
def test_letters_for_a_fhir_receiver_become_one_carecommunication_and_its_ack_becomes_receipts(
        order: str, messaging_hub: Any, receiver: Receiver, mailbox: Receiver, data_root: Any, packages: Any,
        schemas: OioxmlSchemas, validator: Validator) -> None:
    routes = [{**TESTCENTER, "endpoint": mailbox.url}, ODENSE]
    hub = messaging_hub(routes)
    first, second = (XDIS91, XBIN01) if order == "XDIS91 first" else (XBIN01, XDIS91)
    answer = hub.client.post("/medcom/oioxml", content=first, headers=XML)
    assert answer.status_code in (200, 204)
    assert waiting(hub) == 1 and receiver.got == []  # half a message is not delivered
    hub.client.post("/medcom/oioxml", content=second, headers=XML)

    (delivered,) = receiver.wait_for(1)
    bundle = json.loads(delivered)
    expected = converter_for(routes, data_root, packages).to_fhir(
        [etree.fromstring(XDIS91), etree.fromstring(XBIN01)])[0].bundle
    assert bundle == expected  # exactly what MedCom's conversion (as tested in test_convert) gives
    assert validator.validate(bundle).ok
    for script in ("carecommunication-send-new-message", "carecommunication-send-new-attachment-pdf"):
        report = testscript.run(testscript.load(script, data_root / "standards"), [bundle], validator)
        assert report["result"] == "pass", testscript.summary(report)  # the hub sends as MedCom tests senders
    assert waiting(hub) == 0

    # Odense acknowledges; the test centre gets one positive receipt per original envelope
    ack = ack_of(bundle, "ok", packages)
    routed = hub.client.post("/fhir/$process-message", json=ack)
    assert routed.status_code == 202
    got = mailbox.wait_for(2)
    receipts = [letter for body in got for letter in receipt_letters(body, schemas)]
    assert {etree.QName(r).localname for r in receipts} == {"PositiveReceipt"}
    assert {xpath(r, "m:OriginalEmessage/m:OriginalEnvelopeIdentifier") for r in receipts} == \
        {read_emessage(etree.fromstring(body)).identifier for body in (XDIS91, XBIN01)}
    assert {xpath(r, "m:OriginalEmessage/m:OriginalLetter/m:OriginalVersionCode") for r in receipts} == \
        {"XD9134L", "XB0131X"}
    assert {xpath(r, "m:Receiver/m:EANIdentifier") for r in receipts} == {TESTCENTER["gln"]}


def test_a_letter_whose_parts_never_come_is_refused_to_its_sender_after_the_wait(
        messaging_hub: Any, receiver: Receiver, mailbox: Receiver, schemas: OioxmlSchemas) -> None:
    hub = messaging_hub([{**TESTCENTER, "endpoint": mailbox.url}, ODENSE], pending_letter_hours=0.5 / 3600,
                        housekeeping_interval_seconds=0.2)
    hub.client.post("/medcom/oioxml", content=XDIS91, headers=XML)
    (refused,) = receipt_letters(mailbox.wait_for(1)[0], schemas)
    assert etree.QName(refused).localname == "NegativeReceipt"
    assert xpath(refused, ".//m:RefuseCode") == "ikke_specificeret"
    assert "XBIN01" in xpath(refused, ".//m:RefuseText") and "did not arrive" in xpath(refused, ".//m:RefuseText")
    assert xpath(refused, "m:OriginalEmessage/m:OriginalLetter/m:OriginalLetterIdentifier") == "Brevt23400929"
    assert waiting(hub) == 0 and receiver.got == []
    # the XBIN01 arriving now waits alone for an XDIS91 that has been refused: refused too, in its turn
    hub.client.post("/medcom/oioxml", content=XBIN01, headers=XML)
    (late,) = receipt_letters(mailbox.wait_for(2)[1], schemas)
    assert "XDIS91" in xpath(late, ".//m:RefuseText")
    assert receiver.got == []


def test_letters_the_hub_cannot_convert_for_a_fhir_receiver_get_negative_receipts(
        messaging_hub: Any, receiver: Receiver, schemas: OioxmlSchemas) -> None:
    hub = messaging_hub([{**TESTCENTER, "sor": None}, ODENSE])  # the sender known by EAN only: no SOR id
    answer = hub.client.post("/medcom/oioxml", content=XDIS91, headers=XML)
    (refused,) = receipt_letters(answer.content, schemas)
    assert etree.QName(refused).localname == "NegativeReceipt"
    assert "no SOR id" in xpath(refused, ".//m:RefuseText")

    hub = messaging_hub([TESTCENTER, ODENSE])
    root = etree.fromstring(XBIN01)
    data = root.xpath("//m:Object_Base64Encoded", namespaces={"m": etree.QName(root).namespace})[0]
    data.text = "this is not base64!"
    broken = etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1")
    (refused,) = receipt_letters(hub.client.post("/medcom/oioxml", content=broken, headers=XML).content, schemas)
    assert xpath(refused, ".//m:RefuseCode") == "syntaksfejl" and "base64" in xpath(refused, ".//m:RefuseText")
    assert waiting(hub) == 0
    with hub.engine.connect() as conn:
        statuses = conn.execute(select(MESSAGES.c.status).where(MESSAGES.c.direction == "in")).scalars().all()
    assert statuses == ["rejected"]  # kept, with its verdict


def test_a_receipt_for_a_letter_the_hub_never_sent_is_refused(messaging_hub: Any, schemas: OioxmlSchemas) -> None:
    hub = messaging_hub([{**TESTCENTER, "format": "fhir"}, ODENSE])  # the receipt is for a FHIR party
    original = read_emessage(etree.fromstring(XDIS91))  # an envelope the hub never sent
    writer = ReceiptWriter(schemas.root)
    receipt = writer.receipts(_Reversed(original), [Receipt(POSITIVE, list(zip(original.letters, [None],
                                                                               strict=True)))])
    answer = hub.client.post("/medcom/oioxml", content=receipt, headers=XML)
    (refused,) = receipt_letters(answer.content, schemas)
    assert etree.QName(refused).localname == "NegativeReceipt"
    assert xpath(refused, ".//m:RefuseCode") == "ikke_specificeret"
    assert "has not sent" in xpath(refused, ".//m:RefuseText")


class _Reversed:
    """An envelope as its receiver answers it: the receipt goes from the letter's receiver to its sender."""

    def __init__(self, original: Any) -> None:
        self.identifier = original.identifier
        self.sender_ean, self.receiver_ean = original.sender_ean, original.receiver_ean


# --- FHIR sender, OIOXML receiver ---------------------------------------------------------------------------

def example_with_attachment() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(SEND_EXAMPLE.read_bytes())
    communication = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Communication")
    extensions = copy.deepcopy(communication["payload"][0]["extension"])  # date, identifier, author, contact
    for extension in extensions:
        if "valueIdentifier" in extension:
            extension["valueIdentifier"]["value"] = "urn:uuid:0f5e2a44-9d7e-4c1b-8c3e-2b7f0e6d1a90"
    pdf = base64.b64encode(b"%PDF-1.4\n" + bytes(300)).decode()
    communication["payload"].append({"extension": extensions, "contentAttachment": {
        "contentType": "application/pdf", "title": "Plan", "data": pdf}})
    return bundle


def send_for_oioxml(messaging_hub: Any, receiver: Receiver, mailbox: Receiver, data_root: Any, packages: Any,
                    schemas: OioxmlSchemas) -> tuple[Any, dict[str, Any], list[bytes]]:
    routes = [EXAMPLE_SENDER, {**EXAMPLE_RECEIVER, "endpoint": mailbox.url}]
    hub = messaging_hub(routes)
    bundle = example_with_attachment()
    answer = hub.client.post("/fhir/$process-message", json=bundle)
    assert answer.json()["entry"][0]["resource"]["response"]["code"] == "ok"
    letters = mailbox.wait_for(2)
    expected = converter_for(routes, data_root, packages).to_oioxml(copy.deepcopy(bundle)).outputs
    assert sorted(letters) == sorted(o.body for o in expected)  # the XDIS91 and the XBIN01, as converted
    assert all(schemas.validate(etree.fromstring(body)) == [] for body in letters)
    return hub, bundle, letters


def answer_letters(hub: Any, letters: list[bytes], schemas: OioxmlSchemas, refused: str | None = None) -> None:
    """The OIOXML receiver's receipts, one envelope at a time: the XDIS91's first."""
    writer = ReceiptWriter(schemas.root)
    for body in sorted(letters, key=lambda b: b"BinaryLetter" in b):
        original = read_emessage(etree.fromstring(body))
        refusal = Refusal(refused, "Modtageren kender ikke afdelingen") if refused else None
        kind = NEGATIVE if refused else POSITIVE
        receipt = writer.receipts(_Reversed(original), [Receipt(kind, [(original.letters[0], refusal)])])
        assert hub.client.post("/medcom/oioxml", content=receipt, headers=XML).status_code == 204
        refused = None  # only the first is refused


def test_a_carecommunication_for_an_oioxml_receiver_goes_as_letters_and_their_receipts_come_back_as_one_ack(
        messaging_hub: Any, receiver: Receiver, mailbox: Receiver, data_root: Any, packages: Any,
        schemas: OioxmlSchemas, validator: Validator) -> None:
    hub, bundle, letters = send_for_oioxml(messaging_hub, receiver, mailbox, data_root, packages, schemas)
    store = ConversionStore(hub.engine)
    assert store.unanswered("to-oioxml") == []  # no receipt yet: nothing for the housekeeping to settle
    xdis91 = next(b for b in letters if b"ClinicalEmail" in b)
    answer_letters(hub, [xdis91], schemas)
    (waiting,) = store.unanswered("to-oioxml")  # a receipt, and more to come: the housekeeping looks at it
    outbox_settled(hub.engine)  # whatever the receipt made due is in the outbox once the hub has answered
    assert receiver.got == []  # the XBIN01 asked for a receipt too: not answered yet
    answer_letters(hub, [b for b in letters if b is not xdis91], schemas)
    (delivered,) = receiver.wait_for(1)
    ack = json.loads(delivered)
    header = ack["entry"][0]["resource"]
    assert header["response"] == {"identifier": bundle["entry"][0]["resource"]["id"], "code": "ok"}
    assert validator.validate(ack).ok
    sender = next(e["resource"] for e in ack["entry"] if e["fullUrl"].endswith(header["destination"][0]["receiver"]
                                                                                ["reference"]))
    assert {i["value"] for i in sender["identifier"]} >= {EXAMPLE_SENDER["sor"]}
    with hub.engine.connect() as conn:
        assert conn.execute(select(CONVERSIONS.c.answered_at)).scalar_one() is not None
    assert store.unanswered("to-oioxml") == [] and store.by_id(waiting).letters[0][1] is not None


def test_a_negative_receipt_becomes_a_fatal_error_at_once_and_later_receipts_are_kept_only(
        messaging_hub: Any, receiver: Receiver, mailbox: Receiver, data_root: Any, packages: Any,
        schemas: OioxmlSchemas, validator: Validator) -> None:
    hub, bundle, letters = send_for_oioxml(messaging_hub, receiver, mailbox, data_root, packages, schemas)
    answer_letters(hub, letters, schemas, refused="ukendt_lokationsnummer")
    (delivered,) = receiver.wait_for(1)
    ack = json.loads(delivered)
    assert ack["entry"][0]["resource"]["response"]["code"] == "fatal-error"
    assert validator.validate(ack).ok
    outcome = next(e["resource"] for e in ack["entry"] if e["resource"]["resourceType"] == "OperationOutcome")
    issue = outcome["issue"][0]
    assert issue["code"] == "not-found"
    assert issue["details"]["coding"][0]["code"] == "MSG_Receiver_Identifier_UNKNOWN"
    assert "kender ikke afdelingen" in issue["details"]["text"]
    outbox_settled(hub.engine)
    assert len(receiver.got) == 1  # the XBIN01's positive receipt came after: no second Acknowledgement


def test_what_an_oioxml_receiver_cannot_be_sent_is_a_fatal_error(messaging_hub: Any, packages: Any) -> None:
    notification = json.loads(HOSPITAL_NOTIFICATION.read_bytes())
    (receiver_of_it,) = read_message(notification).receivers
    sor = next(k.split(":", 1)[1] for k in receiver_of_it.keys if k.startswith("sor:"))
    hub = messaging_hub([EXAMPLE_SENDER, EXAMPLE_RECEIVER, {"name": "Kommune", "sor": sor, "format": "oioxml"}])
    hub_answer = hub.client.post("/fhir/$process-message", json=notification).json()
    assert hub_answer["entry"][0]["resource"]["response"]["code"] == "fatal-error"
    (issue,) = next(e["resource"] for e in hub_answer["entry"]
                    if e["resource"]["resourceType"] == "OperationOutcome")["issue"]
    assert issue["details"]["coding"][0]["code"] == "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE"
    assert "reads OIOXML" in issue["details"]["text"]

    # an acknowledgement for an OIOXML receiver, of a message the hub never converted
    original = json.loads(SEND_EXAMPLE.read_bytes())
    original["entry"][0]["resource"]["sender"], original["entry"][0]["resource"]["destination"][0]["receiver"] = \
        original["entry"][0]["resource"]["destination"][0]["receiver"], original["entry"][0]["resource"]["sender"]
    ack = ack_of(original, "ok", packages)
    refused = hub.client.post("/fhir/$process-message", json=ack)
    assert refused.status_code == 422
    assert "has not converted" in refused.json()["issue"][0]["diagnostics"]


def test_broken_base64_in_a_carecommunication_is_a_fatal_error_and_nothing_is_converted(
        messaging_hub: Any, mailbox: Receiver) -> None:
    hub = messaging_hub([EXAMPLE_SENDER, {**EXAMPLE_RECEIVER, "endpoint": mailbox.url}])
    bundle = example_with_attachment()
    communication = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Communication")
    communication["payload"][-1]["contentAttachment"]["data"] = "not base64!!"
    ack = hub.client.post("/fhir/$process-message", json=bundle).json()
    assert ack["entry"][0]["resource"]["response"]["code"] == "fatal-error"
    (issue,) = next(e["resource"] for e in ack["entry"] if e["resource"]["resourceType"] == "OperationOutcome")["issue"]
    assert issue["details"]["coding"][0]["code"] == "MSG_Datatype_Wrong"
    assert issue["expression"] == ["Bundle.entry[2].resource.payload[1].contentAttachment.data"]
    with hub.engine.connect() as conn:
        assert conn.execute(select(CONVERSIONS.c.id)).all() == []
        kept = conn.execute(select(MESSAGES.c.status).where(MESSAGES.c.direction == "in")).scalars().all()
    assert kept == ["rejected"]
    outbox_settled(hub.engine)
    assert mailbox.got == []
