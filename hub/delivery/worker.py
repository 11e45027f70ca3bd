"""The outbox worker: deliveries written with the change that caused them, made afterwards, with retries.

Each outbox row has a topic; a handler per topic makes the delivery. Rows with the same `ordering_key` (a
receiver, a case) are delivered in the order they were written: while the oldest of a key waits for its next
attempt, the others wait behind it. A failed attempt is tried again after a backoff that doubles up to a
ceiling; after `max_attempts`, or at once when the handler says the failure is permanent, the row is `dead`
(dead-letter) with its last error, and `replay` puts it back. Several workers (one per API process) can run
side by side, in one hub or in several on one PostgreSQL: rows are claimed in one transaction that locks them
`FOR UPDATE SKIP LOCKED` (a row another worker is claiming is passed over, not waited for) and changes them only
if they are still as read, and a claim left by a worker that died expires after `lease_seconds`.

Each receiver (a topic, or for the topics in `by_key` each ordering key: a MedCom receiver) has its own bulkhead
and circuit (`hub.core.guard`): at most `concurrency` of its deliveries run at once, on its own threads, so one
receiver that hangs holds only its own rows; after repeated failures its circuit opens and its rows wait, untried
and without an attempt counted, until it is tried again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select

from hub.core.guard import Circuit, Guard, Rejected
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
    concurrency: int = 4  # deliveries to one receiver at once
    by_key: frozenset[str] = frozenset()  # topics whose ordering key is the receiver
    circuit: Circuit = field(default_factory=Circuit)

    def __post_init__(self) -> None:
        self._lock = WriterLock(self.engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._receivers: dict[str, tuple[Guard, ThreadPoolExecutor]] = {}
        self._in_flight: dict[str, int] = {}
        self._count = threading.Lock()

    # --- one round ---------------------------------------------------------------------------------------

    def run_once(self, limit: int = 100, *, wait_for: bool = True) -> int:
        """Start the deliveries that are due now, each on its receiver's threads; the number started. With
        `wait_for` (tests, `hub outbox`), return when they are made."""
        started: list[Future[None]] = []
        for row in self._claim_due(limit):
            guard, pool = self._receiver(row)
            started.append(pool.submit(self._deliver_logged, row, guard))
        if wait_for:
            wait(started)
        return len(started)

    def _receiver(self, row: Any) -> tuple[Guard, ThreadPoolExecutor]:
        name = self.receiver_of(row)
        if name not in self._receivers:
            self._receivers[name] = (Guard(f"outbox {name}", concurrency=self.concurrency, queue_seconds=0,
                                           circuit=self.circuit),
                                     ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"outbox {name}"))
        return self._receivers[name]

    def receiver_of(self, row: Any) -> str:
        return f"{row.topic} {row.ordering_key}" if row.topic in self.by_key else str(row.topic)

    def _deliver(self, row: Any, guard: Guard) -> None:
        name = self.receiver_of(row)
        try:
            guard.call(self.handlers[row.topic], row.payload)
        except Rejected as exc:  # the receiver's circuit is open: wait, without an attempt counted
            self._finish(row.id, "pending", row.attempts, str(exc), self._backoff(1))
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
        finally:
            with self._count:
                self._in_flight[name] -= 1

    def _deliver_logged(self, row: Any, guard: Guard) -> None:
        try:
            self._deliver(row, guard)
        except Exception:  # the outcome not written (the database away): the lease ends and the row is tried again
            log.exception("outbox row %s: its outcome could not be recorded", row.id)

    def _claim_due(self, limit: int) -> list[Any]:
        """The oldest waiting row of each ordering key, if it is due and its receiver has room, taken for this
        worker until the lease ends (rows another worker holds or took first are left to it)."""
        with self._lock, self.engine.begin() as conn:
            waiting = conn.execute(select(OUTBOX.c.id, OUTBOX.c.ordering_key, OUTBOX.c.next_attempt_at)
                                   .where(and_(OUTBOX.c.status.in_(("pending", "sending")),
                                               OUTBOX.c.topic.in_(list(self.handlers))))
                                   .order_by(OUTBOX.c.id).limit(limit * 10)).all()
            first: dict[str, Any] = {}
            for row in waiting:
                first.setdefault(row.ordering_key, row)
            now = self.now()
            due = [row.id for row in first.values() if row.next_attempt_at <= now]
            if not due:
                return []
            rows = conn.execute(select(OUTBOX).where(and_(OUTBOX.c.id.in_(due), OUTBOX.c.next_attempt_at <= now,
                                                          OUTBOX.c.status.in_(("pending", "sending"))))
                                .order_by(OUTBOX.c.id).with_for_update(skip_locked=True)).all()
            taken: list[Any] = []
            with self._count:
                for row in rows:
                    name = self.receiver_of(row)
                    if len(taken) < limit and self._in_flight.get(name, 0) < self.concurrency:
                        self._in_flight[name] = self._in_flight.get(name, 0) + 1
                        taken.append(row)
            if taken:
                conn.execute(OUTBOX.update().where(OUTBOX.c.id.in_([row.id for row in taken])).values(
                    status="sending", next_attempt_at=now + timedelta(seconds=self.lease_seconds)))
        return taken

    def receivers(self) -> dict[str, dict[str, object]]:
        """Each receiver's bulkhead and circuit (for `/readyz` and the metrics)."""
        return {name: guard.status() for name, (guard, _) in list(self._receivers.items())}

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
        """No new deliveries; those under way are finished (each bounded by its receiver's timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for _, pool in self._receivers.values():
            pool.shutdown(wait=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once(wait_for=False)
            except Exception:  # the database away for a moment: the next round tries again
                log.exception("outbox round failed")
                busy = 0
            if not busy:
                self._stop.wait(self.interval_seconds)
