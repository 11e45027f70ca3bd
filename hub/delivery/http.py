"""Delivering a routed message (FHIR or OIOXML) to its receiver's endpoint: the outbox handler of
`message.deliver`.

The stored raw bytes go out unchanged (`POST`, the content type they came with), or wrapped in the envelope
the route asks for (`envelope: vans`, by the `wrapper`; a message that cannot be wrapped is a permanent
failure). A 2xx answer is a delivery;
a 4xx other than 408 and 429 is permanent (the receiver refuses the content: sending it again will not help);
anything else, a connection failure included, is tried again by the outbox. Every attempt is kept as an
outbound message with the receiver's status code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine, select

from hub.core.errors import HubError
from hub.core.routing import DELIVER_TOPIC, Route
from hub.delivery.outbox import outbox_row
from hub.delivery.worker import PermanentFailure
from hub.fhir import io
from hub.fhir.messaging import read_message
from hub.medcom.vans import FHIR_JSON, VANS_MEDIA_TYPE, Endpoint, StatisticalCodes, VansEnvelope, document_name, wrap
from hub.store.db import WriterLock
from hub.store.statements import INSERT_MESSAGE, MESSAGES


def message_delivery(route: Route, message_id: str, content_type: str, now: datetime) -> dict[str, Any]:
    """The outbox row that delivers a stored message to the route's endpoint, in order per receiver."""
    payload: dict[str, Any] = {"message_id": message_id, "endpoint": route.endpoint, "receiver": route.name,
                               "content_type": content_type}
    if route.envelope is not None and route.organisation is not None:
        payload |= {"envelope": route.envelope, "receiver_ean": route.organisation.gln}
    return outbox_row(DELIVER_TOPIC, route.keys[0], payload, now)


class DeliveryFailed(Exception):
    """The receiver could not be reached or answered with an error worth trying again."""


@dataclass
class HttpDelivery:
    engine: Engine
    timeout_seconds: float = 10.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    wrapper: Callable[[bytes, dict[str, Any]], tuple[bytes, str]] | None = None  # (raw, payload) → body, type

    def __post_init__(self) -> None:
        self._client = httpx.Client(timeout=self.timeout_seconds)
        self._lock = WriterLock(self.engine)

    def close(self) -> None:
        self._client.close()

    def __call__(self, payload: dict[str, Any]) -> None:
        with self.engine.connect() as conn:
            raw = conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.id == payload["message_id"])).scalar_one()
        content_type = payload.get("content_type") or "application/fhir+json"
        if payload.get("envelope"):
            if self.wrapper is None:
                raise PermanentFailure(f"the hub cannot write a {payload['envelope']} envelope")
            try:
                raw, content_type = self.wrapper(raw, payload)
            except (ValueError, HubError) as exc:
                raise PermanentFailure(f"the message cannot go in a {payload['envelope']} envelope: {exc}") from None
        status: int | None = None
        try:
            answer = self._client.post(payload["endpoint"], content=raw, headers={"Content-Type": content_type})
            status = answer.status_code
        except httpx.HTTPError as exc:
            self._record(payload, raw, content_type, None)
            raise DeliveryFailed(f"{payload['endpoint']}: {type(exc).__name__}: {exc}") from exc
        self._record(payload, raw, content_type, status)
        if 200 <= status < 300:
            return
        text = f"{payload['endpoint']} answered {status}: {answer.text[:200]}"
        if 400 <= status < 500 and status not in (408, 429):
            raise PermanentFailure(text)
        raise DeliveryFailed(text)

    def _record(self, payload: dict[str, Any], raw: bytes, content_type: str, status: int | None) -> None:
        row = {"id": str(uuid.uuid4()), "received_at": self.now(), "direction": "out", "channel": "fhir-messaging",
               "format": io.format_of(raw),
               "operation": f"POST {payload['endpoint']} ({payload.get('receiver')})",
               "content_type": content_type, "raw": raw, "verdict": None,
               "status": "sent" if status is not None and 200 <= status < 300 else "failed", "http_status": status,
               "appointment_id": None, "idempotency_key": payload["message_id"]}
        with self._lock, self.engine.begin() as conn:
            conn.execute(INSERT_MESSAGE, [row])


@dataclass
class VansWrapper:
    """Wraps a stored FHIR message for a route that reads VANS envelopes (the delivery's `envelope: vans`):
    from the message's sender (its GLN) to the route's receiver GLN."""

    codes: StatisticalCodes
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __call__(self, raw: bytes, payload: dict[str, Any]) -> tuple[bytes, str]:
        bundle = io.parse(raw, payload.get("content_type"))
        info = read_message(bundle)
        sender = next((k.split(":", 1)[1] for k in info.sender.keys if k.startswith("gln:")), None)
        if sender is None or not payload.get("receiver_ean"):
            raise ValueError("a VANS envelope needs the sender's and the receiver's GLN")
        envelope = VansEnvelope(Endpoint(sender), Endpoint(str(payload["receiver_ean"])), str(uuid.uuid4()),
                                info.header_id if _is_uuid(info.header_id) else str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                                                               info.header_id)),
                                self.now(), document_name(bundle, self.codes),
                                "application/fhir+xml" if io.format_of(raw) == "fhir+xml" else FHIR_JSON, raw)
        return wrap(envelope, self.codes), VANS_MEDIA_TYPE


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
