"""MedCom HospitalNotification → the canonical `EncounterEvent` (pure).

The event is the activity of the Provenance that names this message's MessageHeader as its target (a
notification carries the Provenances of the earlier notifications about the stay too); the Encounter is the
MessageHeader's focus; the stay is the Encounter's episode-of-care identifier, which MedCom keeps the same
across every notification about one stay (the Encounter's id when there is none).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from hub.core.model import EncounterEvent, Identifier
from hub.fhir.fhirpath import resolve_reference
from hub.fhir.messaging import GLN_SYSTEMS, SOR_SYSTEM, MessageInfo, party_keys


def encounter_event(info: MessageInfo) -> EncounterEvent | None:
    """The event a HospitalNotification reports; None for a message without an Encounter focus."""
    bundle = info.bundle
    focus = [resolve_reference(bundle, f.get("reference", "")) for f in info.header.get("focus", []) or []
             if isinstance(f, dict)]
    encounter = next((r for r in focus if r is not None and r.get("resourceType") == "Encounter"), None)
    if encounter is None:
        return None
    activity = _activity(bundle, info.header_id)
    patient = _patient(bundle, encounter)
    provider = resolve_reference(bundle, (encounter.get("serviceProvider") or {}).get("reference", ""))
    keys = party_keys(provider)
    period = encounter.get("period") or {}
    resource = copy.deepcopy(encounter)
    resource.pop("meta", None)
    resource.pop("text", None)
    if patient is not None:  # by identifier: the Patient resource stays behind in the message
        resource["subject"] = {"identifier": {"system": patient.system, "value": patient.value}}
    if keys:
        kind, _, value = keys[0].partition(":")
        resource["serviceProvider"] = {"identifier": {"system": _SYSTEMS[kind], "value": value}}
    return EncounterEvent(
        stay=_stay(encounter), event=activity or info.event_code or "unknown", status=str(encounter.get("status")),
        encounter_class=(encounter.get("class") or {}).get("code"), start=_time(period.get("start")),
        end=_time(period.get("end")), patient=patient, service_provider=keys[0] if keys else None,
        occurred_at=_time(_provenance(bundle, info.header_id).get("occurredDateTime")), resource=resource)


_SYSTEMS = {"sor": SOR_SYSTEM, "gln": GLN_SYSTEMS[0]}


def _provenance(bundle: dict[str, Any], header_id: str) -> dict[str, Any]:
    for entry in bundle.get("entry", []) or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(res, dict) and res.get("resourceType") == "Provenance" and any(
                isinstance(t, dict) and str(t.get("reference", "")).endswith(f"MessageHeader/{header_id}")
                for t in res.get("target", []) or []):
            return res
    return {}


def _activity(bundle: dict[str, Any], header_id: str) -> str | None:
    codings = ((_provenance(bundle, header_id).get("activity") or {}).get("coding") or [])
    return next((c.get("code") for c in codings if isinstance(c, dict) and c.get("code")), None)


def _patient(bundle: dict[str, Any], encounter: dict[str, Any]) -> Identifier | None:
    subject = encounter.get("subject") or {}
    patient = resolve_reference(bundle, subject.get("reference", "")) if subject.get("reference") else None
    for ident in (patient or {}).get("identifier", []) or []:
        if isinstance(ident, dict) and ident.get("system") and ident.get("value"):
            return Identifier(ident["system"], ident["value"])
    return None


def _stay(encounter: dict[str, Any]) -> str:
    for episode in encounter.get("episodeOfCare", []) or []:
        ident = episode.get("identifier") if isinstance(episode, dict) else None
        if isinstance(ident, dict) and ident.get("value"):
            return f"{ident.get('system', '')}|{ident['value']}"
    return f"Encounter/{encounter.get('id')}"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
