"""VANS envelopes through the hub over real HTTP: a FHIR message in a VANSEnvelope is processed as any message
and answered in a VANSEnvelope; a route that asks for it is delivered wrapped; what is not a message, or not
for anyone the hub knows, gets MedCom's VANS receipt; an envelope that cannot be read gets 400."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from hub.medcom.vans import FHIR_JSON, Endpoint, StatisticalCodes, VansEnvelope, document_name, unwrap, wrap
from hub.store.statements import MESSAGES
from tests.conftest import SHARED, Receiver

EXAMPLE = SHARED / ("medcom/fhir/medcom.fhir.dk.carecommunication/examples/SendExamples/"
                    "Bundle-S-A-new-1932711d-49d0-4ad7-b1ee-61de711892d2.json")
SENDER = {"name": "Example sender", "sor": "441211000016000", "gln": "5790001987244"}
RECEIVER = {"name": "Example receiver", "sor": "330461000016004", "gln": "5790001353308"}
VANS = "{urn:oio:medcom:vans-envelope:1.0.4}"


@pytest.fixture(scope="module")
def codes(packages: Any) -> StatisticalCodes:
    return StatisticalCodes.from_packages(packages)


def enveloped(data: bytes, codes: StatisticalCodes, name: str | None = None, receiver: str = RECEIVER["gln"]) -> bytes:
    bundle = json.loads(data)
    return wrap(VansEnvelope(Endpoint(SENDER["gln"]), Endpoint(receiver), str(uuid.uuid4()), str(uuid.uuid4()),
                             datetime.now(UTC), name or document_name(bundle, codes), FHIR_JSON, data), codes)


def test_a_message_in_a_vans_envelope_is_acknowledged_in_one_and_delivered_in_one(
        messaging_hub: Any, receiver: Receiver, codes: StatisticalCodes) -> None:
    hub = messaging_hub([SENDER, {**RECEIVER, "envelope": "vans"}])
    raw = EXAMPLE.read_bytes()
    answer = hub.client.post("/medcom/vans", content=enveloped(raw, codes), headers={"Content-Type": "application/xml"})
    assert answer.status_code == 200
    back = unwrap(answer.content, codes)
    assert (back.sender.id, back.receiver.id) == (RECEIVER["gln"], SENDER["gln"])  # from the receiver, back
    ack = json.loads(back.data)
    assert back.name == "MCM:FCTL#ok" and ack["entry"][0]["resource"]["response"]["code"] == "ok"
    assert back.mime_type == FHIR_JSON

    (delivered,) = receiver.wait_for(1)
    sent = unwrap(delivered, codes)
    assert sent.data == raw  # the message itself, byte for byte, in the envelope
    category = next(e["resource"] for e in json.loads(raw)["entry"]
                    if e["resource"]["resourceType"] == "Communication")["category"][0]["coding"][0]["code"]
    assert sent.name == f"MCM:FDIS91#{category}"
    assert (sent.sender.id, sent.receiver.id) == (SENDER["gln"], RECEIVER["gln"])
    assert sent.message_id == json.loads(raw)["entry"][0]["resource"]["id"]


def test_what_is_not_a_message_or_not_for_a_known_receiver_gets_a_vans_receipt(
        messaging_hub: Any, codes: StatisticalCodes) -> None:
    hub = messaging_hub([SENDER, RECEIVER])
    patient = json.dumps({"resourceType": "Patient", "id": "p"}).encode()
    answer = hub.client.post("/medcom/vans", content=enveloped(patient, codes, name="MCM:FDIS91"))
    receipt = etree.fromstring(answer.content).find(f"{VANS}Receipt/{VANS}NegativeMessage")
    assert receipt is not None and receipt.findtext(f"{VANS}Error/{VANS}Description") == "Ukendt type"

    stranger = hub.client.post("/medcom/vans", content=enveloped(EXAMPLE.read_bytes(), codes,
                                                                 receiver="5790000000005"))
    receipt = etree.fromstring(stranger.content).find(f"{VANS}Receipt/{VANS}NegativeVans")
    assert receipt is not None and receipt.findtext(f"{VANS}Error/{VANS}Description") == "Ukendt modtager"


def test_an_envelope_that_cannot_be_read_is_refused_and_kept(messaging_hub: Any, codes: StatisticalCodes) -> None:
    hub = messaging_hub([SENDER, RECEIVER])
    root = etree.fromstring(enveloped(EXAMPLE.read_bytes(), codes))
    root.find(f"{VANS}Message/{VANS}Data").text = "not base64!"
    broken = etree.tostring(root)
    answer = hub.client.post("/medcom/vans", content=broken)
    assert answer.status_code == 400
    assert any("Data" in (issue.get("expression") or [""])[0] for issue in answer.json()["issue"])
    with hub.engine.connect() as conn:
        kept = conn.execute(select(MESSAGES.c.raw, MESSAGES.c.status).where(MESSAGES.c.channel == "vans")).one()
    assert (kept.raw, kept.status) == (broken, "rejected")
