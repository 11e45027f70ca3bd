"""Organisations kept apart: an appointment is its booking organisation's; another's clients get 404 on it, do not
find it, cannot change it, and book their own under the same identifier; the host PIN only to the owner's
writers. Over real HTTP, each organisation a registered client with a token."""

from __future__ import annotations

from typing import Any

import httpx

from tests.appointments import EOJ_SYSTEM, video_appointment
from tests.flows.test_appointment import FHIR
from tests.tokens import bearer

HOST_PIN = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-host-pin-code"
ISHOJ = "http://cvr.dk|29189846"
ALBERTSLUND = "http://cvr.dk|29188335"
CPR = "0101804321"


def _client(hub: Any, organisation: str, scope: str = "system/Appointment.cruds hub/*") -> httpx.Client:
    return httpx.Client(base_url=hub.url, timeout=30, headers={**FHIR, **bearer(hub.url, hub.settings, scope,
                                                                                  organisation)})


def _host_pin(resource: dict[str, Any]) -> list[str]:
    return [e["valueString"] for e in resource.get("extension", []) if e["url"] == HOST_PIN]


def test_another_organisation_neither_sees_nor_changes_an_appointment(hub: Any) -> None:
    patient = {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": CPR}}
    appt = video_appointment(patient=patient, source_id="ishoj-1")
    with _client(hub, ISHOJ) as ishoj, _client(hub, ALBERTSLUND) as albertslund:
        booked = ishoj.post("/fhir/Appointment", json=appt)
        assert booked.status_code == 201, booked.text
        appointment_id = booked.json()["id"]
        assert ishoj.get(f"/fhir/Appointment/{appointment_id}").status_code == 200
        assert albertslund.get(f"/fhir/Appointment/{appointment_id}").status_code == 404
        for search in ({"patient:identifier": CPR}, {"identifier": f"{EOJ_SYSTEM}|ishoj-1"}, {"identifier": "ishoj-1"},
                       {}):
            assert albertslund.get("/fhir/Appointment", params=search).json()["total"] == 0, search
            assert ishoj.get("/fhir/Appointment", params=search).json()["total"] == 1, search
        cancelled = {**booked.json(), "status": "cancelled"}
        assert albertslund.put(f"/fhir/Appointment/{appointment_id}", json=cancelled).status_code == 404
        patch = [{"op": "replace", "path": "/status", "value": "cancelled"}]
        assert albertslund.patch(f"/fhir/Appointment/{appointment_id}", json=patch,
                                 headers={"Content-Type": "application/json-patch+json"}).status_code == 404
        assert ishoj.get(f"/fhir/Appointment/{appointment_id}").json()["status"] == "booked"
        # the same identifier from the other organisation is its own booking, not an answer with Ishøj's
        theirs = albertslund.post("/fhir/Appointment", json=appt)
        assert theirs.status_code == 201 and theirs.json()["id"] != appointment_id
        again = ishoj.post("/fhir/Appointment", json=appt)
        assert again.status_code == 200 and again.json()["id"] == appointment_id


def test_the_host_pin_only_to_the_owner_s_writers(hub: Any) -> None:
    with _client(hub, ISHOJ) as writer, _client(hub, ISHOJ, "system/Appointment.rs") as reader:
        booked = writer.post("/fhir/Appointment", json=video_appointment())
        assert booked.status_code == 201 and _host_pin(booked.json())
        appointment_id = booked.json()["id"]
        assert _host_pin(writer.get(f"/fhir/Appointment/{appointment_id}").json())
        read = reader.get(f"/fhir/Appointment/{appointment_id}").json()
        assert read["id"] == appointment_id and _host_pin(read) == []
        found = reader.get("/fhir/Appointment").json()["entry"]
        assert [e["resource"]["id"] for e in found] == [appointment_id] and _host_pin(found[0]["resource"]) == []


def test_a_token_that_names_no_organisation_is_403(hub: Any) -> None:
    import time

    import jwt

    from hub.auth.tokens import OwnIssuer, new_signing_key
    from hub.store.clients import ClientStore
    from hub.store.db import make_engine

    pem = ClientStore(make_engine(hub.settings.effective_database_url)).signing_key(new_signing_key)
    own = OwnIssuer(pem, "http://localhost/auth", "http://localhost/fhir")
    now = int(time.time())
    token = jwt.encode({"iss": own.issuer, "aud": own.audience, "sub": "c", "exp": now + 60,
                        "scope": "system/*.cruds"}, own._key, algorithm="ES256", headers={"kid": own.kid})
    r = httpx.get(f"{hub.url}/fhir/Appointment", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 403 and "organisation" in r.text
