"""The hub's VDX-compatible service, exercised over real HTTP on loopback as the hub's client uses it.

The service clock starts at 08:00Z on a day with a 09:00–10:00Z meeting; with vmrAvailableBefore = 30
the room is provisioned from 08:30Z and deprovisioned from 10:00Z.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hub.api.server_thread import ServerThread
from hub.video.local import create_vdx_app
from hub.video.local.clock import VdxClock

T0 = datetime(2027, 3, 12, 8, 0, tzinfo=UTC)
START, END = "2027-03-12T09:00:00Z", "2027-03-12T10:00:00Z"
DETAILED_ERROR_KEYS = {"timestamp", "status", "error", "path", "detailed_error", "detailed_error_code"}


@pytest.fixture
def vdx() -> Iterator[httpx.Client]:
    """A fresh service (no OAuth2, test clock on) and a client bound to it."""
    app = create_vdx_app(clock=VdxClock(T0), enable_test_clock=True)
    with ServerThread(app) as srv, httpx.Client(base_url=srv.url, timeout=5) as client:
        yield client


@pytest.fixture
def secured() -> Iterator[tuple[httpx.Client, VdxClock]]:
    """A service that requires OAuth2 client-credentials tokens, and its clock."""
    clock = VdxClock(T0)
    app = create_vdx_app(clock=clock, client_credentials={"hub": "s3cret"})
    with ServerThread(app) as srv, httpx.Client(base_url=srv.url, timeout=5) as client:
        yield client, clock


def meeting_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"subject": "Skærmbesøg", "startTime": START, "endTime": END}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def create(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v2/meetings", json=meeting_body(**overrides))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_vdx_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is a `detailedError` with this HTTP status and detailed_error_code."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body.keys() >= DETAILED_ERROR_KEYS
    assert body["status"] == status
    assert body["detailed_error_code"] == code, body
    return body


def set_clock(client: httpx.Client, now: str) -> None:
    response = client.post("/_test/clock", json={"now": now})
    assert response.status_code == 200, response.text
    assert response.json()["now"].startswith(now[:16])


def status_of(client: httpx.Client, uuid: str) -> str:
    return client.get(f"/v2/scheduling-info/{uuid}").json()["provisionStatus"]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------- create and read


def test_create_returns_meeting_and_get_returns_the_same(vdx: httpx.Client) -> None:
    response = vdx.post("/v2/meetings", json=meeting_body(
        startTime="2027-03-12T10:00:00.750+01:00", description="Hjemmesygepleje", externalId="appt-1",
        labels=["sundhedsloven-138"], additionalInformation=[{"key": "case", "value": "27.12.04-G01"}],
    ))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/hal+json")
    meeting = response.json()
    assert re.fullmatch(r"[0-9a-f-]{36}", meeting["uuid"])
    assert meeting["startTime"] == START  # offset normalised to UTC, fractional seconds dropped
    assert meeting["endTime"] == END
    assert len(meeting["shortId"]) == 12
    assert meeting["shortLink"] == meeting["shortlink"] == f"https://m.video.hub.local/{meeting['shortId']}"
    assert meeting["_links"]["self"]["href"].endswith(f"/v2/meetings/{meeting['uuid']}")
    assert meeting["createdBy"] == meeting["organizedBy"] == {"organisationId": "hub",
                                                              "email": "hub@video.hub.local"}
    assert meeting["createdTime"].startswith("2027-03-12T08:00")
    assert meeting["labels"] == ["sundhedsloven-138"]
    assert meeting["additionalInformation"] == [{"key": "case", "value": "27.12.04-G01"}]

    fetched = vdx.get(f"/v2/meetings/{meeting['uuid']}")
    assert fetched.status_code == 200
    assert fetched.json() == meeting


def test_scheduling_info_has_uri_pins_and_portal_link(vdx: httpx.Client) -> None:
    meeting = create(vdx)
    info = vdx.get(f"/v2/scheduling-info/{meeting['uuid']}").json()
    uri = info["uriWithDomain"]
    assert re.fullmatch(r"\d+@video\.hub\.local", uri)
    assert uri == f"{info['uriWithoutDomain']}@video.hub.local"
    assert info["guestPin"] != info["hostPin"]
    assert all(1000 <= info[pin] <= 999_999_999 for pin in ("guestPin", "hostPin"))
    # 09:00Z is 10:00 in Copenhagen (CET) on 12 March.
    assert info["portalLink"] == (
        f"https://portal.video.hub.local/?url={uri}&pin={info['guestPin']}&start_dato=2027-03-12T10:00:00"
    )
    assert info["provisionStatus"] == "AWAITS_PROVISION"
    assert "provisionTimestamp" not in info
    template_values = (info["vmrAvailableBefore"], info["maxParticipants"], info["endMeetingOnEndTime"])
    assert template_values == (30, 10, False)
    assert info["meetingDetails"]["uuid"] == meeting["uuid"]
    assert info["shortLink"] == meeting["shortLink"]
    assert info["_links"]["self"]["href"].endswith(f"/v2/scheduling-info/{meeting['uuid']}")


def test_uris_are_unique_and_supplied_pins_and_template_overrides_are_kept(vdx: httpx.Client) -> None:
    first = create(vdx, guestPin=123456, hostPin=654321, maxParticipants=3, endMeetingOnEndTime=True)
    second = create(vdx)
    info1 = vdx.get(f"/v2/scheduling-info/{first['uuid']}").json()
    info2 = vdx.get(f"/v2/scheduling-info/{second['uuid']}").json()
    assert info1["uriWithDomain"] != info2["uriWithDomain"]
    assert first["shortId"] != second["shortId"]
    assert (info1["guestPin"], info1["hostPin"]) == (123456, 654321)
    assert (info1["maxParticipants"], info1["endMeetingOnEndTime"]) == (3, True)


def test_duplicate_external_id_is_code_21(vdx: httpx.Client) -> None:
    create(vdx, externalId="appt-42")
    body = assert_vdx_error(vdx.post("/v2/meetings", json=meeting_body(externalId="appt-42")), 400, "21")
    assert body["detailed_error"] == "ExternalId not unique within organisation."
    assert body["path"] == "/v2/meetings"
    assert body["error"] == "Bad Request"


def test_client_supplied_uuid_is_used_and_cannot_be_reused(vdx: httpx.Client) -> None:
    uuid = "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"
    assert create(vdx, uuid=uuid.upper())["uuid"] == uuid
    assert vdx.get(f"/v2/meetings/{uuid}").status_code == 200
    assert_vdx_error(vdx.post("/v2/meetings", json=meeting_body(uuid=uuid)), 400, "10")
    assert_vdx_error(vdx.post("/v2/meetings", json=meeting_body(uuid="not-a-uuid")), 400, "10")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"startTime": START, "endTime": END}, "subject"),
        (meeting_body(subject="   "), "subject"),
        (meeting_body(subject="x" * 101), "subject"),
        (meeting_body(description="x" * 501), "description"),
        (meeting_body(externalId="x" * 201), "externalId"),
        (meeting_body(startTime=END, endTime=START), "startTime"),
        (meeting_body(endTime=START), "startTime"),
        (meeting_body(startTime="tomorrow"), "startTime"),
        (meeting_body(maxParticipants="5"), "maxParticipants"),
        (meeting_body(guestPin=999), "guestPin"),
        (meeting_body(guestMicrophone="loud"), "guestMicrophone"),
        (meeting_body(endTime=...), "endTime"),
    ],
)
def test_invalid_create_is_400_code_10_naming_the_field(vdx: httpx.Client, body: dict[str, Any],
                                                        field: str) -> None:
    error = assert_vdx_error(vdx.post("/v2/meetings", json=body), 400, "10")
    assert field in error["detailed_error"]


def test_malformed_bodies_and_other_create_codes(vdx: httpx.Client) -> None:
    bad_json = vdx.post("/v2/meetings", content=b"{not json", headers={"content-type": "application/json"})
    assert_vdx_error(bad_json, 400, "10")
    assert_vdx_error(vdx.post("/v2/meetings", json=["a", "list"]), 400, "10")
    five_digit_year = meeting_body(startTime="20270-03-12T09:00:00Z")
    assert_vdx_error(vdx.post("/v2/meetings", json=five_digit_year), 400, "25")
    duplicate_keys = [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]
    assert_vdx_error(vdx.post("/v2/meetings", json=meeting_body(additionalInformation=duplicate_keys)),
                     400, "35")


# ------------------------------------------------------------------------------------------------- search


def test_search_by_external_id_and_other_criteria(vdx: httpx.Client) -> None:
    wanted = create(vdx, externalId="appt-7", labels=["rehab"], subject="Genoptræning")
    create(vdx, externalId="appt-8", startTime="2027-03-13T09:00:00Z", endTime="2027-03-13T10:00:00Z")

    for name in ("externalId", "external-id"):
        found = vdx.get("/v2/meetings", params={name: "appt-7"})
        assert found.status_code == 200
        assert [m["uuid"] for m in found.json()] == [wanted["uuid"]]
        assert found.json()[0]["_links"]["scheduling-info"]["href"].endswith(
            f"/v2/scheduling-info/{wanted['uuid']}")
    assert vdx.get("/v2/meetings", params={"externalId": "nope"}).json() == []
    assert [m["uuid"] for m in vdx.get("/v2/meetings", params={"label": "rehab"}).json()] == [wanted["uuid"]]
    assert [m["uuid"] for m in vdx.get("/v2/meetings", params={"short-id": wanted["shortId"]}).json()] == [
        wanted["uuid"]]
    day = {"from-start-time": "2027-03-12T00:00:00Z", "to-start-time": "2027-03-12T23:59:59Z"}
    assert [m["uuid"] for m in vdx.get("/v2/meetings", params=day).json()] == [wanted["uuid"]]
    uri = vdx.get(f"/v2/scheduling-info/{wanted['uuid']}").json()["uriWithDomain"]
    by_uri = vdx.get("/v2/meetings", params={"uriWithDomain": uri}).json()
    assert [m["uuid"] for m in by_uri] == [wanted["uuid"]]


def test_search_without_parameters_is_36_and_half_an_interval_is_28(vdx: httpx.Client) -> None:
    assert_vdx_error(vdx.get("/v2/meetings"), 400, "36")
    assert_vdx_error(vdx.get("/v2/meetings", params={"from-start-time": START}), 400, "28")
    assert_vdx_error(vdx.get("/v2/meetings", params={"subject": "x", "to-start-time": END}), 400, "28")


# ---------------------------------------------------------------------------------------- update and patch


def test_put_and_patch_while_awaiting_provision(vdx: httpx.Client) -> None:
    meeting = create(vdx, description="first", labels=["a"])
    uuid = meeting["uuid"]
    put = vdx.put(f"/v2/meetings/{uuid}", json={
        "subject": "Flyttet", "startTime": "2027-03-12T11:00:00Z", "endTime": "2027-03-12T12:00:00Z"})
    assert put.status_code == 200, put.text
    assert (put.json()["subject"], put.json()["startTime"]) == ("Flyttet", "2027-03-12T11:00:00Z")
    assert "description" not in put.json()  # PUT replaces: an absent description is removed
    assert put.json()["labels"] == []

    patched = vdx.patch(f"/v2/meetings/{uuid}", json={"description": "second"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["subject"], patched.json()["description"]) == ("Flyttet", "second")
    assert patched.json()["endTime"] == "2027-03-12T12:00:00Z"

    cleared = vdx.patch(f"/v2/meetings/{uuid}", json={"description": None})
    assert "description" not in cleared.json()
    assert_vdx_error(vdx.patch(f"/v2/meetings/{uuid}", json={"subject": None}), 400, "30")
    assert_vdx_error(vdx.patch(f"/v2/meetings/{uuid}", json={"endTime": "2027-03-12T10:30:00Z"}), 400, "10")
    assert_vdx_error(vdx.put(f"/v2/meetings/{uuid}", json={"subject": "no times"}), 400, "10")
    assert vdx.get(f"/v2/meetings/{uuid}").json()["subject"] == "Flyttet"


def test_unknown_and_malformed_uuids(vdx: httpx.Client) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    assert_vdx_error(vdx.get(f"/v2/meetings/{unknown}"), 404, "11")
    assert_vdx_error(vdx.get(f"/v2/scheduling-info/{unknown}"), 404, "11")
    assert_vdx_error(vdx.patch(f"/v2/meetings/{unknown}", json={"subject": "x"}), 404, "11")
    assert_vdx_error(vdx.get("/v2/meetings/not-a-uuid"), 400, "10")
    assert_vdx_error(vdx.delete("/v2/meetings/not-a-uuid"), 400, "10")


# ------------------------------------------------------------------------------------------- provisioning


def test_provisioned_meeting_only_takes_a_new_end_time(vdx: httpx.Client) -> None:
    meeting = create(vdx, externalId="appt-p")
    uuid = meeting["uuid"]
    set_clock(vdx, "2027-03-12T08:29:00Z")
    assert status_of(vdx, uuid) == "AWAITS_PROVISION"
    set_clock(vdx, "2027-03-12T08:31:00Z")
    info = vdx.get(f"/v2/scheduling-info/{uuid}").json()
    assert info["provisionStatus"] == "PROVISIONED_OK"
    assert info["provisionTimestamp"] == "2027-03-12T08:30:00Z"

    put = vdx.put(f"/v2/meetings/{uuid}", json={
        "subject": "Ignored", "startTime": "2027-03-12T09:15:00Z", "endTime": "2027-03-12T10:15:00Z"})
    assert put.status_code == 200, put.text
    assert (put.json()["subject"], put.json()["startTime"], put.json()["endTime"]) == (
        "Skærmbesøg", START, "2027-03-12T10:15:00Z")

    assert_vdx_error(vdx.patch(f"/v2/meetings/{uuid}", json={"startTime": "2027-03-12T09:30:00Z"}), 406, "12")
    assert_vdx_error(vdx.patch(f"/v2/meetings/{uuid}", json={"subject": "new"}), 406, "12")
    unchanged_subject = {"subject": "Skærmbesøg", "endTime": "2027-03-12T10:30:00Z"}
    patched = vdx.patch(f"/v2/meetings/{uuid}", json=unchanged_subject)
    assert patched.status_code == 200, patched.text
    assert patched.json()["endTime"] == "2027-03-12T10:30:00Z"

    assert_vdx_error(vdx.delete(f"/v2/meetings/{uuid}"), 406, "13")
    assert vdx.get(f"/v2/meetings/{uuid}").status_code == 200


def test_scheduling_info_list_filters_on_window_and_status(vdx: httpx.Client) -> None:
    meeting = create(vdx)
    window = {"from-start-time": "2027-03-12T00:00:00Z", "to-end-time": "2027-03-12T23:59:59Z"}
    awaiting = vdx.get("/v2/scheduling-info", params=window).json()
    assert [i["uuid"] for i in awaiting] == [meeting["uuid"]]
    provisioned_only = {**window, "provision-status": "PROVISIONED_OK"}
    assert vdx.get("/v2/scheduling-info", params=provisioned_only).json() == []
    set_clock(vdx, "2027-03-12T08:45:00Z")
    assert vdx.get("/v2/scheduling-info", params=window).json() == []
    provisioned = vdx.get("/v2/scheduling-info", params=provisioned_only)
    assert [i["uuid"] for i in provisioned.json()] == [meeting["uuid"]]
    assert_vdx_error(vdx.get("/v2/scheduling-info", params={"from-start-time": START}), 400, "10")


def test_after_end_meeting_is_deprovisioned_and_frozen(vdx: httpx.Client) -> None:
    uuid = create(vdx)["uuid"]
    set_clock(vdx, "2027-03-12T10:00:01Z")
    assert status_of(vdx, uuid) == "DEPROVISION_OK"
    later = {"subject": "x", "startTime": START, "endTime": "2027-03-12T11:00:00Z"}
    assert_vdx_error(vdx.put(f"/v2/meetings/{uuid}", json=later), 406, "12")
    assert_vdx_error(vdx.patch(f"/v2/meetings/{uuid}", json={"endTime": "2027-03-12T11:00:00Z"}), 406, "12")
    assert_vdx_error(vdx.delete(f"/v2/meetings/{uuid}"), 406, "13")


def test_delete_while_awaiting_then_gone(vdx: httpx.Client) -> None:
    uuid = create(vdx, externalId="appt-d")["uuid"]
    response = vdx.delete(f"/v2/meetings/{uuid}")
    assert response.status_code == 204
    assert_vdx_error(vdx.get(f"/v2/meetings/{uuid}"), 404, "11")
    assert_vdx_error(vdx.get(f"/v2/scheduling-info/{uuid}"), 404, "11")
    assert_vdx_error(vdx.delete(f"/v2/meetings/{uuid}"), 404, "11")
    assert vdx.get("/v2/meetings", params={"externalId": "appt-d"}).json() == []
    # The external id is free again for a new booking, the uuid stays spent.
    assert create(vdx, externalId="appt-d")["uuid"] != uuid
    assert_vdx_error(vdx.post("/v2/meetings", json=meeting_body(uuid=uuid)), 400, "10")


# ------------------------------------------------------------------------------------ clock, info, health


def test_test_clock_moves_and_other_endpoints(vdx: httpx.Client) -> None:
    assert vdx.get("/_test/clock").json()["now"].startswith("2027-03-12T08:00")
    moved = vdx.post("/_test/clock", json={"advance_seconds": 3600})
    assert moved.json()["now"].startswith("2027-03-12T09:00")
    assert_vdx_error(vdx.post("/_test/clock", json={"advance_seconds": "soon"}), 400, "10")
    assert vdx.get("/healthz").json() == {"status": "ok"}
    info = vdx.get("/v2/info")
    assert info.status_code == 200
    assert {entry["key"] for entry in info.json()["info"]} >= {"app", "time"}
    assert_vdx_error(vdx.get("/v2/no-such-thing"), 404, "11")
    assert_vdx_error(vdx.post("/v2/scheduling-info", json={}), 405, "11")


def test_test_clock_is_absent_unless_enabled() -> None:
    with ServerThread(create_vdx_app()) as srv:
        assert httpx.get(f"{srv.url}/_test/clock").status_code == 404
        assert httpx.post(f"{srv.url}/_test/clock", json={"advance_seconds": 60}).status_code == 404
        assert httpx.get(f"{srv.url}/v2/info").status_code == 200  # and no auth without client_credentials


# ------------------------------------------------------------------------------------------------- OAuth2


def token(client: httpx.Client, client_id: str = "hub", secret: str = "s3cret") -> httpx.Response:
    return client.post("/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                       "client_secret": secret})


def test_oauth2_token_is_required_and_works(secured: tuple[httpx.Client, VdxClock]) -> None:
    client, _ = secured
    missing = assert_vdx_error(client.post("/v2/meetings", json=meeting_body()), 401, "11")
    assert missing["error"] == "Unauthorized"
    assert client.get("/v2/info").headers["www-authenticate"].startswith("Bearer")
    assert_vdx_error(client.get("/v2/info", headers={"Authorization": "Bearer forged"}), 401, "11")
    assert client.get("/healthz").status_code == 200

    wrong = token(client, secret="guess")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert "access_token" not in wrong.json()
    assert token(client, client_id="other").status_code == 401
    unsupported = client.post("/token", data={"grant_type": "password", "client_id": "hub"})
    assert unsupported.status_code == 400

    issued = token(client)
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "Bearer"
    assert issued.json()["expires_in"] == 300
    auth = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    created = client.post("/v2/meetings", json=meeting_body(), headers=auth)
    assert created.status_code == 200, created.text
    assert created.json()["createdBy"]["email"] == "hub@video.hub.local"


def test_oauth2_basic_credentials_and_expiry_on_the_clock(secured: tuple[httpx.Client, VdxClock]) -> None:
    client, clock = secured
    basic = base64.b64encode(b"hub:s3cret").decode()
    issued = client.post("/token", data={"grant_type": "client_credentials"},
                         headers={"Authorization": f"Basic {basic}"})
    assert issued.status_code == 200, issued.text
    auth = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    assert client.get("/v2/info", headers=auth).status_code == 200
    clock.advance(290)
    assert client.get("/v2/info", headers=auth).status_code == 200
    clock.advance(15)
    assert_vdx_error(client.get("/v2/info", headers=auth), 401, "11")
