"""HL7 v2 over real TCP: the MLLP listener with the hub's flow behind it. Many senders at once, Danish letters in
both encodings, every version and ADT trigger the hub takes, malformed input answered AE/AR, and nothing
acknowledged is lost when a connection is cut."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from hub.flows.hl7v2 import Hl7v2Flow
from hub.hl7v2.adt import PATIENT_TRIGGERS, TRIGGERS
from hub.hl7v2.mllp import MllpClient, MllpServer, MllpServerThread, frame
from hub.store.commit import GroupCommit
from hub.store.db import WriterLock, make_engine, migrate
from hub.store.statements import ENCOUNTER_EVENTS, MESSAGES
from tests.flows.test_hl7v2 import CPR, adt, segments


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    migrate(engine)
    return engine


@pytest.fixture
def listener(engine: Engine) -> Iterator[MllpServerThread]:
    """As `hub mllp` runs it: the messages of all connections group-committed."""
    committer = GroupCommit(engine, WriterLock(engine))
    with MllpServer(Hl7v2Flow(engine, committer=committer).handle, "127.0.0.1", 0).start_in_thread() as server:
        yield server
    committer.close()


def test_many_senders_at_once_each_message_acknowledged_and_stored_once(
        listener: MllpServerThread, engine: Engine) -> None:
    def sender(number: int) -> list[bytes]:
        with MllpClient("127.0.0.1", listener.port) as client:
            return [client.send(adt(control_id=f"S{number}-{i}", visit=f"V{number}-{i}").encode("iso-8859-1"))
                    for i in range(10)]

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(sender, range(12)))
    for number, acks in enumerate(answers):
        assert [segments(a)["MSA"][1:3] for a in acks] == [["AA", f"S{number}-{i}"] for i in range(10)]
    with engine.connect() as conn:
        assert len(conn.execute(select(ENCOUNTER_EVENTS.c.id)).all()) == 120
    # one of them again, on a new connection: the same ACK, nothing processed twice
    with MllpClient("127.0.0.1", listener.port) as client:
        assert client.send(adt(control_id="S3-4", visit="V3-4").encode("iso-8859-1")) == answers[3][4]
    with engine.connect() as conn:
        assert len(conn.execute(select(ENCOUNTER_EVENTS.c.id)).all()) == 120


@pytest.mark.parametrize(("charset", "codec"), [("8859/1", "iso-8859-1"), ("UNICODE UTF-8", "utf-8")])
def test_danish_letters_arrive_in_either_encoding(listener: MllpServerThread, engine: Engine, charset: str,
                                                  codec: str) -> None:
    with MllpClient("127.0.0.1", listener.port) as client:
        ack = client.send(adt(charset=charset, name="Ærø^Søren Åge").encode(codec))
    assert segments(ack, codec)["MSA"][1] == "AA" and segments(ack, codec)["MSH"][17] == charset
    with engine.connect() as conn:
        raw = conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.direction == "in")).scalar_one()
    assert raw.decode(codec).count("Ærø^Søren Åge") == 1


def test_malformed_input_is_answered_and_the_connection_goes_on(listener: MllpServerThread, engine: Engine) -> None:
    with MllpClient("127.0.0.1", listener.port) as client:
        cases = {
            b"garbage without an MSH": "AR",
            b"MSH|^~\\&|EPJ\r": "AR",  # cut short: MSH without its separators' fields
            b"MSH|^~|EPJ||||||ADT^A01|X|P|2.5\r": "AR",  # broken encoding characters
            adt(control_id="T1").replace("PV1|1|I", "PV1|1|I").split("PV1")[0].encode("iso-8859-1"): "AE",  # no PV1
        }
        for payload, code in cases.items():
            assert segments(client.send(payload))["MSA"][1] == code, payload
        assert segments(client.send(adt(control_id="AFTER").encode("iso-8859-1")))["MSA"][1:3] == ["AA", "AFTER"]
        client.write(b"\x00\x01\x02 binary junk, no frame")
        assert segments(client.receive())["MSA"][1] == "AR"
    with engine.connect() as conn:
        kept = conn.execute(select(MESSAGES.c.status).where(MESSAGES.c.direction == "in")).scalars().all()
    assert sorted(kept) == ["accepted"] + ["rejected"] * 5


def test_the_same_message_on_many_connections_at_once_is_processed_once(
        listener: MllpServerThread, engine: Engine) -> None:
    def send(_: int) -> bytes:
        with MllpClient("127.0.0.1", listener.port) as client:
            return client.send(adt(control_id="SAME").encode("iso-8859-1"))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    assert len(set(answers)) == 1 and segments(answers[0])["MSA"][1:3] == ["AA", "SAME"]
    with engine.connect() as conn:
        assert len(conn.execute(select(ENCOUNTER_EVENTS.c.id)).all()) == 1
        statuses = conn.execute(select(MESSAGES.c.status).where(MESSAGES.c.direction == "in")).scalars().all()
    assert sorted(statuses) == ["accepted"] + ["duplicate"] * 7


def test_a_connection_cut_mid_message_loses_nothing_already_acknowledged(
        listener: MllpServerThread, engine: Engine) -> None:
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(frame(adt(control_id="C1").encode("iso-8859-1")))
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            answer += sock.recv(4096)
        assert b"MSA|AA|C1" in answer
        sock.sendall(frame(adt(control_id="C2").encode("iso-8859-1"))[:60])  # and then the line goes
    with MllpClient("127.0.0.1", listener.port) as client:  # the sender resends what it had no ACK for
        assert b"MSA|AA|C2" in client.send(adt(control_id="C2", visit="V2").encode("iso-8859-1"))
    with engine.connect() as conn:
        stored = conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.direction == "in")).scalars().all()
        assert len(conn.execute(select(ENCOUNTER_EVENTS.c.id)).all()) == 2
    assert len(stored) == 2 and all(b"|C1|" in r or b"|C2|" in r for r in stored)  # the cut half is not a message


# --- what real feeds send (versions, explicit nulls, lost line ends, odd MSH-15/16) ----------------------------

VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_from_2_3_to_2_8_2_is_taken_and_answered_in_its_own(
        listener: MllpServerThread, engine: Engine, version: str) -> None:
    with MllpClient("127.0.0.1", listener.port) as client:
        ack = segments(client.send(adt(control_id=f"V{version}", version=version).encode("iso-8859-1")))
    assert ack["MSA"][1:3] == ["AA", f"V{version}"] and ack["MSH"][11] == version
    assert ack["MSH"][8] == ("ACK^A01" if version == "2.3" else "ACK^A01^ACK")
    with engine.connect() as conn:
        assert len(conn.execute(select(ENCOUNTER_EVENTS.c.id)).all()) == 1


def _trigger_message(trigger: str) -> str:
    """An ADT of `trigger` about the stay `adt()` admits (A40: the patient merged into it)."""
    if trigger == "A40":
        return "\r".join([adt("A40", "TA40").replace("ADT_A01", "ADT_A39").split("\r")[0], "EVN|A40|20270312085500",
                          f"PID|1||{CPR}^^^CPR^NNDNK||Bærggren^Nåncy", "MRG|0303031234^^^CPR^NNDNK"]) + "\r"
    end = "20270315120000" if trigger == "A03" else ""
    raw = adt(trigger, f"T{trigger}", end=end)
    return raw.replace("ADT_A01", "ADT_A05") if trigger in ("A05", "A28", "A31") else raw


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_adt_trigger_is_taken_over_tcp_and_recorded(listener: MllpServerThread, engine: Engine,
                                                          trigger: str) -> None:
    with MllpClient("127.0.0.1", listener.port) as client:
        assert segments(client.send(adt(control_id="T0").encode("iso-8859-1")))["MSA"][1] == "AA"
        ack = segments(client.send(_trigger_message(trigger).encode("iso-8859-1")))
    assert ack["MSA"][1:3] == ["AA", f"T{trigger}"] and ack["MSH"][8].startswith(f"ACK^{trigger}")
    with engine.connect() as conn:
        events = conn.execute(select(ENCOUNTER_EVENTS.c.event)).scalars().all()
        statuses = conn.execute(select(MESSAGES.c.status).where(MESSAGES.c.direction == "in")).scalars().all()
    assert statuses == ["accepted", "accepted"]
    assert sorted(events) == (["ADT^A01"] if trigger in PATIENT_TRIGGERS else sorted(["ADT^A01", f"ADT^{trigger}"]))


def test_an_explicit_null_clears_a_time_and_is_no_error(listener: MllpServerThread, engine: Engine) -> None:
    raw = adt(control_id="N1", end='""')  # PV1-45, the discharge time: "delete it"
    with MllpClient("127.0.0.1", listener.port) as client:
        assert segments(client.send(raw.encode("iso-8859-1")))["MSA"][1:3] == ["AA", "N1"]
    with engine.connect() as conn:
        assert conn.execute(select(ENCOUNTER_EVENTS.c.end)).scalar_one() is None


def test_an_acknowledgement_type_outside_table_0155_is_answered_in_original_mode_with_a_note(
        listener: MllpServerThread) -> None:
    raw = adt(control_id="K1").replace("|P|2.5|", "|P|2.5|||XX|")  # MSH-15 "XX"
    with MllpClient("127.0.0.1", listener.port) as client:
        ack = segments(client.send(raw.encode("iso-8859-1")))
    assert ack["MSA"][1:3] == ["AA", "K1"]  # not CA: original mode
    assert ack["ERR"][2] == "MSH^1^15" and ack["ERR"][3].startswith("103^") and ack["ERR"][4] == "W"


@pytest.mark.parametrize(("raw", "field"), [
    (adt(control_id="L1").replace("\r", " ").rstrip(), None),  # segments run together: line ends lost
    (adt(control_id="L1", charset="LATIN-9"), "MSH^1^18"),  # a character set the hub does not read
])
def test_a_refusal_names_what_msh_says_of_the_message(listener: MllpServerThread, raw: str,
                                                      field: str | None) -> None:
    with MllpClient("127.0.0.1", listener.port) as client:
        ack = segments(client.send(raw.encode("iso-8859-1")))
    assert ack["MSA"][1:3] == ["AR", "L1"]
    assert ack["MSH"][2:6] == ["HUB", "HUB", "EPJ", "OUH"] and ack["MSH"][11] == "2.5"
    assert ack["ERR"][2] == (field or "") and ack["ERR"][3].split("^")[0] in ("100", "102")
