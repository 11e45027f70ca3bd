"""Meetings into the case index (SF1470): the booking flow's follower.

The booking flow answers the EOJ at once; with each booking, move, cancellation or deletion it asks its followers
for outbox rows written in the same transaction. This one writes a row for the index, keyed by the meeting's
course of care, so a case's updates go out one at a time and in the order they happened; the delivery
(`hub.delivery.case_index`) walks the case's requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.delivery.case_index import TOPIC
from hub.delivery.outbox import outbox_row
from hub.sdi.meeting import meeting_facts


@dataclass(frozen=True)
class CaseIndexFlow:
    """The outbox row that takes a meeting's change to the index, written with the change itself."""

    def __call__(self, appointment_id: str, resource: dict[str, Any], patient_identifier: str | None,
                 now: datetime) -> dict[str, Any] | None:
        facts = meeting_facts(appointment_id, resource, patient_identifier)
        if facts is None:  # no citizen to show it to
            return None
        payload = {"appointment": appointment_id, "resource": resource, "patient": patient_identifier,
                   "at": now.isoformat()}
        return outbox_row(TOPIC, facts.ordering_key, payload, now)
