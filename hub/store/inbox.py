"""Inbound messages with their answers: what every receiving flow (FHIR messaging, OIOXML) stores.

One transaction holds the message, its answer, its identity (`received_messages`) and its outbox deliveries,
so a message is either received with all of that or not at all; a second transaction with the same identity
fails on the key, and the flow answers it as the duplicate it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Executable, select
from sqlalchemy.exc import IntegrityError

from hub.store.db import WriterLock
from hub.store.statements import INSERT_MESSAGE, INSERT_OUTBOX, INSERT_RECEIVED, MESSAGES, RECEIVED

Effect = tuple[Executable, list[dict[str, Any]] | None]  # a statement and its rows (None: run it once as is)


@dataclass(frozen=True)
class Earlier:
    """A message received before under the same identity: its id, the HTTP status it got, its answer's bytes."""

    message_id: str
    http_status: int | None
    answer: bytes | None


class Inbox:
    def __init__(self, engine: Engine, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.now = now
        self._lock = WriterLock(engine)

    def row(self, fields: dict[str, Any], fmt: str, verdict: dict[str, Any] | None, status: str,
            http_status: int | None, key: str | None = None) -> dict[str, Any]:
        """A `messages` row: `fields` gives direction, channel, operation, content_type and raw."""
        return {"id": str(uuid.uuid4()), "received_at": self.now(), "appointment_id": None, "format": fmt,
                "verdict": verdict, "status": status, "http_status": http_status, "idempotency_key": key, **fields}

    def store(self, rows: list[dict[str, Any]]) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(INSERT_MESSAGE, rows)

    def commit(self, rows: list[dict[str, Any]], key: str | None, answer_id: str | None,
               deliveries: list[dict[str, Any]], effects: Sequence[Effect] = ()) -> bool:
        """The rows (the first is the inbound message), its identity unless `key` is None, the deliveries and
        the message's effects (its canonical effect, what its conversion records); False when a message with
        this identity was received meanwhile (nothing is written then)."""
        try:
            with self._lock, self.engine.begin() as conn:
                conn.execute(INSERT_MESSAGE, rows)
                if key is not None:
                    conn.execute(INSERT_RECEIVED, [self.received(key, rows[0]["id"], answer_id)])
                self.write(conn, [], deliveries, effects)
        except IntegrityError:
            if key is not None and self.earlier(key) is not None:
                return False
            raise
        return True

    def received(self, key: str, message_id: str, answer_id: str | None) -> dict[str, Any]:
        """The `received_messages` row that makes a message with this identity the same message again."""
        return {"key": key, "message_id": message_id, "answer_id": answer_id, "received_at": self.now()}

    @staticmethod
    def write(conn: Connection, rows: list[dict[str, Any]], deliveries: list[dict[str, Any]],
              effects: Sequence[Effect]) -> None:
        """Messages, then the effects (which may refer to them), then the deliveries, in the caller's
        transaction."""
        if rows:
            conn.execute(INSERT_MESSAGE, rows)
        for statement, effect_rows in effects:
            if effect_rows is None:
                conn.execute(statement)
            elif effect_rows:
                conn.execute(statement, effect_rows)
        if deliveries:
            conn.execute(INSERT_OUTBOX, deliveries)

    def earlier(self, key: str) -> Earlier | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(RECEIVED.c.message_id, RECEIVED.c.answer_id, MESSAGES.c.http_status)
                                 .join(MESSAGES, MESSAGES.c.id == RECEIVED.c.message_id)
                                 .where(RECEIVED.c.key == key)).first()
            if found is None:
                return None
            answer = None
            if found.answer_id is not None:
                answer = conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.id == found.answer_id)).scalar_one()
        return Earlier(found.message_id, found.http_status, answer)
