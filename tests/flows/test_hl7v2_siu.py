"""HL7 v2 SIU over real TCP into the booking flow, with the built-in VDX service: a video consultation is booked,
rescheduled, cancelled and deleted as a FHIR Appointment is; other appointments book nothing; a change to an
appointment the hub never booked is AE 204."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from hub.flows.hl7v2 import Hl7v2Flow
from hub.hl7v2.ack import acknowledgement
from hub.hl7v2.message import Unmappable, read
from hub.hl7v2.mllp import MllpClient, MllpServer
from hub.hl7v2.siu import VideoPolicy, meeting_request
from hub.store.db import make_engine, session_factory
from hub.wiring import booking_flow
from tests.appointments import video_appointment
from tests.flows.test_hl7v2 import CPR, segments

VDX_MEETING = "http://vdx.medcom.dk/meeting"


def siu(trigger: str = "S12", control_id: str = "M1", start: str = "20310312100000", end: str = "20310312103000",
        kind: str = "VIDEO^Videokonsultation", status: str = "Booked", appointment: str = "APT-1") -> bytes:
    """An SIU as a hospital system sends it (v2.5, ISO-8859-1)."""
    return ("\r".join([
        f"MSH|^~\\&|EPJ|OUH|HUB|HUB|20310301090000||SIU^{trigger}^SIU_S12|{control_id}|P|2.5|||||DAN|8859/1",
        _sch({1: f"{appointment}^EPJ", 6: "NY^Ny aftale", 7: kind, 8: "KONTROL^Kontrol", 9: "30", 10: "min",
              11: f"^^^{start}^{end}", 16: "D99^Jensen^Åse", 20: "D99^Jensen^Åse", 25: status}),
        f"PID|1||{CPR}^^^CPR^NNDNK||Bærggren^Nåncy||19010101|F",
        "RGS|1|A",
        f"AIS|1|A|{kind}|{start}|||30|min",
        "AIP|1|A|D123^Hansen^Peter|DOC",
    ]) + "\r").encode("iso-8859-1")


def _sch(fields: dict[int, str]) -> str:
    return "|".join(["SCH", *(fields.get(n, "") for n in range(1, 26))])


@pytest.fixture
def scheduling(hub: Any, data_root: Path, tmp_path: Path) -> Iterator[MllpClient]:
    """The MLLP listener on the API's store and VDX, as `hub serve` runs it beside the API."""
    settings = hub.settings  # the `hub` fixture's: its store and VDX
    engine = make_engine(settings.effective_database_url)
    flow = Hl7v2Flow(engine, booking_flow(settings, engine, session_factory(engine)), video=VideoPolicy())
    with MllpServer(flow.handle).start_in_thread() as server, MllpClient("127.0.0.1", server.port) as client:
        yield client


def appointments(hub: Any) -> list[dict[str, Any]]:
    bundle = hub.client.get("/fhir/Appointment", params={"patient:identifier": f"urn:oid:1.2.208.176.1.2|{CPR}"})
    return [e["resource"] for e in bundle.json().get("entry", [])]


def room(hub: Any, appointment: dict[str, Any]) -> dict[str, Any]:
    uuid = next(i["value"] for i in appointment["identifier"] if i["system"] == VDX_MEETING and i.get("use") ==
                "official")
    return hub.vdx.client.get(f"/v2/meetings/{uuid}").json()  # type: ignore[no-any-return]


def test_the_example_siu_is_a_valid_v25_message_and_maps_to_the_meeting() -> None:
    parse_message(siu().decode("iso-8859-1"), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()
    request = meeting_request(read(siu()))
    assert request.source_key == "hl7v2:OUH:APT-1"
    assert (request.start, request.end) == (datetime(2031, 3, 12, 9, 0, tzinfo=UTC),
                                            datetime(2031, 3, 12, 9, 30, tzinfo=UTC))
    assert [(p.kind.value, p.identifier.value if p.identifier else None, p.display) for p in request.participants] \
        == [("patient", CPR, "Nåncy Bærggren"), ("practitioner", "D123", "Peter Hansen")]


def test_a_video_consultation_is_booked_moved_and_cancelled(hub: Any, scheduling: MllpClient) -> None:
    assert segments(scheduling.send(siu()))["MSA"][1:3] == ["AA", "M1"]
    (booked,) = appointments(hub)
    assert booked["status"] == "booked" and booked["start"] == "2031-03-12T09:00:00Z"
    assert room(hub, booked)["startTime"] == "2031-03-12T09:00:00Z"

    moved = siu("S13", "M2", "20310313140000", "20310313144500")
    assert segments(scheduling.send(moved))["MSA"][1] == "AA"
    (after,) = appointments(hub)
    assert after["id"] == booked["id"] and after["start"] == "2031-03-13T13:00:00Z"
    assert room(hub, after)["endTime"] == "2031-03-13T13:45:00Z"

    assert segments(scheduling.send(siu("S15", "M3", status="Cancelled")))["MSA"][1] == "AA"
    (cancelled,) = appointments(hub)
    assert cancelled["status"] == "cancelled"
    assert not any(i.get("use") == "official" for i in cancelled["identifier"] if i["system"] == VDX_MEETING)

    again = scheduling.send(siu("S15", "M3", status="Cancelled"))  # the same message again: its first ACK
    assert segments(again)["MSA"][1:3] == ["AA", "M3"]


def test_deleted_and_no_show_and_what_books_nothing(hub: Any, scheduling: MllpClient) -> None:
    scheduling.send(siu(appointment="APT-D"))
    assert segments(scheduling.send(siu("S17", "D2", appointment="APT-D", status="Deleted")))["MSA"][1] == "AA"
    scheduling.send(siu(appointment="APT-N", control_id="N1"))
    assert segments(scheduling.send(siu("S26", "N2", appointment="APT-N", status="Noshow")))["MSA"][1] == "AA"
    statuses = sorted(a["status"] for a in appointments(hub))
    assert statuses == ["entered-in-error", "noshow"]

    at_the_clinic = siu(appointment="APT-F", control_id="F1", kind="FREMMODE^Fremmøde")
    assert segments(scheduling.send(at_the_clinic))["MSA"][1] == "AA"
    assert len(appointments(hub)) == 2  # not a video consultation: acknowledged, nothing booked

    unknown = scheduling.send(siu("S13", "U1", appointment="APT-X"))
    seg = segments(unknown)
    assert seg["MSA"][1] == "AE" and seg["ERR"][3].startswith("204^") and seg["ERR"][2] == "SCH^1^1"

    no_end = scheduling.send(siu(appointment="APT-E", control_id="E1", end="20310312100000").replace(
        b"|||30|min", b"|||0|min"))
    assert segments(no_end)["MSA"][1] == "AE"


def test_a_meeting_booked_through_fhir_goes_to_the_configured_hl7v2_receiver(messaging_hub: Any) -> None:
    """`HUB_HL7V2_RECEIVER` wires the outbox to MLLP: the booking's SIU^S12 arrives, and the hub checks its ACK."""
    got: list[bytes] = []

    def receiver(raw: bytes, problem: Any, peer: Any) -> bytes:
        got.append(raw)
        return acknowledgement(read(raw), "AA")

    with MllpServer(receiver).start_in_thread() as server:
        hub = messaging_hub([], hl7v2_receiver=f"127.0.0.1:{server.port}")
        cpr = {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": CPR}}
        booked = hub.client.post("/fhir/Appointment", json=video_appointment(patient=cpr),
                                 headers={"Content-Type": "application/fhir+json"})
        assert booked.status_code == 201
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    (sent,) = got
    message = read(sent)
    assert message.message_type == "SIU" and message.trigger == "S12"
    assert message.get("SCH.1.1") == booked.json()["id"] and message.get("PID.3.1") == CPR


def _timed(sch: dict[int, str], *extra: str, version: str = "2.6") -> bytes:
    """An S12 whose times are given only as `sch` and `extra` segments say (no AIS unless given)."""
    return ("\r".join([f"MSH|^~\\&|EPJ|OUH|HUB|HUB|20310301090000||SIU^S12^SIU_S12|T1|P|{version}",
                       _sch({1: "APT-T^EPJ", 7: "VIDEO^Videokonsultation", **sch}),
                       f"PID|1||{CPR}^^^CPR^NNDNK||Bærggren^Nåncy||19010101|F", "RGS|1|A", *extra])
            + "\r").encode("iso-8859-1")


START = "20310312100000"  # 09:00 UTC


@pytest.mark.parametrize(("raw", "minutes"), [
    (_timed({11: f"^^^{START}", 9: "45", 10: "min"}), 45),  # SCH-9/10 instead of an end
    (_timed({11: f'^^^{START}^""', 9: "1", 10: "h^hour^UCUM"}), 60),  # the end cleared; the length stands
    (_timed({}, f"TQ1|1||||||{START}|20310312101500"), 15),  # TQ1-7/8 (v2.5 on)
    (_timed({}, f"TQ1|1||||||{START}||||||20^min"), 20),  # TQ1-13, the occurrence's length
    (_timed({9: "2", 10: "d"}, f"AIS|1|A|VIDEO|{START}"), 2880),
])
def test_the_length_of_a_meeting_from_tq1_or_sch_9_and_10(raw: bytes, minutes: int) -> None:
    request = meeting_request(read(raw))
    assert request.start == datetime(2031, 3, 12, 9, 0, tzinfo=UTC)
    assert request.end - request.start == timedelta(minutes=minutes)


def test_a_length_in_a_unit_the_hub_does_not_know_is_named() -> None:
    with pytest.raises(Unmappable) as refused:
        meeting_request(read(_timed({11: f"^^^{START}", 9: "3", 10: "fortnights"})))
    assert (refused.value.segment, refused.value.field, refused.value.code) == ("SCH", 10, "102")


def test_a_meeting_given_by_its_length_is_booked_over_tcp(hub: Any, scheduling: MllpClient) -> None:
    assert segments(scheduling.send(_timed({11: f"^^^{START}", 9: "45", 10: "min"})))["MSA"][1:3] == ["AA", "T1"]
    (booked,) = appointments(hub)
    assert (booked["start"], booked["end"]) == ("2031-03-12T09:00:00Z", "2031-03-12T09:45:00Z")
    assert room(hub, booked)["endTime"] == "2031-03-12T09:45:00Z"
