"""The one shape of an outbox row, written by the flows in the transaction of the change that causes it.

Every delivery of the hub (a routed message, an SIU, an application acknowledgement, a case-index update) starts
as such a row, so how a row begins (pending, no attempts, due now) is said once, here; the worker
(`hub.delivery.worker`) takes it from there. Rows with the same `ordering_key` are delivered in the order written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def outbox_row(topic: str, ordering_key: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A new `outbox` row: `topic` picks the handler, `payload` is what the handler gets."""
    return {"topic": topic, "ordering_key": ordering_key, "payload": payload, "status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now}
