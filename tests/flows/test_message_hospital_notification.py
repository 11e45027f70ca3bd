"""HospitalNotifications through `$process-message` become encounter events, and a patient's stays can be
seen as their latest notification left them (`GET /fhir/Encounter`)."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import SHARED
from tests.flows.test_message import JSON, header_of, receivers_of
from tests.tokens import bearer

SOR = "urn:oid:1.2.208.176.1.1"

EXAMPLES = SHARED / "medcom/fhir/medcom.fhir.dk.hospitalnotification/3.0.2/package/example"
CPR = "urn:oid:1.2.208.176.1.2|2509479989"
STAY = [  # one inpatient stay, notification by notification: admitted, on leave, back, discharged
    ("Bundle-a5e5b880-c087-4055-b9ec-99108695f81d.json", "in-progress"),
    ("Bundle-d3128d9b-cede-4c7f-8904-809eab322d7d.json", "onleave"),
    ("Bundle-e94de8ee-bd94-475e-b454-b8fbbef8a685.json", "in-progress"),
    ("Bundle-f4aa42a4-86db-4e68-9b38-9dda0dfd5774.json", "finished"),
]


def as_receiver(hub: Any, routes: list[dict[str, Any]]) -> Any:
    """The hub's client as one of the receiving organisation's: its clients see the stays they were told of."""
    hub.client.headers.update(bearer(hub.url, hub.settings, organisation=f"{SOR}|{routes[0]['sor']}"))
    return hub


def test_a_stay_follows_its_notifications(messaging_hub: Any) -> None:
    paths = [EXAMPLES / name for name, _ in STAY]
    hub = as_receiver(messaging_hub(receivers_of(paths)), receivers_of(paths))
    for path, status in zip(paths, (s for _, s in STAY), strict=True):
        ack = hub.client.post("/fhir/$process-message", content=path.read_bytes(), headers=JSON).json()
        assert header_of(ack)["response"]["code"] == "ok", ack
        found = hub.client.get("/fhir/Encounter", params={"patient:identifier": CPR}, headers=JSON).json()
        assert found["total"] == 1
        (encounter,) = [e["resource"] for e in found["entry"]]
        assert encounter["status"] == status, path.name
        assert encounter["subject"] == {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "2509479989"}}
    assert encounter["period"]["end"] == "2022-12-18T09:45:30+02:00"
    assert encounter["serviceProvider"]["identifier"]["system"] == "urn:oid:1.2.208.176.1.1"
    read = hub.client.get(f"/fhir/Encounter/{encounter['id']}", headers=JSON)
    assert read.status_code == 200 and read.json()["status"] == "finished"

    again = hub.client.post("/fhir/$process-message", content=paths[1].read_bytes(), headers=JSON)
    assert again.headers.get("x-duplicate-message") == "true"  # a resend changes nothing
    assert hub.client.get(f"/fhir/Encounter/{encounter['id']}", headers=JSON).json()["status"] == "finished"


def test_a_cancelled_admission_and_a_separate_emergency_stay(messaging_hub: Any) -> None:
    admit, cancel, emergency = (EXAMPLES / n for n in ("Bundle-a5e5b880-c087-4055-b9ec-99108695f81d.json",
                                                       "Bundle-c83671a4-9584-11ec-b909-0242ac120002.json",
                                                       "Bundle-h1c8e4a8-6b45-4669-94ad-2a99ad96bf03.json"))
    hub = as_receiver(messaging_hub(receivers_of([admit, cancel, emergency])), receivers_of([admit, cancel, emergency]))
    # MedCom's examples all share one episode-of-care identifier; the emergency stay here gets its own
    other = json.loads(emergency.read_bytes())
    encounter = next(e["resource"] for e in other["entry"] if e["resource"]["resourceType"] == "Encounter")
    encounter["episodeOfCare"][0]["identifier"]["value"] = "3f2c9a4e-0b1d-4e5f-9a8b-7c6d5e4f3a2b"
    for body in (admit.read_bytes(), cancel.read_bytes(), json.dumps(other).encode()):
        ack = hub.client.post("/fhir/$process-message", content=body, headers=JSON).json()
        assert header_of(ack)["response"]["code"] == "ok", ack
    found = hub.client.get("/fhir/Encounter", params={"patient:identifier": CPR}, headers=JSON).json()
    stays = sorted((e["resource"]["class"]["code"], e["resource"]["status"]) for e in found["entry"])
    assert stays == [("EMER", "in-progress"), ("IMP", "entered-in-error")]
    only = hub.client.get("/fhir/Encounter", params={"patient:identifier": CPR, "status": "in-progress"},
                          headers=JSON).json()
    assert [e["resource"]["class"]["code"] for e in only["entry"]] == ["EMER"]


def test_stays_are_shown_per_patient_only(messaging_hub: Any) -> None:
    hub = messaging_hub([])
    assert hub.client.get("/fhir/Encounter", headers=JSON).status_code == 400
    assert hub.client.get("/fhir/Encounter", params={"patient": "x"}, headers=JSON).status_code == 400
    nobody = hub.client.get("/fhir/Encounter", params={"patient:identifier": "urn:oid:1.2.208.176.1.2|0101010101"},
                            headers=JSON).json()
    assert nobody["total"] == 0 and json.dumps(nobody).count("Encounter/") == 0
    assert hub.client.get("/fhir/Encounter/no-such-stay", headers=JSON).status_code == 404


def test_an_organisation_not_party_to_the_notifications_sees_no_stay(messaging_hub: Any) -> None:
    paths = [EXAMPLES / name for name, _ in STAY[:1]]
    routes = receivers_of(paths)
    hub = as_receiver(messaging_hub(routes), routes)
    assert header_of(hub.client.post("/fhir/$process-message", content=paths[0].read_bytes(),
                                     headers=JSON).json())["response"]["code"] == "ok"
    mine = hub.client.get("/fhir/Encounter", params={"patient:identifier": CPR}, headers=JSON).json()
    assert mine["total"] == 1
    stay = mine["entry"][0]["resource"]["id"]
    other = {**JSON, **bearer(hub.url, hub.settings, organisation=f"{SOR}|999999999999999")}
    found = hub.client.get("/fhir/Encounter", params={"patient:identifier": CPR}, headers=other).json()
    assert found["total"] == 0 and json.dumps(found).count("Encounter/") == 0
    assert hub.client.get(f"/fhir/Encounter/{stay}", headers=other).status_code == 404
