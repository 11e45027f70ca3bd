"""The outbox worker: deliveries written with the change that caused them, made afterwards, with retries.

Each outbox row has a topic; a handler per topic makes the delivery. Rows with the same `ordering_key` (a
receiver, a case) are delivered in the order they were written: while the oldest of a key waits for its next
attempt, the others wait behind it. A failed attempt is tried again after a backoff that doubles up to a
ceiling; after `max_attempts`, or at once when the handler says the failure is permanent, the row is `dead`
(dead-letter) with its last error, and `replay` puts it back. Several workers (one per API process) can run
side by side: a row is claimed by a conditional update, and a claim left by a worker that died expires after
`lease_seconds`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select

from hub.store.db import WriterLock
from hub.store.statements import OUTBOX

log = logging.getLogger("hub.outbox")

Handler = Callable[[dict[str, Any]], None]


def rows(engine: Engine, status: str | None = None, topic: str | None = None, limit: int | None = 50) -> list[Any]:
    """The outbox's rows, newest first: for `hub outbox list` and replay."""
    query = select(OUTBOX).order_by(OUTBOX.c.id.desc())
    if status:
        query = query.where(OUTBOX.c.status == status)
    if topic:
        query = query.where(OUTBOX.c.topic == topic)
    with engine.connect() as conn:
        return list(conn.execute(query.limit(limit)).all())


class PermanentFailure(Exception):
    """A delivery that cannot succeed by trying again (the receiver refuses the content)."""


@dataclass
class OutboxWorker:
    engine: Engine
    handlers: dict[str, Handler]
    interval_seconds: float = 1.0
    max_attempts: int = 10
    first_delay_seconds: float = 2.0
    max_delay_seconds: float = 600.0
    lease_seconds: float = 300.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self._lock = WriterLock(self.engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one round ---------------------------------------------------------------------------------------

    def run_once(self, limit: int = 100) -> int:
        """Make the deliveries that are due now; the number made (delivered or failed)."""
        done = 0
        for row in self._due(limit):
            if not self._claim(row):
                continue
            done += 1
            try:
                self.handlers[row.topic](row.payload)
            except PermanentFailure as exc:
                self._finish(row.id, "dead", row.attempts + 1, str(exc))
            except Exception as exc:  # any other failure: try again later
                attempts = row.attempts + 1
                if attempts >= self.max_attempts:
                    self._finish(row.id, "dead", attempts, str(exc))
                else:
                    self._finish(row.id, "pending", attempts, str(exc), self._backoff(attempts))
            else:
                self._finish(row.id, "delivered", row.attempts + 1, None)
        return done

    def _due(self, limit: int) -> list[Any]:
        """The oldest waiting row of each ordering key, if it is due."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(OUTBOX).where(and_(OUTBOX.c.status.in_(("pending", "sending")),
                                                          OUTBOX.c.topic.in_(list(self.handlers))))
                                .order_by(OUTBOX.c.id).limit(limit * 10)).all()
        first: dict[str, Any] = {}
        for row in rows:
            first.setdefault(row.ordering_key, row)
        now = self.now()
        return [row for row in first.values() if row.next_attempt_at <= now][:limit]

    def _claim(self, row: Any) -> bool:
        """Take the row for this worker until the lease ends; False when another worker took it first."""
        with self._lock, self.engine.begin() as conn:
            taken = conn.execute(OUTBOX.update().where(and_(
                OUTBOX.c.id == row.id, OUTBOX.c.status == row.status,
                OUTBOX.c.next_attempt_at == row.next_attempt_at)).values(
                status="sending", next_attempt_at=self.now() + timedelta(seconds=self.lease_seconds)))
        return taken.rowcount == 1

    def _finish(self, row_id: int, status: str, attempts: int, error: str | None,
                delay: timedelta | None = None) -> None:
        if status == "dead":
            log.error("outbox row %s is dead after %s attempts: %s", row_id, attempts, error)
        with self._lock, self.engine.begin() as conn:
            conn.execute(OUTBOX.update().where(OUTBOX.c.id == row_id).values(
                status=status, attempts=attempts, last_error=error,
                next_attempt_at=self.now() + (delay or timedelta(0))))

    def _backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.max_delay_seconds, self.first_delay_seconds * 2 ** (attempts - 1)))

    def replay(self, row_id: int) -> bool:
        """Put a dead (or delivered) row back to be delivered again now."""
        with self._lock, self.engine.begin() as conn:
            changed = conn.execute(OUTBOX.update().where(and_(OUTBOX.c.id == row_id,
                                                              OUTBOX.c.status.in_(("dead", "delivered"))))
                                   .values(status="pending", attempts=0, next_attempt_at=self.now()))
        return changed.rowcount == 1

    # --- the thread --------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # the database away for a moment: the next round tries again
                log.exception("outbox round failed")
                busy = 0
            if not busy:
                self._stop.wait(self.interval_seconds)
