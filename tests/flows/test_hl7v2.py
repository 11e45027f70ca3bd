"""HL7 v2 in: reading what real senders write, the ACK for each case, ADT → encounter events, persisted before the
ACK and not processed twice. (Over real TCP in tests/flows/test_hl7v2_mllp.py.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from sqlalchemy import Engine, select

from hub.delivery.application_ack import TOPIC as APPLICATION_ACK_TOPIC
from hub.delivery.application_ack import ApplicationAckDelivery
from hub.delivery.worker import OutboxWorker, PermanentFailure
from hub.flows.hl7v2 import Hl7v2Flow
from hub.hl7v2.adt import patient_identifier
from hub.hl7v2.message import NotHl7, read
from hub.hl7v2.mllp import MllpServer
from hub.store.db import make_engine, migrate
from hub.store.encounters import EncounterStore
from hub.store.statements import ENCOUNTER_EVENTS, MESSAGES, OUTBOX

CPR = "0101011234"


def adt(trigger: str = "A01", control_id: str = "M1", version: str = "2.5", charset: str = "8859/1",
        name: str = "Bærggren^Nåncy", end: str = "", patient_class: str = "I", visit: str = "V123") -> str:
    msh18 = f"|||||DAN|{charset}" if charset else ""
    return "\r".join([
        f"MSH|^~\\&|EPJ|OUH|HUB|HUB|20270312090000||ADT^{trigger}^ADT_A01|{control_id}|P|{version}{msh18}",
        f"EVN|{trigger}|20270312085500",
        f"PID|1||{CPR}^^^CPR^NNDNK~X77^^^OUH^MR||{name}||19010101|F",
        f"PV1|1|{patient_class}|OUH^K1^3||||||||||||||||{visit}^^^OUH^VN" + "|" * 25 + f"20270312084500|{end}",
    ]) + "\r"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    migrate(engine)
    return engine


def segments(ack: bytes, charset: str = "iso-8859-1") -> dict[str, list[str]]:
    return {line[:3]: line.split("|") for line in ack.decode(charset).split("\r") if line}


# --- reading ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ending", ["\r", "\n", "\r\n"])
def test_segment_ends_a_bom_and_trailing_empty_segments_are_read(ending: str) -> None:
    raw = b"\xef\xbb\xbf" + adt(charset="UNICODE UTF-8").replace("\r", ending).encode() + ending.encode() * 3
    message = read(raw)
    assert message.segment_ids == ["MSH", "EVN", "PID", "PV1"]
    assert message.get("PID.5.1") == "Bærggren" and message.charset == "utf-8"


def test_danish_letters_in_both_encodings_and_escape_sequences() -> None:
    latin = read(adt(name="Bærggren^Nåncy \\T\\ Ø\\F\\\\X41\\").encode("iso-8859-1"))
    utf8 = read(adt(charset="UNICODE UTF-8", name="Bærggren^Nåncy \\T\\ Ø\\F\\\\X41\\").encode("utf-8"))
    for message in (latin, utf8):
        assert message.get("PID.5.1") == "Bærggren"
        assert message.get("PID.5.2") == "Nåncy & Ø|A"
    unsaid = read(adt(charset="").encode("iso-8859-1"))  # no MSH-18 and not UTF-8: ISO-8859-1
    assert unsaid.charset == "iso-8859-1" and unsaid.get("PID.5.1") == "Bærggren"


@pytest.mark.parametrize(("raw", "code"), [
    (b"PID|1||x\r", "100"),  # no MSH
    (b"MSH|^~\\|EPJ\r", "102"),  # three encoding characters
    (b"MSH|^^\\&|EPJ\r", "102"),  # the same character twice
    (b"MSH|^~\\&|EPJ||||||ADT^A01|1|P|2.5\rP D|1\r", "100"),  # a segment without an id
    (b"MSH|^~\\&|EPJ||||||ADT^A01|1|P|2.5||||||KOI8-R\r", "102"),  # a character set the hub does not read
    (b"MSH|^~\\&|EPJ||||||ADT^A01|1|P|2.5||||||UNICODE UTF-8\rPID|\xe6\r", "102"),  # not the UTF-8 it says
    (b"\x00\x01binary\xff", "100"),
])
def test_what_cannot_be_understood_is_refused_with_its_code(raw: bytes, code: str) -> None:
    with pytest.raises(NotHl7) as refused:
        read(raw)
    assert refused.value.code == code


# --- the flow: ACKs, persistence, duplicates, encounter events ----------------------------------------------

def test_an_admission_is_acknowledged_aa_stored_and_an_encounter_event(engine: Engine) -> None:
    flow = Hl7v2Flow(engine)
    ack = flow.receive(adt().encode("iso-8859-1"), peer="127.0.0.1:5000")
    assert ack is not None
    seg = segments(ack)
    assert seg["MSA"][1:3] == ["AA", "M1"]
    assert seg["MSH"][2:6] == ["HUB", "HUB", "EPJ", "OUH"]  # from the receiver back to the sender
    assert seg["MSH"][8] == "ACK^A01^ACK" and seg["MSH"][11] == "2.5" and seg["MSH"][17] == "8859/1"
    assert "ERR" not in seg
    parsed = parse_message(ack.decode("iso-8859-1"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    parsed.validate()  # the ACK itself is a valid v2.5 ACK
    with engine.connect() as conn:
        (event,) = conn.execute(select(ENCOUNTER_EVENTS)).all()
        rows = conn.execute(select(MESSAGES.c.direction, MESSAGES.c.status, MESSAGES.c.raw)).all()
    assert (event.event, event.status, event.encounter_class) == ("ADT^A01", "in-progress", "IMP")
    assert event.patient_identifier == f"urn:oid:1.2.208.176.1.2|{CPR}"
    assert {(r.direction, r.status) for r in rows} == {("in", "accepted"), ("out", "sent")}
    assert next(r.raw for r in rows if r.direction == "in") == adt().encode("iso-8859-1")


def test_a_message_sent_again_gets_its_first_ack_and_is_not_processed_twice(engine: Engine) -> None:
    flow = Hl7v2Flow(engine)
    first = flow.receive(adt().encode("iso-8859-1"))
    again = flow.receive(adt().encode("iso-8859-1"))
    assert again == first
    with engine.connect() as conn:
        assert len(conn.execute(select(ENCOUNTER_EVENTS.c.id)).all()) == 1
        statuses = conn.execute(select(MESSAGES.c.status).where(MESSAGES.c.direction == "in")).scalars().all()
    assert sorted(statuses) == ["accepted", "duplicate"]


def test_a_discharge_ends_the_stay_and_a_cancel_cancels_it(engine: Engine) -> None:
    flow = Hl7v2Flow(engine)
    flow.receive(adt().encode("iso-8859-1"))
    flow.receive(adt("A03", "M2", end="20270315120000").encode("iso-8859-1"))
    flow.receive(adt("A11", "M3", visit="V999").encode("iso-8859-1"))
    with engine.connect() as conn:
        events = {(e.event, e.status, e.end is not None) for e in conn.execute(select(ENCOUNTER_EVENTS)).all()}
    assert events == {("ADT^A01", "in-progress", False), ("ADT^A03", "finished", True),
                      ("ADT^A11", "cancelled", False)}


@pytest.mark.parametrize(("raw", "code", "err_code", "where"), [
    (adt().replace("ADT^A01^ADT_A01", "ORU^R01^ORU_R01"), "AR", "200", "MSH^1^9"),
    (adt().replace("ADT^A01^ADT_A01", "ADT^A60^ADT_A60"), "AR", "201", "MSH^1^9"),  # allergies: not taken
    (adt(version="2.9"), "AR", "203", "MSH^1^12"),
    (adt().replace("|M1|P|", "|M1|X|"), "AR", "202", "MSH^1^11"),
    (adt().replace("|M1|P|", "||P|"), "AR", "101", "MSH^1^10"),
    (adt().replace("20270312084500", "2027-03-12"), "AE", "102", "PV1^1^44"),
    (adt().replace(f"||{CPR}^^^CPR^NNDNK~X77^^^OUH^MR||", "||||"), "AE", "101", "PID^1^3"),
    (adt(visit=""), "AE", "101", "PV1^1^19"),
])
def test_each_problem_gets_its_ack_code_and_an_err_naming_segment_and_field(
        engine: Engine, raw: str, code: str, err_code: str, where: str) -> None:
    ack = Hl7v2Flow(engine).receive(raw.encode("iso-8859-1"))
    assert ack is not None
    seg = segments(ack)
    assert seg["MSA"][1] == code
    assert seg["MSA"][2] == ("M1" if "||P|" not in raw else "")  # MSA-2 echoes MSH-10
    assert seg["ERR"][2] == where and seg["ERR"][3].split("^")[0] == err_code
    with engine.connect() as conn:
        assert conn.execute(select(ENCOUNTER_EVENTS.c.id)).all() == []
        assert conn.execute(select(MESSAGES.c.status).where(MESSAGES.c.direction == "in")).scalar_one() == "rejected"


def test_garbage_and_unframed_bytes_are_answered_ar_and_kept(engine: Engine) -> None:
    flow = Hl7v2Flow(engine)
    for raw, problem in ((b"\x00\xffgarbage", None), (b"MSH|^~\\&|half a mess", "the connection ended mid-frame")):
        ack = flow.receive(raw, problem)
        assert ack is not None
        seg = segments(ack, "utf-8")
        assert seg["MSA"][1:3] == ["AR", ""] and seg["ERR"][3].startswith("100^")
    with engine.connect() as conn:
        kept = conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.direction == "in")).scalars().all()
    assert sorted(kept) == sorted([b"\x00\xffgarbage", b"MSH|^~\\&|half a mess"])


def test_enhanced_mode_answers_as_msh15_asks_and_sends_the_verdict_as_msh16_asks(engine: Engine,
                                                                                 tmp_path: Path) -> None:
    flow = Hl7v2Flow(engine)

    def enhanced(accept: str, control_id: str, application: str = "NE", broken: str = "") -> bytes | None:
        raw = adt(control_id=control_id).replace("|P|2.5|||||DAN|", f"|P|2.5|||{accept}|{application}|DAN|")
        if broken == "content":
            raw = raw.replace("20270312084500", "2027-03-12")
        elif broken == "version":
            raw = raw.replace("|P|2.5|", "|P|2.9|")
        return flow.receive(raw.encode("iso-8859-1"))

    # the accept acknowledgement: CA once stored (also when the content is wrong), CR when MSH is refused
    assert segments(enhanced("AL", "E1") or b"")["MSA"][1] == "CA"
    assert segments(enhanced("AL", "E2", broken="content") or b"")["MSA"][1] == "CA"
    assert enhanced("NE", "E3") is None
    assert enhanced("ER", "E4", broken="content") is None  # stored: no accept error to tell
    assert segments(enhanced("ER", "E5", broken="version") or b"")["MSA"][1] == "CR"
    assert enhanced("SU", "E6", broken="version") is None and segments(enhanced("SU", "E7") or b"")["MSA"][1] == "CA"

    # the application acknowledgement: the verdict, a message of its own, through the outbox to the sender
    assert segments(enhanced("AL", "E8", "AL", broken="content") or b"")["MSA"][1] == "CA"
    enhanced("AL", "E9", "ER")  # ER: no application acknowledgement for a message that is fine
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.payload)).all()
    assert [r.topic for r in rows] == [APPLICATION_ACK_TOPIC]
    got: list[bytes] = []
    with MllpServer(lambda raw, problem, peer: got.append(raw) or None).start_in_thread() as sender:
        delivery = ApplicationAckDelivery(engine, {"EPJ^OUH": ("127.0.0.1", sender.port)})
        assert OutboxWorker(engine, {APPLICATION_ACK_TOPIC: delivery}).run_once() == 1
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    (application,) = got
    seg = segments(application)
    assert seg["MSA"][1:3] == ["AE", "E8"] and seg["ERR"][2] == "PV1^1^44"
    with engine.connect() as conn:
        assert conn.execute(select(OUTBOX.c.status)).scalar_one() == "delivered"
    unknown = ApplicationAckDelivery(engine, {"OTHER^X": ("127.0.0.1", 9)})
    with pytest.raises(PermanentFailure):
        unknown(rows[0].payload)


def test_v23_acks_use_err1(engine: Engine) -> None:
    raw = adt(version="2.3").replace("ADT^A01^ADT_A01", "ADT^A01").replace("20270312084500", "2027-03-12")
    ack = Hl7v2Flow(engine).receive(raw.encode("iso-8859-1"))
    assert ack is not None
    seg = segments(ack)
    assert seg["MSH"][8] == "ACK^A01"  # no message structure component before v2.3.1
    assert seg["MSA"][1] == "AE" and seg["ERR"][1].startswith("PV1^1^44^102&PV1-44 is not an HL7 date")


def test_the_listener_takes_what_it_can_act_on_though_the_version_calls_more_required(engine: Engine) -> None:
    """No patient name (PID-5 is required in v2.5) and an unreadable EVN-2: the hub can still record the stay."""
    raw = adt().replace("||Bærggren^Nåncy||", "||||").replace("EVN|A01|20270312085500", "EVN|A01|2027x")
    ack = Hl7v2Flow(engine).receive(raw.encode("iso-8859-1"))
    assert ack is not None and segments(ack)["MSA"][1] == "AA"


# --- the encounter and patient life cycle -------------------------------------------------------------------

def _stay(engine: Engine) -> dict[str, Any]:
    (stay,) = EncounterStore(engine).stays()
    return stay


def test_transfer_class_changes_and_their_cancels_follow_the_stay(engine: Engine) -> None:
    flow = Hl7v2Flow(engine)

    def send(trigger: str, control_id: str, raw: str | None = None, **fields: str) -> None:
        message = raw or adt(trigger, control_id, **fields)
        assert segments(flow.receive(message.encode("iso-8859-1")) or b"")["MSA"][1:3] == ["AA", control_id]

    send("A05", "P1", patient_class="P")
    assert (_stay(engine)["status"], _stay(engine)["location"][0]["status"]) == ("planned", "planned")
    send("A01", "P2")
    assert _stay(engine)["location"] == [{"location": {"identifier": {
        "system": "urn:hub:hl7v2:location:OUH", "value": "OUH^K1^3"}, "display": "OUH K1 3"}, "status": "active"}]
    moved = adt("A02", "P3").replace("|OUH^K1^3||||", "|OUH^K2^7|||OUH^K1^3|")  # PV1-3 new, PV1-6 prior
    send("A02", "P3", moved)
    assert [(p["location"]["display"], p["status"]) for p in _stay(engine)["location"]] == [
        ("OUH K2 7", "active"), ("OUH K1 3", "completed")]
    send("A12", "P4")  # cancel transfer: PV1-3 is where the patient is again
    assert [p["location"]["display"] for p in _stay(engine)["location"]] == ["OUH K1 3"]
    send("A07", "P5", patient_class="O")
    assert _stay(engine)["class"]["code"] == "AMB"
    send("A06", "P6", patient_class="I")
    assert _stay(engine)["class"]["code"] == "IMP"
    send("A03", "P7", end="20270315120000")
    assert _stay(engine)["status"] == "finished" and _stay(engine)["period"]["end"]
    send("A13", "P8", end="20270315120000")  # cancel discharge: the end goes, whatever PV1-45 still says
    after = _stay(engine)
    assert after["status"] == "in-progress" and "end" not in after.get("period", {})


def test_patient_tracking_keeps_the_stay_with_its_temporary_location_beside_it(engine: Engine) -> None:
    flow = Hl7v2Flow(engine)
    flow.receive(adt().encode("iso-8859-1"))
    tracked = adt("A09", "K1").replace("ADT_A01", "ADT_A09").split("\r")
    pv1 = tracked[3].split("|")
    pv1[11] = "RTG^1"  # PV1-11: the temporary location (X-ray)
    tracked[3] = "|".join(pv1)
    assert segments(flow.receive("\r".join(tracked).encode("iso-8859-1")) or b"")["MSA"][1] == "AA"
    assert [(p["location"]["display"], p["status"]) for p in _stay(engine)["location"]] == [
        ("OUH K1 3", "active"), ("RTG 1", "planned")]  # departing for it
    arrived = "\r".join(tracked).replace("ADT^A09", "ADT^A10").replace("EVN|A09", "EVN|A10").replace("|K1|", "|K2|")
    assert segments(flow.receive(arrived.encode("iso-8859-1")) or b"")["MSA"][1] == "AA"
    assert [(p["location"]["display"], p["status"]) for p in _stay(engine)["location"]] == [
        ("OUH K1 3", "active"), ("RTG 1", "active")]  # arrived
    assert _stay(engine)["status"] == "in-progress"


def test_a_swap_restates_both_patients_stays_at_their_new_places(engine: Engine) -> None:
    flow = Hl7v2Flow(engine)
    flow.receive(adt().encode("iso-8859-1"))
    flow.receive(adt(control_id="M2", visit="V777").replace(CPR, "0303031234").replace("OUH^K1^3", "OUH^K1^4")
                 .encode("iso-8859-1"))
    first = adt("A17", "S1").replace("ADT_A01", "ADT_A17").replace("OUH^K1^3", "OUH^K1^4").split("\r")
    second = adt("A17", "S1", visit="V777").replace(CPR, "0303031234").split("\r")  # now in bed 3
    swap = "\r".join([*first[:4], second[2], second[3]]) + "\r"
    assert segments(flow.receive(swap.encode("iso-8859-1")) or b"")["MSA"][1:3] == ["AA", "S1"]
    stays = {s["subject"]["identifier"]["value"]: s for s in EncounterStore(engine).stays()}
    assert {who: stay["location"][0]["location"]["display"] for who, stay in stays.items()} == {
        CPR: "OUH K1 4", "0303031234": "OUH K1 3"}


def test_a_merge_moves_the_stays_and_person_events_are_taken(engine: Engine) -> None:
    flow = Hl7v2Flow(engine)
    flow.receive(adt(control_id="G1").replace(CPR, "0303031234").encode("iso-8859-1"))
    person = adt("A28", "G2").replace("ADT_A01", "ADT_A05")
    assert segments(flow.receive(person.encode("iso-8859-1")) or b"")["MSA"][1] == "AA"
    merged = "\r".join([adt("A40", "G3").replace("ADT_A01", "ADT_A39").split("\r")[0],
                        "EVN|A40|20270312085500", f"PID|1||{CPR}^^^CPR^NNDNK||Bærggren^Nåncy",
                        "MRG|0303031234^^^CPR^NNDNK"]) + "\r"
    assert segments(flow.receive(merged.encode("iso-8859-1")) or b"")["MSA"][1:3] == ["AA", "G3"]
    assert _stay(engine)["subject"] == {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": CPR}}
    assert EncounterStore(engine).stays(patient_identifier=f"urn:oid:1.2.208.176.1.2|{CPR}")
    assert EncounterStore(engine).stays(patient_identifier="urn:oid:1.2.208.176.1.2|0303031234") == []
    no_mrg = merged.replace("MRG|0303031234^^^CPR^NNDNK\r", "").replace("|G3|", "|G4|")
    seg = segments(flow.receive(no_mrg.encode("iso-8859-1")) or b"")
    assert seg["MSA"][1] == "AE" and seg["ERR"][2] == "MRG^1^1"


def test_an_explicit_null_reads_as_no_value_anywhere() -> None:
    message = read(adt(end='""').replace("|OUH^K1^3|", '|""|').replace("||19010101|F", '||""|""')
                   .encode("iso-8859-1"))
    assert [message.get(p) for p in ("PV1.45", "PV1.3", "PID.7", "PID.8")] == ["", "", "", ""]
    assert message.time("PV1.45") is None
    assert message.segments("PV1")[0][3] == '""'  # as sent, for what keeps the raw fields


@pytest.mark.parametrize(("cx", "system", "value"), [
    (f"{CPR}^^^CPR^NNDNK", "urn:oid:1.2.208.176.1.2", CPR),
    ("010101-1234^^^^NNDNK", "urn:oid:1.2.208.176.1.2", CPR),  # by its type alone, without the hyphen
    (f"{CPR}^^^&1.2.208.176.1.2&ISO", "urn:oid:1.2.208.176.1.2", CPR),  # by the authority's universal id
    ("123456789012345^^^sor", "urn:oid:1.2.208.176.1.1", "123456789012345"),  # SOR, whatever the case
    ("X77^^^OUH^MR", "urn:hub:hl7v2:id:OUH", "X77"),  # a hospital's own, not in the map
])
def test_identifier_systems_come_from_the_map_of_assigning_authorities(cx: str, system: str, value: str) -> None:
    message = read(adt().replace(f"{CPR}^^^CPR^NNDNK~X77^^^OUH^MR", cx).encode("iso-8859-1"))
    found = patient_identifier(message)
    assert found is not None and (found.system, found.value) == (system, value)
