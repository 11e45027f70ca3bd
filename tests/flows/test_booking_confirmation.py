"""XDIS13 booking confirmations ⇄ the canonical meeting, over real HTTP with the built-in VDX service: a
confirmation of a video consultation books its room through the booking flow, a corrected one moves it, other
confirmations book nothing; a booked meeting can be written as an XDIS13."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree
from sqlalchemy import select

from hub.core.cpr import CPR_SYSTEM
from hub.medcom.booking_confirmation import TEXT_LIMIT, Party, write_confirmation
from hub.medcom.schemas import OioxmlSchemas
from hub.store.statements import APPOINTMENTS, RECEIVED
from tests.appointments import video_appointment
from tests.conftest import Receiver, ServerThread

HOSPITAL = {"name": "Sygehus Syd, Øjenafdeling", "sor": "359001000016000", "gln": "5790001382445"}
PRACTICE = {"name": "Lægerne i Søndergade", "gln": "5790000121441", "format": "oioxml"}
CPR = "0101011234"
WHEN = datetime(2031, 3, 12, 9, 0, tzinfo=UTC)  # 10:00 in Copenhagen
XML = {"Content-Type": "application/xml"}


def confirmation(text: str, start: datetime = WHEN, status: str = "nytbrev", referral: str | None = "HENV-778") \
        -> bytes:
    """A booking confirmation from the hospital to the practice, as a hospital system writes it."""
    body = write_confirmation(Party(HOSPITAL["gln"], HOSPITAL["name"], HOSPITAL["sor"]),
                              Party(PRACTICE["gln"], PRACTICE["name"]), CPR, "Nancy Berggren", start, text,
                              datetime.now(UTC))
    root = etree.fromstring(body)
    ns = {"m": etree.QName(root).namespace}
    root.xpath("//m:Letter/m:StatusCode", namespaces=ns)[0].text = status
    if referral:
        patient = root.xpath("//m:Patient", namespaces=ns)[0]
        ref = etree.Element(f"{{{ns['m']}}}Referral")
        etree.SubElement(ref, f"{{{ns['m']}}}Identifier").text = referral
        patient.addnext(ref)
    return etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1")


def appointments(hub: Any) -> list[Any]:
    with hub.engine.connect() as conn:
        return list(conn.execute(select(APPOINTMENTS.c.id, APPOINTMENTS.c.state, APPOINTMENTS.c.start,
                                        APPOINTMENTS.c.end, APPOINTMENTS.c.patient_identifier)).all())


def test_a_video_consultation_confirmed_by_xdis13_is_booked_and_a_correction_moves_it(
        messaging_hub: Any, receiver: Receiver, vdx: ServerThread, data_root: Any) -> None:
    hub = messaging_hub([HOSPITAL, PRACTICE])
    letter = confirmation("Videokonsultation om kontrol af øjentryk")
    answer = hub.client.post("/medcom/oioxml", content=letter, headers=XML)
    assert answer.status_code == 200 and b"PositiveReceipt" in answer.content
    (booked,) = appointments(hub)
    assert booked.state == "booked" and booked.patient_identifier == f"{CPR_SYSTEM}|{CPR}"
    assert (booked.start, booked.end) == (WHEN, WHEN + timedelta(minutes=30))
    appt = hub.client.get(f"/fhir/Appointment/{booked.id}").json()
    room = next(i["value"] for i in appt["identifier"] if i["system"] == "http://vdx.medcom.dk/meeting")
    assert vdx.client.get(f"/v2/meetings/{room}").json()["startTime"] == "2031-03-12T09:00:00Z"
    assert receiver.wait_for(1) == [letter]  # the practice gets its letter, unchanged

    # the same envelope again: its first answer, nothing booked twice
    again = hub.client.post("/medcom/oioxml", content=letter, headers=XML)
    assert again.headers["x-duplicate-message"] == "true" and len(appointments(hub)) == 1

    # a corrected letter for the same referral moves the meeting
    later = WHEN + timedelta(days=1)
    moved = hub.client.post("/medcom/oioxml", content=confirmation("Videokonsultation, ny tid", later, "rettetbrev"),
                            headers=XML)
    assert b"PositiveReceipt" in moved.content
    (after,) = appointments(hub)
    assert after.id == booked.id and after.start == later
    current = hub.client.get(f"/fhir/Appointment/{booked.id}").json()
    room = next(i["value"] for i in current["identifier"] if i["system"] == "http://vdx.medcom.dk/meeting"
                and i.get("use") == "official")
    assert vdx.client.get(f"/v2/meetings/{room}").json()["startTime"] == "2031-03-13T09:00:00Z"

    # written back as an XDIS13 for the practice
    xdis13 = hub.client.get(f"/fhir/Appointment/{booked.id}/$booking-confirmation",
                            params={"sender": HOSPITAL["gln"], "receiver": PRACTICE["gln"]})
    assert xdis13.status_code == 200 and "ISO-8859-1" in xdis13.headers["content-type"]
    root = etree.fromstring(xdis13.content)
    assert OioxmlSchemas(data_root / "standards").validate(root) == []
    ns = {"m": etree.QName(root).namespace}
    assert root.xpath("string(//m:Confirmation/m:Date)", namespaces=ns) == "2031-03-13"
    assert root.xpath("string(//m:Confirmation/m:Time)", namespaces=ns) == "10:00"
    assert root.xpath("string(//m:Patient/m:CivilRegistrationNumber)", namespaces=ns) == CPR
    short_link = vdx.client.get(f"/v2/meetings/{room}").json()["shortLink"]
    assert root.xpath("string(//m:Text03)", namespaces=ns) == f"Videokonsultation, ny tid {short_link}"


def test_a_confirmation_that_is_not_for_video_books_nothing(messaging_hub: Any, receiver: Receiver) -> None:
    hub = messaging_hub([HOSPITAL, PRACTICE])
    letter = confirmation("Fremmøde i ambulatoriet, indgang 3")
    assert b"PositiveReceipt" in hub.client.post("/medcom/oioxml", content=letter, headers=XML).content
    assert appointments(hub) == []
    assert receiver.wait_for(1) == [letter]


def test_a_confirmation_vdx_cannot_book_now_is_refused_and_taken_anew_when_resent(
        messaging_hub: Any, receiver: Receiver) -> None:
    hub = messaging_hub([HOSPITAL, PRACTICE], vdx_url="http://127.0.0.1:9")  # nothing listens there
    letter = confirmation("Videomøde")
    for _ in range(2):
        answer = hub.client.post("/medcom/oioxml", content=letter, headers=XML)
        assert b"NegativeReceipt" in answer.content and b"send the letter again" in answer.content
        assert "x-duplicate-message" not in answer.headers  # processed anew, as the refusal asks
    with hub.engine.connect() as conn:
        assert conn.execute(select(RECEIVED.c.key)).all() == []
    assert receiver.got == []


def test_a_meeting_whose_patient_has_no_cpr_number_has_no_xdis13(messaging_hub: Any) -> None:
    hub = messaging_hub([HOSPITAL, PRACTICE])
    booked = hub.client.post("/fhir/Appointment", json=video_appointment(),
                             headers={"Content-Type": "application/fhir+json"}).json()
    answer = hub.client.get(f"/fhir/Appointment/{booked['id']}/$booking-confirmation",
                            params={"sender": HOSPITAL["gln"], "receiver": PRACTICE["gln"]})
    assert answer.status_code == 422 and "CPR" in answer.json()["issue"][0]["diagnostics"]
    unknown = hub.client.get(f"/fhir/Appointment/{booked['id']}/$booking-confirmation",
                             params={"sender": "5790000000005", "receiver": PRACTICE["gln"]})
    assert unknown.status_code == 404


def test_text03_keeps_a_link_whole_or_leaves_it_out(data_root: Any) -> None:
    def text03(text: str) -> str:
        body = write_confirmation(Party(HOSPITAL["gln"], HOSPITAL["name"]), Party(PRACTICE["gln"], PRACTICE["name"]),
                                  CPR, None, WHEN, text, WHEN)
        root = etree.fromstring(body)
        assert OioxmlSchemas(data_root / "standards").validate(root) == []
        return str(root.xpath("string(//m:Text03)", namespaces={"m": etree.QName(root).namespace}))

    subject = "Videokonsultation om resultatet af undersøgelsen af dit venstre øje"
    assert text03(f"{subject} https://v.dk/a1") == f"{subject[:TEXT_LIMIT - 16].rstrip()} https://v.dk/a1"
    assert text03(f"Videomøde https://portal.example/{'x' * 80}") == "Videomøde"
    assert text03(subject * 2) == (subject * 2)[:TEXT_LIMIT]
