"""Meetings booked through FHIR go out as HL7 v2 SIU over MLLP: the hub on loopback with its VDX service, the
outbox worker, and a real MLLP receiver that records what it gets and answers with real ACKs."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from sqlalchemy import Engine, select

from hub.delivery.mllp import MllpDelivery, control_id
from hub.delivery.worker import OutboxWorker
from hub.flows.hl7v2 import Hl7v2Flow
from hub.hl7v2 import siu_out
from hub.hl7v2.ack import Finding, acknowledgement
from hub.hl7v2.message import Hl7Message, read
from hub.hl7v2.mllp import MllpServer, MllpServerThread, Peer, Problem
from hub.hl7v2.siu import VideoPolicy, meeting_request
from hub.store.db import make_engine, session_factory
from hub.store.statements import MESSAGES, OUTBOX
from hub.wiring import booking_flow
from tests.appointments import iso, video_appointment

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
CPR = "0101801234"
PATIENT = {"identifier": {"system": CPR_SYSTEM, "value": CPR}, "display": "Søren Ærø Østergård"}
DESCRIPTION = "Opfølgning på blodtryk – æøå ÆØÅ"
SENDING, RECEIVING = ("HUB", "KOMMUNE"), ("EPJ", "REGION")
VDX_MEETING = "http://vdx.medcom.dk/meeting"
MEETING_URL = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-meeting-url"
SLOW = 1.0  # seconds a slow receiver takes; the delivery's timeout is half of it


def strict(raw: bytes) -> None:
    """hl7apy's strict validation for the message's version, as the brief asks."""
    parse_message(raw.decode("utf-8"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()


class Receiver:
    """An HL7 v2 scheduling system: records every message; answers as `plans` say (first in, first used), then
    AA. Plans: AA, AE (with an ERR that names the patient's CPR number), AR, none (no answer), slow (AA after
    SLOW seconds), wrong (an ACK of another message), garbage (not HL7)."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.plans: list[str] = []
        self.lock = threading.Lock()
        self.thread: MllpServerThread | None = None

    @property
    def port(self) -> int:
        assert self.thread is not None
        return self.thread.port

    def __call__(self, raw: bytes, problem: Problem | None, peer: Peer) -> bytes | None:
        message = read(raw)
        with self.lock:
            self.got.append(raw)
            plan = self.plans.pop(0) if self.plans else "AA"
        if plan == "none":
            return None
        if plan == "garbage":
            return b"thank you"
        if plan == "wrong":
            return acknowledgement(read(raw.replace(message.control_id.encode(), b"SOMETHINGELSE")), "AA")
        if plan == "slow":
            time.sleep(SLOW)
            plan = "AA"
        findings = [Finding("204", f"Patienten {CPR} findes ikke i EPJ", "PID", 1, 3)] if plan != "AA" else []
        return acknowledgement(message, plan, findings)

    def messages(self) -> list[Hl7Message]:
        with self.lock:
            return [read(raw) for raw in self.got]


class Clock:
    """The outbox worker's clock, moved on to make a backed-off row due."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recorder = Receiver()
    recorder.thread = MllpServer(recorder).start_in_thread()
    yield recorder
    recorder.thread.stop(grace=SLOW * 3)


@pytest.fixture
def engine(hub: Any) -> Iterator[Engine]:
    """The hub's database, its bookings announced (`meeting.*`) as with a receiver configured, whose deliveries
    these tests drive themselves (`delivery`, `worker`)."""
    hub.server.config.app.state.services.flow.announced = True
    engine = make_engine(hub.server.config.app.state.services.settings.effective_database_url)
    yield engine
    engine.dispose()


def delivery(engine: Engine, port: int, **options: Any) -> MllpDelivery:
    return MllpDelivery(engine, "127.0.0.1", port, options.pop("sending", SENDING), RECEIVING,
                        options.pop("timeout", 5.0), **options)


def worker(engine: Engine, handler: MllpDelivery, clock: Clock | None = None) -> OutboxWorker:
    return OutboxWorker(engine, handler.handlers(), now=clock or Clock())


def book(hub: Any, **changes: Any) -> dict[str, Any]:
    appt = video_appointment(patient=PATIENT)
    appt["description"] = DESCRIPTION
    appt.update(changes)
    r = hub.client.post("/fhir/Appointment", json=appt, headers=FHIR)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def put(hub: Any, appt: dict[str, Any]) -> dict[str, Any]:
    r = hub.client.put(f"/fhir/Appointment/{appt['id']}", json=appt, headers=FHIR)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def outbox(engine: Engine, appointment_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(OUTBOX).where(OUTBOX.c.ordering_key == appointment_id)
                                 .order_by(OUTBOX.c.id)).all())


def hl7_rows(engine: Engine, appointment_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(MESSAGES).where(MESSAGES.c.appointment_id == appointment_id,
                                                        MESSAGES.c.channel == "hl7v2")
                                 .order_by(MESSAGES.c.received_at)).all())


def room(appt: dict[str, Any]) -> str:
    return str(next(i["value"] for i in appt["identifier"] if i["system"] == VDX_MEETING and i.get("use") != "old"))


def dtm(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(siu_out.COPENHAGEN)


def field(siu: Hl7Message, segment: str, number: int) -> str:
    """A field as written (components and escapes), of the first such segment (not MSH)."""
    found = next(line for line in siu.text.split("\r") if line.startswith(segment + "|")).split("|")
    return str(found[number]) if len(found) > number else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- end to end ----------------------------------------------------------------------------------------------


def test_a_booking_goes_out_as_siu_s12_that_matches_it_and_passes_strict_validation(
        hub: Any, engine: Engine, receiver: Receiver) -> None:
    appt = book(hub)
    handler = delivery(engine, receiver.port)
    assert worker(engine, handler).run_once() == 1

    (raw,) = receiver.got
    strict(raw)
    siu = read(raw)
    assert (siu.message_type, siu.trigger, siu.get("MSH.9.3"), siu.version) == ("SIU", "S12", "SIU_S12", "2.5.1")
    assert siu.get("MSH.18") == "UNICODE UTF-8" and siu.charset == "utf-8"
    assert (siu.get("MSH.3"), siu.get("MSH.4"), siu.get("MSH.5"), siu.get("MSH.6")) == (*SENDING, *RECEIVING)
    assert siu.get("SCH.1.1") == appt["id"]
    assert siu.get("SCH.2.1") == room(appt)
    assert siu.get("SCH.11.4") == dtm(appt["start"]).strftime("%Y%m%d%H%M%S%z")
    assert siu.get("SCH.11.5") == dtm(appt["end"]).strftime("%Y%m%d%H%M%S%z")
    assert siu.get("TQ1.7") == siu.get("SCH.11.4") and siu.get("TQ1.8") == siu.get("SCH.11.5")
    assert siu.get("SCH.8.1") == "VIDEO" and siu.get("AIS.3.1") == "VIDEO"
    assert siu.get("SCH.25.1") == "Booked"
    assert field(siu, "PID", 3) == f"{CPR}^^^CPR&1.2.208.176.1.2&ISO^NNDNK"
    meeting_url = next(e["valueUri"] for e in appt["extension"] if e["url"] == MEETING_URL)
    assert siu.get("NTE.3") == meeting_url
    assert siu.get("AIP.3.1") == "107302"
    # Danish letters arrive as UTF-8 and read back the same
    assert "Østergård".encode() in raw and siu.get("PID.5.1") == "Østergård" and siu.get("PID.5.2") == "Søren Ærø"
    assert siu.get("SCH.7.2") == DESCRIPTION

    (row,) = outbox(engine, appt["id"])
    assert (row.status, row.attempts) == ("delivered", 1)
    out, ack = hl7_rows(engine, appt["id"])
    assert (out.direction, out.operation, out.status, out.raw) == ("out", f"MLLP {handler.target}", "sent", raw)
    assert (ack.direction, ack.status, read(ack.raw).get("MSA.1")) == ("in", "received", "AA")
    assert out.idempotency_key == ack.idempotency_key == siu.control_id == control_id(appt["id"], row.id)


def test_a_move_is_s13_a_change_without_new_times_s14_and_a_cancellation_s15(
        hub: Any, engine: Engine, receiver: Receiver) -> None:
    appt = book(hub)
    run = worker(engine, delivery(engine, receiver.port))
    run.run_once()
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
    appt["start"], appt["end"] = iso(later), iso(later + timedelta(minutes=45))
    appt = put(hub, appt)
    run.run_once()
    appt["description"] = "Samme tid, ny beskrivelse"
    appt = put(hub, appt)
    run.run_once()
    cancel = b'[{"op":"replace","path":"/status","value":"cancelled"}]'
    r = hub.client.patch(f"/fhir/Appointment/{appt['id']}", content=cancel,
                         headers={"Content-Type": "application/json-patch+json", "Accept": "application/fhir+json"})
    assert r.status_code == 200, r.text
    run.run_once()

    booked, moved, changed, cancelled = receiver.messages()
    assert [m.trigger for m in (booked, moved, changed, cancelled)] == ["S12", "S13", "S14", "S15"]
    assert moved.get("SCH.11.4") == later.astimezone(siu_out.COPENHAGEN).strftime("%Y%m%d%H%M%S%z")
    assert moved.get("SCH.11.5") == (later + timedelta(minutes=45)).astimezone(siu_out.COPENHAGEN).strftime(
        "%Y%m%d%H%M%S%z")
    assert changed.get("SCH.11.4") == moved.get("SCH.11.4") and changed.get("SCH.7.2") == "Samme tid, ny beskrivelse"
    assert cancelled.get("SCH.1.1") == appt["id"] and cancelled.get("SCH.2.1") == room(appt)
    assert cancelled.get("SCH.25.1") == "Cancelled" and not cancelled.segments("NTE")
    assert len({m.control_id for m in (booked, moved, changed, cancelled)}) == 4
    for raw in receiver.got:
        strict(raw)
    assert [row.status for row in outbox(engine, appt["id"])] == ["delivered"] * 4


def test_a_refusal_is_dead_with_the_err_text_and_the_next_change_announces_the_booking(
        hub: Any, engine: Engine, receiver: Receiver) -> None:
    appt = book(hub)
    run = worker(engine, delivery(engine, receiver.port))
    receiver.plans = ["AE"]
    run.run_once()
    (row,) = outbox(engine, appt["id"])
    assert (row.status, row.attempts) == ("dead", 1)
    assert "AE" in row.last_error and "findes ikke i EPJ" in row.last_error
    assert CPR not in row.last_error and "010180-****" in row.last_error
    out, ack = hl7_rows(engine, appt["id"])
    assert (out.status, read(ack.raw).get("MSA.1")) == ("failed", "AE")

    # The receiver never took the booking: a later move tells it as a new one (S12), not as a change it cannot apply.
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=6)
    appt["start"], appt["end"] = iso(later), iso(later + timedelta(minutes=30))
    put(hub, appt)
    run.run_once()
    assert [m.trigger for m in receiver.messages()] == ["S12", "S12"]
    assert outbox(engine, appt["id"])[1].status == "delivered"


def test_ar_is_permanent_too(hub: Any, engine: Engine, receiver: Receiver) -> None:
    appt = book(hub)
    receiver.plans = ["AR"]
    worker(engine, delivery(engine, receiver.port)).run_once()
    assert outbox(engine, appt["id"])[0].status == "dead"


def test_a_receiver_that_is_down_is_tried_again_and_gets_the_same_control_id(hub: Any, engine: Engine) -> None:
    appt = book(hub)
    port = free_port()
    clock = Clock()
    run = worker(engine, delivery(engine, port), clock)
    run.run_once()
    (row,) = outbox(engine, appt["id"])
    assert (row.status, row.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in row.last_error
    (failed,) = hl7_rows(engine, appt["id"])
    assert (failed.direction, failed.status) == ("out", "failed")
    assert run.run_once() == 0  # backing off

    recorder = Receiver()
    with MllpServerThread(MllpServer(recorder, port=port)):
        clock.shift = timedelta(seconds=5)
        assert run.run_once() == 1
    (row,) = outbox(engine, appt["id"])
    assert (row.status, row.attempts) == ("delivered", 2)
    (siu,) = recorder.messages()
    assert siu.trigger == "S12" and siu.control_id == read(failed.raw).control_id == control_id(appt["id"], row.id)


@pytest.mark.parametrize("plan", ["none", "slow", "wrong", "garbage"])
def test_no_usable_answer_is_tried_again_with_the_same_control_id(
        hub: Any, engine: Engine, receiver: Receiver, plan: str) -> None:
    appt = book(hub)
    clock = Clock()
    run = worker(engine, delivery(engine, receiver.port, timeout=SLOW / 2), clock)
    receiver.plans = [plan]
    run.run_once()
    (row,) = outbox(engine, appt["id"])
    assert (row.status, row.attempts) == ("pending", 1), row.last_error
    clock.shift = timedelta(seconds=5)
    run.run_once()
    (row,) = outbox(engine, appt["id"])
    assert (row.status, row.attempts) == ("delivered", 2)
    first, second = receiver.messages()
    assert first.control_id == second.control_id == control_id(appt["id"], row.id)
    assert [r.status for r in hl7_rows(engine, appt["id"]) if r.direction == "out"] == ["failed", "sent"]


def test_an_siu_that_fails_validation_is_not_sent(hub: Any, engine: Engine, receiver: Receiver) -> None:
    appt = book(hub)
    # MSH-3's namespace id is an IS: 20 characters at most
    run = worker(engine, delivery(engine, receiver.port, sending=("A" * 30, "KOMMUNE")))
    run.run_once()
    (row,) = outbox(engine, appt["id"])
    assert row.status == "dead" and "validation" in row.last_error
    assert receiver.got == []
    (kept,) = hl7_rows(engine, appt["id"])
    assert kept.status == "failed" and kept.verdict["issue"][0]["severity"] == "error"


def test_an_appointment_booked_from_hl7v2_is_not_sent_back(
        hub: Any, engine: Engine, receiver: Receiver) -> None:
    settings = hub.server.config.app.state.services.settings
    bookings = booking_flow(settings, engine, session_factory(engine))
    bookings.announced = True  # as with a receiver configured
    inbound = Hl7v2Flow(engine, bookings, video=VideoPolicy())
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=4)
    siu = siu_out.siu_message(
        "meeting.booked", {"participant": [{"actor": PATIENT}], "description": "Kontrol"},
        {"appointment": "EPJ-APT-7", "start": iso(start), "end": iso(start + timedelta(minutes=30))},
        control_id="EPJ-1", now=datetime.now(UTC), sending=("EPJ", "OUH"), receiving=("HUB", "HUB"))
    try:
        assert read(inbound.receive(siu) or b"").get("MSA.1") == "AA"
    finally:
        inbound.bookings.close()  # type: ignore[union-attr]
    with engine.connect() as conn:
        (row,) = conn.execute(select(OUTBOX).where(OUTBOX.c.topic == "meeting.booked")).all()

    worker(engine, delivery(engine, receiver.port)).run_once()
    assert outbox(engine, row.ordering_key)[0].status == "delivered"
    assert receiver.got == []
    assert [r for r in hl7_rows(engine, row.ordering_key) if r.direction == "out" and r.operation.startswith("MLLP")] \
        == []


def test_no_cpr_number_in_the_log(hub: Any, engine: Engine, receiver: Receiver,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    appt = book(hub)
    clock = Clock()
    run = worker(engine, delivery(engine, receiver.port), clock)
    receiver.plans = ["AE"]
    run.run_once()
    appt["status"] = "cancelled"
    put(hub, appt)
    run.run_once()
    assert [m.trigger for m in receiver.messages()] == ["S12", "S15"]
    assert any(r.name == "hub.outbox" and "dead" in r.getMessage() for r in caplog.records)
    assert any(r.name == "hub.delivery.mllp" for r in caplog.records)
    assert CPR not in caplog.text
    assert not [r for r in caplog.records if CPR in r.getMessage()]


# --- the message alone ---------------------------------------------------------------------------------------


def message(topic: str = "meeting.booked", appointment: dict[str, Any] | None = None,
            previous: tuple[datetime, datetime] | None = None, **payload: Any) -> bytes:
    appt = appointment or {"id": "A1", "participant": [{"actor": PATIENT}], "description": DESCRIPTION}
    fields = {"appointment": "A1", "start": "2031-03-12T09:00:00Z", "end": "2031-03-12T09:30:00Z",
              "status": "booked", "vdx_uuid": "3f1c2d4e-0000-4000-8000-000000000001"} | payload
    return siu_out.siu_message(topic, appt, fields, previous, control_id="C1", now=datetime.now(UTC),
                               sending=SENDING, receiving=RECEIVING)


def test_the_status_map_is_the_inbound_conceptmap_read_backwards() -> None:
    codes = siu_out.status_map()
    assert codes.filler_status["booked"] == "Booked"  # equivalent, not Overbook (wider)
    assert codes.filler_status["cancelled"] == "Cancelled"  # not Dc
    assert codes.filler_status["arrived"] == "Started"  # the only one there is
    assert "proposed" not in codes.filler_status
    assert codes.cancel_trigger == {"cancelled": "S15", "entered-in-error": "S17", "noshow": "S26"}


T1, T2 = datetime(2031, 3, 12, 9, tzinfo=UTC), datetime(2031, 3, 12, 10, tzinfo=UTC)


@pytest.mark.parametrize(("topic", "status", "previous", "trigger"), [
    ("meeting.booked", "booked", None, "S12"),
    ("meeting.updated", "booked", (T1, T2), "S14"),
    ("meeting.updated", "booked", (T1, T2 + timedelta(minutes=15)), "S13"),
    ("meeting.updated", "booked", (T1 - timedelta(days=1), T2), "S13"),
    ("meeting.updated", "booked", None, "S12"),
    ("meeting.cancelled", "cancelled", (T1, T2), "S15"),
    ("meeting.cancelled", "entered-in-error", (T1, T2), "S17"),
    ("meeting.cancelled", "noshow", (T1, T2), "S26"),
])
def test_which_trigger(topic: str, status: str, previous: tuple[datetime, datetime] | None, trigger: str) -> None:
    assert siu_out.trigger_event(topic, status, T1, T2, previous, siu_out.status_map()) == trigger
    raw = message(topic, previous=previous, status=status, start=iso(T1), end=iso(T2))
    assert read(raw).trigger == trigger
    strict(raw)


def test_separators_in_values_are_escaped_and_read_back() -> None:
    tricky = "a|b^c&d~e\\f"
    appt = {"id": "A1", "description": tricky + "\nline\x0bend",
            "participant": [{"actor": {**PATIENT, "display": "Hans " + tricky}}]}
    raw = message(appointment=appt)
    strict(raw)
    siu = read(raw)
    assert siu.get("SCH.7.2") == tricky + " line end"  # line ends and VT (MLLP's start block) become spaces
    assert siu.get("PID.5.1") == tricky and siu.get("PID.5.2") == "Hans"
    assert b"\x0b" not in raw


def test_long_text_is_cut_to_its_length_without_breaking_an_escape() -> None:
    appt = {"id": "A1", "description": "æ" * 190 + "&" * 20, "participant": [{"actor": PATIENT}]}
    raw = message(appointment=appt)
    strict(raw)
    written = raw.decode().split("\r")[1].split("|")[7]
    assert written.startswith("^" + "æ" * 190) and written.endswith("\\T\\") and len(written) <= 200


def test_a_contained_patient_with_another_identifier_and_locations() -> None:
    appt = {"id": "A1", "contained": [
        {"resourceType": "Patient", "id": "p", "identifier": [{"system": "urn:oid:1.2.208.176.1.9", "value": "X7"}],
         "name": [{"family": "Bærggren", "given": ["Nåncy", "Ida"]}]},
        {"resourceType": "Location", "id": "l", "identifier": [{"system": "urn:oid:1.2.208.176.1.1",
                                                                 "value": "123456789012345"}]}],
        "participant": [{"actor": {"reference": "#p"}}, {"actor": {"reference": "#l", "display": "Stue 4"}},
                        {"actor": {"reference": "Practitioner/9", "display": "Peter Hansen"}}]}
    raw = message(appointment=appt)
    strict(raw)
    siu = read(raw)
    assert field(siu, "PID", 3) == "X7^^^&1.2.208.176.1.9&ISO"
    assert (siu.get("PID.5.1"), siu.get("PID.5.2")) == ("Bærggren", "Nåncy Ida")
    assert (siu.get("AIL.3.1"), siu.get("AIL.3.9")) == ("123456789012345", "Stue 4")
    assert (siu.get("AIP.3.1"), siu.get("AIP.3.2"), siu.get("AIP.3.3")) == ("9", "Hansen", "Peter")
    assert siu.get("SCH.16.2") == "Hansen"


def test_no_pid_without_a_patient_identifier() -> None:
    raw = message(appointment={"id": "A1", "participant": [{"actor": {"reference": "Patient/102"}}]})
    strict(raw)
    assert not read(raw).segments("PID")


@pytest.mark.parametrize("version", siu_out.VERSIONS)
def test_each_version_passes_strict_validation(version: str) -> None:
    raw = siu_out.siu_message("meeting.booked", {"id": "A1", "participant": [{"actor": PATIENT}]},
                              {"appointment": "A1", "start": "2031-03-12T09:00:00Z", "end": "2031-03-12T09:30:00Z",
                               "status": "booked"}, control_id="C1", now=datetime.now(UTC), sending=SENDING,
                              receiving=RECEIVING, version=version)
    assert read(raw).version == version
    strict(raw)


def test_a_version_without_sch_timing_is_refused() -> None:
    with pytest.raises(ValueError, match="2.7"):
        siu_out.siu_message("meeting.booked", {}, {"appointment": "A1", "start": "2031-03-12T09:00:00Z",
                                                   "end": "2031-03-12T09:30:00Z"}, control_id="C1",
                            now=datetime.now(UTC), sending=SENDING, receiving=RECEIVING, version="2.7")


def test_the_hubs_own_siu_reader_reads_the_meeting_back() -> None:
    siu = read(message())
    request = meeting_request(siu)
    assert (request.start, request.end) == (datetime(2031, 3, 12, 9, tzinfo=UTC), datetime(2031, 3, 12, 9, 30,
                                                                                            tzinfo=UTC))
    assert request.status == "booked" and request.patient is not None
    assert request.patient.identifier is not None and request.patient.identifier.value == CPR
    assert VideoPolicy().matches(siu)
