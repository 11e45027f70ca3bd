"""Encounter events in the store, and the stays they add up to (the latest event of each stay).

A stay is shown as the Encounter its latest event left (by when the event happened, then by when it came).
Its `id`, stored in the `stay` column, is derived from the stay's identity (uuid5), so it stays the same
across notifications.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select

from hub.core.model import EncounterEvent
from hub.store.statements import ENCOUNTER_EVENTS

STAY_NAMESPACE = uuid.UUID("1c9a6e9e-3f64-4d55-9a0f-5b2b0f4f7a11")


def stay_id(stay: str) -> str:
    return str(uuid.uuid5(STAY_NAMESPACE, stay))


def event_row(event: EncounterEvent, message_id: str, now: datetime,
              parties: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "stay": stay_id(event.stay), "event": event.event, "status": event.status,
            "encounter_class": event.encounter_class, "start": event.start, "end": event.end,
            "patient_identifier": event.patient.key if event.patient else None,
            "service_provider": event.service_provider, "occurred_at": event.occurred_at, "message_id": message_id,
            "received_at": now, "resource": event.resource,
            "parties": f" {' '.join(parties)} " if parties else None}


class EncounterStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def stays(self, patient_identifier: str | None = None, stay: str | None = None,
              status: str | None = None, viewer: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """The Encounters of a patient's stays (or the one stay with id `stay`), each as its latest event left
        it; with `viewer` (an organisation's routing keys), only from the events that organisation was a party
        to (or that name no parties)."""
        query = select(ENCOUNTER_EVENTS)
        if viewer is not None:
            query = query.where(or_(ENCOUNTER_EVENTS.c.parties.is_(None),
                                    *[ENCOUNTER_EVENTS.c.parties.contains(f" {key} ") for key in sorted(viewer)]))
        if patient_identifier is not None:
            query = query.where(ENCOUNTER_EVENTS.c.patient_identifier == patient_identifier)
        if stay is not None:
            query = query.where(ENCOUNTER_EVENTS.c.stay == stay)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        latest: dict[str, Any] = {}
        for row in sorted(rows, key=lambda r: (r.occurred_at or r.received_at, r.received_at)):
            latest[row.stay] = row
        out = []
        for key, row in latest.items():
            if status is not None and row.status != status:
                continue
            out.append({**row.resource, "resourceType": "Encounter", "id": key,
                        "meta": {"lastUpdated": row.received_at.isoformat()}, **_merged(row)})
        return out


def _merged(row: Any) -> dict[str, Any]:
    """The subject of a stay whose patient was merged into another since (HL7 v2 A40): the patient kept."""
    subject = (row.resource.get("subject") or {}).get("identifier")
    if not isinstance(subject, dict) or row.patient_identifier in (None, f"{subject.get('system')}|"
                                                                         f"{subject.get('value')}"):
        return {}
    system, _, value = row.patient_identifier.partition("|")
    return {"subject": {"identifier": {"system": system, "value": value}}}
