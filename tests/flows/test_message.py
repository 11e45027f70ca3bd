"""MedCom FHIR messaging through the hub, over real HTTP: `$process-message` validates, recognises a message
sent again, stores, routes through the outbox to a receiver on loopback, and answers with an Acknowledgement
that validates against MedCom's Acknowledgement 2.0.3."""

from __future__ import annotations

import copy
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hub.delivery.http import HttpDelivery
from hub.delivery.worker import OutboxWorker
from hub.fhir.messaging import read_message
from hub.fhir.validator import Validator
from hub.store.db import make_engine, migrate
from hub.store.statements import INSERT_MESSAGE, INSERT_OUTBOX, MESSAGES, OUTBOX
from tests.conftest import SHARED, Receiver, outbox_settled

SEND_EXAMPLES = SHARED / "medcom/fhir/medcom.fhir.dk.carecommunication/examples/SendExamples"
ACK_EXAMPLES = SHARED / "medcom/fhir/medcom.fhir.dk.acknowledgement/2.0.3/package/example"
ACK_PROFILE = "http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/medcom-messaging-acknowledgement"
JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def send_examples() -> list[Path]:
    return sorted(SEND_EXAMPLES.glob("*.json"))


def receivers_of(paths: list[Path]) -> list[dict[str, Any]]:
    """Routes for every primary receiver the examples name, by SOR."""
    sors = {k.split(":", 1)[1] for p in paths for party in read_message(json.loads(p.read_bytes())).receivers
            for k in party.keys if k.startswith("sor:")}
    return [{"name": f"receiver {s}", "sor": s} for s in sorted(sors)]



def header_of(bundle: dict[str, Any]) -> dict[str, Any]:
    return bundle["entry"][0]["resource"]  # type: ignore[no-any-return]


def ack_details(ack: dict[str, Any]) -> list[dict[str, Any]]:
    outcome = next(e["resource"] for e in ack["entry"] if e["resource"]["resourceType"] == "OperationOutcome")
    return [i["details"] for i in outcome["issue"]]


def test_every_send_example_is_acknowledged_and_delivered(messaging_hub: Any, receiver: Receiver,
                                                          validator: Validator) -> None:
    paths = send_examples()
    hub = messaging_hub(receivers_of(paths))
    for n, path in enumerate(paths, 1):
        raw = path.read_bytes()
        answer = hub.client.post("/fhir/$process-message", content=raw, headers=JSON)
        assert answer.status_code == 200, answer.text
        ack = answer.json()
        response = header_of(ack)["response"]
        assert response == {"identifier": header_of(json.loads(raw))["id"], "code": "ok"}, path.name
        verdict = validator.validate(ack)
        assert verdict.ok, [i.diagnostics for i in verdict.issues if i.severity == "error"]
        assert ACK_PROFILE in ack["meta"]["profile"]
        assert receiver.wait_for(n)[-1] == raw  # delivered unchanged, through the outbox
    # the receiver has the message before the worker records the delivery: wait for that, never for a time
    assert outbox_settled(hub.engine) == ["delivered"] * len(paths)


def test_a_message_sent_again_gets_the_same_acknowledgement_and_is_not_delivered_twice(
        messaging_hub: Any, receiver: Receiver) -> None:
    path = send_examples()[0]
    hub = messaging_hub(receivers_of([path]))
    first = hub.client.post("/fhir/$process-message", content=path.read_bytes(), headers=JSON)
    again = hub.client.post("/fhir/$process-message", content=path.read_bytes(), headers=JSON)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers.get("x-duplicate-message") == "true"
    receiver.wait_for(1)
    assert outbox_settled(hub.engine) == ["delivered"]
    assert len(receiver.got) == 1
    with hub.engine.connect() as conn:
        statuses = conn.execute(select(MESSAGES.c.status).where(MESSAGES.c.direction == "in")
                                .order_by(MESSAGES.c.received_at)).scalars().all()
    assert statuses == ["accepted", "duplicate"]  # the raw bytes of both are kept


def test_medcom_resend_fixtures_get_the_first_acknowledgement_again(messaging_hub: Any, receiver: Receiver,
                                                                    tmp_path: Path) -> None:
    """MedCom's receive test fixtures R-Tek-K and R-Tek-L (CareCommunication test scripts 5.0.0): one message
    sent twice, as MedCom resends, with a new Bundle id and timestamp and the same MessageHeader id."""
    with tarfile.open(SHARED / "medcom/fhir/medcom.fhir.dk.carecommunicationtestscripts/5.0.0/package.tgz") as tar:
        names = {m.name.split("/")[-1][:14]: m for m in tar.getmembers() if "Bundle-R-Tek-" in m.name}
        first, resend = (tar.extractfile(names[k]).read() for k in ("Bundle-R-Tek-K", "Bundle-R-Tek-L"))  # type: ignore[union-attr]
    assert json.loads(first)["id"] != json.loads(resend)["id"]
    (tmp_path / "first.json").write_bytes(first)
    hub = messaging_hub(receivers_of([tmp_path / "first.json"]))
    acks = [hub.client.post("/fhir/$process-message", content=body, headers=JSON) for body in (first, resend)]
    assert header_of(acks[0].json())["response"]["code"] == "ok"
    assert acks[1].json() == acks[0].json() and acks[1].headers["x-duplicate-message"] == "true"
    assert receiver.wait_for(1) == [first]
    assert outbox_settled(hub.engine) == ["delivered"]
    assert len(receiver.got) == 1


def test_refusals_name_medcom_error_codes_and_deliver_nothing(messaging_hub: Any, receiver: Receiver,
                                                                validator: Validator) -> None:
    path = send_examples()[0]
    message = json.loads(path.read_bytes())
    (sor,) = [r["sor"] for r in receivers_of([path])]
    hub = messaging_hub([{"name": "closed", "sor": sor, "open": False}])

    def send(variant: dict[str, Any], header_id: str) -> dict[str, Any]:
        old = header_of(variant)["id"]
        header_of(variant)["id"] = header_id  # a new message: its MessageHeader's fullUrl and references follow
        variant.update(json.loads(json.dumps(variant).replace(old, header_id)))
        answer = hub.client.post("/fhir/$process-message", content=json.dumps(variant), headers=JSON)
        assert answer.status_code == 200, answer.text
        ack = answer.json()
        assert validator.validate(ack).ok
        return ack

    closed = send(copy.deepcopy(message), "0ebb6284-eb20-45eb-8113-000000000001")
    assert header_of(closed)["response"]["code"] == "transient-error"
    assert ack_details(closed)[0]["coding"][0]["code"] == "MSG_Mailbox_Out_Of_Operation"
    again = send(copy.deepcopy(message), "0ebb6284-eb20-45eb-8113-000000000001")
    assert again["id"] != closed["id"]  # a transient error is processed anew when sent again

    unknown = copy.deepcopy(message)
    receiver_org = next(e["resource"] for e in unknown["entry"] if e["resource"]["resourceType"] == "Organization"
                        and any(i["value"] == sor for i in e["resource"]["identifier"]))
    for ident in receiver_org["identifier"]:
        if ident["value"] == sor:
            ident["value"] = "123456789012345"
    ack = send(unknown, "0ebb6284-eb20-45eb-8113-000000000002")
    assert header_of(ack)["response"]["code"] == "fatal-error"
    assert [d["coding"][0]["code"] for d in ack_details(ack)] == ["MSG_Receiver_Identifier_UNKNOWN"]

    invalid = copy.deepcopy(message)
    communication = next(e["resource"] for e in invalid["entry"] if e["resource"]["resourceType"] == "Communication")
    communication["category"][0]["coding"][0]["code"] = "no-such-category"
    ack = send(invalid, "0ebb6284-eb20-45eb-8113-000000000003")
    assert header_of(ack)["response"]["code"] == "fatal-error"
    details = ack_details(ack)
    assert any("no-such-category" in d["text"] for d in details)
    assert any(c["code"] == "MSG_VALUESET_VALUE_UNKNOWN" for d in details for c in d.get("coding", []))
    assert outbox_settled(hub.engine) == []
    assert receiver.got == []


def test_an_event_the_receiver_does_not_take_is_refused(messaging_hub: Any, validator: Validator) -> None:
    path = send_examples()[0]
    routes = [{**r, "accepts": ["hospital-notification-message"]} for r in receivers_of([path])]
    hub = messaging_hub(routes)
    ack = hub.client.post("/fhir/$process-message", content=path.read_bytes(), headers=JSON).json()
    assert header_of(ack)["response"]["code"] == "fatal-error"
    assert ack_details(ack)[0]["coding"][0]["code"] == "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE"
    assert validator.validate(ack).ok


def test_what_is_not_a_message_is_refused_and_kept(messaging_hub: Any) -> None:
    hub = messaging_hub([])
    for body in (b"\x00\xffnot json", b'{"resourceType": "Bundle", "type": "collection", "id": "x"}',
                 b'{"resourceType": "Bundle", "type": "message", "id": "x", "entry": []}'):
        answer = hub.client.post("/fhir/$process-message", content=body, headers=JSON)
        assert answer.status_code == 400
        assert answer.json()["resourceType"] == "OperationOutcome"
    with hub.engine.connect() as conn:
        kept = conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.status == "rejected")).scalars().all()
    assert b"\x00\xffnot json" in kept and len(kept) == 3


def test_an_acknowledgement_is_routed_not_acknowledged(messaging_hub: Any, receiver: Receiver) -> None:
    path = ACK_EXAMPLES / "Bundle-a8c041b8-c65a-4fde-a90f-962076918834.json"
    raw = path.read_bytes()
    (party,) = read_message(json.loads(raw)).receivers
    hub = messaging_hub([{"name": "sender of the message", "sor": party.keys[0].split(":", 1)[1]}])
    answer = hub.client.post("/fhir/$process-message", content=raw, headers=JSON)
    assert answer.status_code == 202, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert receiver.wait_for(1) == [raw]
    unrouted = messaging_hub([])
    answer = unrouted.client.post("/fhir/$process-message", content=raw, headers=JSON)
    assert answer.status_code == 422 and "No route" in answer.text


# --- the outbox worker, against a real receiver and a real database -----------------------------------------


def _pending(engine: Any, endpoint: str, key: str, count: int) -> list[str]:
    now = datetime.now(UTC) - timedelta(seconds=1)  # due
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(count)]
    with engine.begin() as conn:
        conn.execute(INSERT_MESSAGE, [{"id": i, "received_at": now, "direction": "in", "channel": "fhir-messaging",
                                       "format": "fhir+json", "operation": "test", "content_type": None,
                                       "raw": f'{{"n": {n}}}'.encode(), "verdict": None, "status": "accepted",
                                       "http_status": 200, "appointment_id": None, "idempotency_key": None}
                                      for n, i in enumerate(ids)])
        conn.execute(INSERT_OUTBOX, [{"topic": "t", "ordering_key": key, "status": "pending", "attempts": 0,
                                      "next_attempt_at": now, "created_at": now,
                                      "payload": {"message_id": i, "endpoint": endpoint}} for i in ids])
    return ids


def test_the_outbox_retries_in_order_backs_off_and_keeps_the_dead(database_url: str, receiver: Receiver) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    delivery = HttpDelivery(engine, timeout_seconds=5)
    clock = [datetime.now(UTC)]
    worker = OutboxWorker(engine, {"t": delivery}, first_delay_seconds=1, max_attempts=4, now=lambda: clock[0])
    _pending(engine, receiver.url, "receiver-a", 2)
    receiver.fail = [503, 503]
    assert worker.run_once() == 1 and receiver.got == []  # the first fails; the second waits behind it
    assert worker.run_once() == 0  # backing off
    clock[0] += timedelta(seconds=1.1)
    worker.run_once()
    clock[0] += timedelta(seconds=2.1)  # the backoff doubled
    worker.run_once()
    worker.run_once()
    assert receiver.got == [b'{"n": 0}', b'{"n": 1}']  # in the order written
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.status, OUTBOX.c.attempts).order_by(OUTBOX.c.id)).all()
    assert [tuple(r) for r in rows] == [("delivered", 3), ("delivered", 1)]

    receiver.fail = [400]  # refused: permanent, dead at once
    with engine.begin() as conn:
        conn.execute(OUTBOX.delete())
        conn.execute(MESSAGES.delete())
    _pending(engine, receiver.url, "receiver-b", 1)
    worker.run_once()
    with engine.connect() as conn:
        (row,) = conn.execute(select(OUTBOX.c.id, OUTBOX.c.status, OUTBOX.c.last_error)).all()
    assert row.status == "dead" and "400" in row.last_error
    assert worker.replay(row.id) and worker.run_once() == 1
    assert receiver.got[-1] == b'{"n": 0}'
    with engine.connect() as conn:
        attempts = conn.execute(select(MESSAGES.c.http_status).where(MESSAGES.c.direction == "out")
                                .order_by(MESSAGES.c.received_at)).scalars().all()
    assert attempts == [400, 200]  # every attempt kept as an outbound message
    delivery.close()
    engine.dispose()
