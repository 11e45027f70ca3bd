"""An audit event for each kind of access — create, read, search, update, operation, message, token issued,
refusal — each organisation seeing its own, as R4 AuditEvents that validate."""

from __future__ import annotations

from typing import Any

import httpx

from tests.appointments import video_appointment
from tests.flows.test_appointment import FHIR
from tests.tokens import bearer, register, token

ISHOJ = "http://cvr.dk|29189846"
ALBERTSLUND = "http://cvr.dk|29188335"
CPR = "urn:oid:1.2.208.176.1.2|0101804321"


def _events(hub: Any, auth: dict[str, str], **params: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{hub.url}/fhir/AuditEvent", params=params, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json()["entry"]]


def test_every_kind_of_access_is_audited_and_each_organisation_sees_its_own(hub: Any) -> None:
    client_id, secret = register(hub.settings, "system/Appointment.cruds system/AuditEvent.rs hub/*", ISHOJ)
    auth = {**FHIR, "Authorization": f"Bearer {token(hub.url, client_id, secret)}"}
    patient = {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101804321"}}
    booked = httpx.post(f"{hub.url}/fhir/Appointment", json=video_appointment(patient=patient), headers=auth,
                        timeout=30)
    appointment = booked.json()["id"]
    httpx.get(f"{hub.url}/fhir/Appointment/{appointment}", headers=auth, timeout=30)
    httpx.get(f"{hub.url}/fhir/Appointment", params={"patient:identifier": CPR}, headers=auth, timeout=30)
    httpx.put(f"{hub.url}/fhir/Appointment/{appointment}", json={**booked.json(), "status": "cancelled"},
              headers=auth, timeout=30)
    httpx.post(f"{hub.url}/fhir/$validate", json=video_appointment(), headers=auth, timeout=30)
    httpx.post(f"{hub.url}/fhir/$process-message", content=b"{}", headers=auth, timeout=30)
    httpx.post(f"{hub.url}/fhir/Appointment", json={}, headers={"Authorization": "Bearer forged"}, timeout=30)

    events = _events(hub, auth)
    kinds = {(e["subtype"][0]["code"], e["action"], e["outcome"]) for e in events}
    assert {("create", "C", "0"), ("read", "R", "0"), ("search-type", "E", "0"), ("update", "U", "0"),
            ("$validate", "E", "0"), ("token", "E", "0")} <= kinds, kinds
    assert ("$process-message", "C", "4") in kinds  # not a message at all: refused, audited all the same
    assert all(e["agent"][0]["who"]["identifier"]["value"] == client_id for e in events)
    assert any(e.get("entity", [{}])[0].get("what", {}).get("reference") == f"Appointment/{appointment}"
               for e in events if e["subtype"][0]["code"] == "create")
    searched = next(e for e in events if e["subtype"][0]["code"] == "search-type")
    assert {"system": "urn:oid:1.2.208.176.1.2", "value": "0101804321"} in [
        x["what"].get("identifier") for x in searched["entity"]]
    assert "0101804321" not in searched["outcomeDesc"]  # the path, CPR masked
    read = next(e for e in events if e["subtype"][0]["code"] == "read")
    assert {"system": "urn:oid:1.2.208.176.1.2", "value": "0101804321"} in [
        x["what"].get("identifier") for x in read["entity"]]  # whose appointment was read
    by_entity = _events(hub, auth, entity=f"Appointment/{appointment}")
    assert {e["subtype"][0]["code"] for e in by_entity} == {"read", "update", "create"}
    services = hub.server.config.app.state.services
    for event in events:
        outcome = services.validator.validate(event)
        assert not [i for i in outcome.issues if i.severity in ("error", "fatal")], (event, outcome.to_fhir())

    other = bearer(hub.url, hub.settings, "system/AuditEvent.rs", ALBERTSLUND)
    theirs = _events(hub, other)
    assert all(e["agent"][0]["who"]["identifier"]["value"] != client_id for e in theirs)  # none of Ishøj's


def test_a_refused_access_is_audited_with_the_client_it_names(hub: Any) -> None:
    client_id, secret = register(hub.settings, "system/AuditEvent.rs", ISHOJ)
    auth = {"Authorization": f"Bearer {token(hub.url, client_id, secret)}"}
    assert httpx.post(f"{hub.url}/fhir/Appointment", json={}, headers=auth, timeout=30).status_code == 403
    refused = [e for e in _events(hub, auth) if e["outcome"] == "4"]
    assert [(e["subtype"][0]["code"], e["action"]) for e in refused] == [("create", "C")]
