"""Booking over real HTTP: the hub and the VDX-compatible service on loopback."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from hub.flows.appointment import scoped
from tests.appointments import iso, video_appointment
from tests.tokens import ORGANISATION

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
VDX_SYSTEM = "http://vdx.medcom.dk/meeting"
EXT = "http://ehealth.sundhed.dk/fhir/StructureDefinition/"


def ext(resource: dict[str, Any], name: str) -> Any:
    for e in resource.get("extension", []):
        if e["url"] == EXT + name:
            return next(v for k, v in e.items() if k.startswith("value"))
    return None


def vdx_id(resource: dict[str, Any]) -> str:
    return next(i["value"] for i in resource["identifier"] if i["system"] == VDX_SYSTEM and i.get("use") != "old")


def db_count(hub: Any, table: str, where: str = "1=1") -> int:
    url = f"sqlite:///{hub.server.config.app.state.services.settings.data_dir / 'hub.sqlite'}"
    with create_engine(url).connect() as c:
        return int(c.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one())


def vdx_meetings(hub: Any) -> list[dict[str, Any]]:
    window = {"from-start-time": "2000-01-01T00:00:00Z", "to-start-time": "2100-01-01T00:00:00Z"}
    r = hub.vdx.client.get("/v2/meetings", params=window)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def book(hub: Any, appt: dict[str, Any], **headers: str) -> httpx.Response:
    return hub.client.post("/fhir/Appointment", json=appt, headers={**FHIR, **headers})


def test_books_a_room_and_answers_with_links_and_pins(hub: Any) -> None:
    r = book(hub, video_appointment())
    assert r.status_code == 201, r.text
    appt = r.json()
    assert r.headers["location"].endswith(f"/fhir/Appointment/{appt['id']}/_history/1")
    meeting_uuid = vdx_id(appt)
    info = hub.vdx.client.get(f"/v2/scheduling-info/{meeting_uuid}").json()
    assert ext(appt, "ehealth-vmr-uri") == info["uriWithDomain"]
    assert ext(appt, "ehealth-guest-pin-code") == str(info["guestPin"])
    assert ext(appt, "ehealth-host-pin-code") == str(info["hostPin"])
    assert ext(appt, "ehealth-meeting-url") == info["portalLink"]
    meeting = hub.vdx.client.get(f"/v2/meetings/{meeting_uuid}").json()
    assert meeting["startTime"] == iso(datetime.fromisoformat(appt["start"].replace("Z", "+00:00")))
    assert meeting["subject"] == "Forundersøgelse"
    assert ext(appt, "ehealth-max-participants") == 4
    assert info["maxParticipants"] == 4
    got = hub.client.get(f"/fhir/Appointment/{appt['id']}", headers={"Accept": "application/fhir+json"})
    assert got.status_code == 200 and got.json() == appt


def test_stores_raw_message_appointment_meeting_and_outbox(hub: Any) -> None:
    appt = video_appointment()
    r = book(hub, appt)
    assert r.status_code == 201
    aid = r.json()["id"]
    assert db_count(hub, "messages", "direction='in' AND channel='fhir-rest' AND status='accepted'") == 1
    assert db_count(hub, "messages", f"channel='vdx' AND direction='out' AND appointment_id='{aid}'") == 2
    assert db_count(hub, "appointments", "state='booked'") == 1
    assert db_count(hub, "meetings", "state='active'") == 1
    assert db_count(hub, "outbox", "topic='meeting.booked'") == 0  # nothing delivers it here: no row waits for ever


def test_same_appointment_again_books_nothing_new(hub: Any) -> None:
    appt = video_appointment()
    first = book(hub, appt)
    again = book(hub, appt)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    assert len(vdx_meetings(hub)) == 1
    assert db_count(hub, "meetings") == 1


def test_if_none_exist_makes_a_create_conditional(hub: Any) -> None:
    appt = video_appointment()
    appt.pop("identifier")
    a = book(hub, appt, **{"If-None-Exist": "identifier=x|1"})
    changed = copy.deepcopy(appt)
    changed["description"] = "Another text"
    b = book(hub, changed, **{"If-None-Exist": "identifier=x|1"})
    assert a.status_code == 201 and b.status_code == 200
    assert b.json()["id"] == a.json()["id"]
    assert db_count(hub, "meetings") == 1
    assert len(vdx_meetings(hub)) == 1


def test_lost_answer_does_not_book_a_second_room(hub: Any) -> None:
    """The room exists in VDX (an earlier try booked it, its answer was lost): the hub reuses it."""
    import uuid

    from hub.flows.booking import MEETING_NAMESPACE, external_id

    appt = video_appointment(source_id="lost-1")
    key = scoped(f"{appt['identifier'][0]['system']}|lost-1", ORGANISATION)  # the hub client's organisation's
    ext_id = external_id(key, 1)
    meeting_uuid = str(uuid.uuid5(MEETING_NAMESPACE, f"{ext_id}#1"))
    pre = hub.vdx.client.post("/v2/meetings", json={
        "uuid": meeting_uuid, "externalId": ext_id, "subject": "x", "startTime": appt["start"], "endTime": appt["end"]})
    assert pre.status_code == 200
    r = book(hub, appt)
    assert r.status_code == 201, r.text
    assert vdx_id(r.json()) == meeting_uuid
    found = hub.vdx.client.get("/v2/meetings", params={"externalId": ext_id}).json()
    assert len(found) == 1


def test_xml_in_and_out(hub: Any) -> None:
    from hub.fhir import io

    body = io.to_xml(video_appointment())
    r = hub.client.post("/fhir/Appointment", content=body,
                        headers={"Content-Type": "application/fhir+xml", "Accept": "application/fhir+xml"})
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("application/fhir+xml")
    parsed = io.parse(r.content, "application/fhir+xml")
    assert any(i["system"] == VDX_SYSTEM for i in parsed["identifier"])
    as_json = hub.client.get(f"/fhir/Appointment/{parsed['id']}?_format=json")
    assert as_json.json()["id"] == parsed["id"]


def test_reschedule_before_provisioning_moves_the_same_room(hub: Any) -> None:
    appt = book(hub, video_appointment()).json()
    room = vdx_id(appt)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=5)
    appt["start"], appt["end"] = iso(later), iso(later + timedelta(minutes=45))
    r = hub.client.put(f"/fhir/Appointment/{appt['id']}", json=appt, headers=FHIR)
    assert r.status_code == 200, r.text
    assert vdx_id(r.json()) == room
    assert r.json()["meta"]["versionId"] == "2"
    assert hub.vdx.client.get(f"/v2/meetings/{room}").json()["startTime"] == iso(later)


def test_reschedule_after_provisioning_books_a_new_room_and_says_so(hub: Any) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)  # inside vmrAvailableBefore
    appt = book(hub, video_appointment(start=start)).json()
    old_room = vdx_id(appt)
    assert hub.vdx.client.get(f"/v2/scheduling-info/{old_room}").json()["provisionStatus"] == "PROVISIONED_OK"
    moved = start + timedelta(days=1)
    appt["start"], appt["end"] = iso(moved), iso(moved + timedelta(minutes=30))
    r = hub.client.put(f"/fhir/Appointment/{appt['id']}", json=appt, headers=FHIR)
    assert r.status_code == 200, r.text
    new = r.json()
    assert vdx_id(new) != old_room
    assert {"use": "old", "system": VDX_SYSTEM, "value": old_room} in new["identifier"]
    assert "new room" in r.headers["x-hub-notes"]
    assert ext(new, "ehealth-vmr-uri") != ext(appt, "ehealth-vmr-uri")
    old_end = hub.vdx.client.get(f"/v2/meetings/{old_room}").json()["endTime"]
    assert old_end < appt["end"]  # the old room was ended early


def test_only_end_time_changes_after_provisioning(hub: Any) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    appt = book(hub, video_appointment(start=start)).json()
    room = vdx_id(appt)
    appt["end"] = iso(start + timedelta(minutes=90))
    r = hub.client.put(f"/fhir/Appointment/{appt['id']}", json=appt, headers=FHIR)
    assert r.status_code == 200
    assert vdx_id(r.json()) == room
    assert hub.vdx.client.get(f"/v2/meetings/{room}").json()["endTime"] == appt["end"]


def test_cancel_by_patch_deletes_the_room(hub: Any) -> None:
    appt = book(hub, video_appointment()).json()
    room = vdx_id(appt)
    cancel = b'[{"op":"replace","path":"/status","value":"cancelled"}]'
    r = hub.client.patch(f"/fhir/Appointment/{appt['id']}", content=cancel,
                         headers={"Content-Type": "application/json-patch+json", "Accept": "application/fhir+json"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert hub.vdx.client.get(f"/v2/meetings/{room}").status_code == 404
    assert ext(r.json(), "ehealth-vmr-uri") is None


def test_cancel_after_provisioning_ends_the_room(hub: Any) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    appt = book(hub, video_appointment(start=start)).json()
    appt["status"] = "cancelled"
    r = hub.client.put(f"/fhir/Appointment/{appt['id']}", json=appt,
                       headers={**FHIR, "Prefer": "return=OperationOutcome"})
    assert r.status_code == 200
    assert r.json()["resourceType"] == "OperationOutcome"
    assert "provisioned" in r.json()["issue"][0]["diagnostics"]
    meeting = hub.vdx.client.get(f"/v2/meetings/{vdx_id(appt)}").json()
    assert meeting["endTime"] < appt["end"]


def test_search_by_patient_date_status_identifier(hub: Any) -> None:
    day = datetime(2031, 5, 6, 8, 0, tzinfo=UTC)
    cpr = {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101804321"}}
    a = book(hub, video_appointment(start=day, source_id="s-a", patient=cpr)).json()
    b = book(hub, video_appointment(start=day + timedelta(days=1), source_id="s-b")).json()

    def ids(**params: str) -> set[str]:
        bundle = hub.client.get("/fhir/Appointment", params=params).json()
        assert bundle["type"] == "searchset"
        return {e["resource"]["id"] for e in bundle["entry"]}

    assert ids(**{"patient:identifier": "urn:oid:1.2.208.176.1.2|0101804321"}) == {a["id"]}
    assert ids(patient="Patient/102") == {b["id"]}
    assert ids(date="2031-05-06") == {a["id"]}
    assert ids(date="ge2031-05-07") == {b["id"]}
    assert ids(date="2031-05") == {a["id"], b["id"]}
    assert ids(identifier="urn:oid:1.2.208.176.1.2.99.eoj|s-b") == {b["id"]}
    assert ids(identifier=f"{VDX_SYSTEM}|{vdx_id(a)}") == {a["id"]}
    assert ids(status="cancelled") == set()
    bad = hub.client.get("/fhir/Appointment", params={"date": "tomorrow"})
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_metadata_and_docs(hub: Any) -> None:
    cs = hub.client.get("/fhir/metadata").json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"
    resource = cs["rest"][0]["resource"][0]
    assert resource["type"] == "Appointment" and resource["conditionalCreate"] is True
    assert [op["name"] for op in cs["rest"][0]["operation"]] == ["validate"]
    assert hub.client.get("/docs").status_code == 200


def test_a_booking_left_pending_by_a_stopped_process_is_settled(hub: Any) -> None:
    """A process stopped after VDX booked the room and before the store completed the booking: the claim is
    pending and the room has no appointment. Resends are told to retry (409); housekeeping deletes the room and
    marks the claim failed; the next resend books a new room."""
    import uuid
    from datetime import timedelta

    from hub.fhir import appointment as fa
    from hub.flows.booking import external_id, meeting_uuid

    flow = hub.server.config.app.state.services.flow
    appt = video_appointment(source_id="crashed-1")
    key = scoped(fa.source_key(appt), ORGANISATION)  # as the hub client's organisation booked it
    inbound = {"direction": "in", "channel": "fhir-rest", "format": "fhir+json", "operation": "POST",
               "content_type": "application/fhir+json", "raw": b"{}", "verdict": None, "status": "accepted"}
    claimed, attempt = flow._claim(str(uuid.uuid4()), fa.to_meeting_request(appt, key), (None, None), inbound,
                                   ORGANISATION)
    assert claimed is None and attempt == 1
    orphan = meeting_uuid(key, 1, 1)
    made = hub.vdx.client.post("/v2/meetings", json={"uuid": orphan, "externalId": external_id(key, 1),
                                                           "subject": "x", "startTime": appt["start"],
                                                           "endTime": appt["end"]})
    assert made.status_code == 200

    flow.pending_wait_seconds = 0.2
    assert book(hub, appt).status_code == 409  # being booked, as far as the store knows
    assert flow.settle_pending(timedelta(hours=1)) == 0  # too young to settle
    assert flow.settle_pending(timedelta(0)) == 1
    assert hub.vdx.client.get(f"/v2/meetings/{orphan}").status_code == 404
    assert db_count(hub, "appointments", f"source_key = '{key}' AND state = 'failed'") == 1

    again = book(hub, appt)
    assert again.status_code == 201, again.text
    assert vdx_id(again.json()) == meeting_uuid(key, 1, 2) != orphan
    assert flow.settle_pending(timedelta(0)) == 0  # nothing pending any more
