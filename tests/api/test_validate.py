"""`$validate` as HAPI FHIR serves it: `mode` create, update or delete; for an Appointment being created or updated,
exactly the booking's checks, so `$validate` and `POST /fhir/Appointment` never disagree."""

from __future__ import annotations

from typing import Any

from tests.appointments import video_appointment
from tests.conftest import fut_appointment
from tests.flows.test_appointment import FHIR, db_count


def errors(outcome: dict[str, Any]) -> set[tuple[str, str]]:
    return {(i["code"], i.get("details", {}).get("text") or i.get("diagnostics", ""))
            for i in outcome["issue"] if i["severity"] in ("error", "fatal")}


def test_validating_for_create_says_what_booking_says(hub: Any) -> None:
    two_patients = fut_appointment("Appointment-videoappointment01.json")  # FUT's own example names two patients
    booked = hub.client.post("/fhir/Appointment", json=two_patients, headers=FHIR)
    assert booked.status_code == 422
    validated = hub.client.post("/fhir/Appointment/$validate", params={"mode": "create"}, json=two_patients,
                                headers=FHIR)
    assert validated.status_code == 200
    assert errors(validated.json()) == errors(booked.json()) != set()
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": two_patients},
                                                          {"name": "mode", "valueCode": "create"}]}
    in_parameters = hub.client.post("/fhir/$validate", json=params, headers=FHIR)
    assert errors(in_parameters.json()) == errors(booked.json())
    assert db_count(hub, "appointments") == 0  # validating books nothing (and the refused booking left none)


def test_a_good_appointment_validates_for_create_as_it_books(hub: Any) -> None:
    good = video_appointment()
    validated = hub.client.post("/fhir/Appointment/$validate", params={"mode": "create"}, json=good, headers=FHIR)
    assert errors(validated.json()) == set()
    assert hub.client.post("/fhir/Appointment", json=good, headers=FHIR).status_code == 201


def test_update_needs_the_id_and_delete_is_not_taken(hub: Any) -> None:
    good = video_appointment()
    good.pop("id", None)
    update = hub.client.post("/fhir/Appointment/$validate", params={"mode": "update"}, json=good, headers=FHIR)
    assert any(i.get("expression") == ["Appointment.id"] for i in update.json()["issue"] if i["severity"] == "error")
    delete = hub.client.post("/fhir/Appointment/$validate", params={"mode": "delete"}, json=good, headers=FHIR)
    assert {code for code, _ in errors(delete.json())} == {"not-supported"}


def test_an_unknown_mode_is_a_bad_request(hub: Any) -> None:
    r = hub.client.post("/fhir/Appointment/$validate", params={"mode": "replace"}, json=fut_appointment(),
                        headers=FHIR)
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["mode"]
