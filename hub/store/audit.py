"""The audit trail's store: events appended in batches by one thread (`AuditTrail`), read by organisation.

Why batched: every request makes an event, and a write of its own per request would put one more writer on the
hot path (on SQLite, one more turn at its single write lock). Events are queued as the answers go out and written
every `interval` seconds, or at `stop` — so a process killed with SIGKILL may lose the last fraction of a second
of its events (its bookings, written before they are answered, are not lost).
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, and_, insert, select

from hub.store import models as m
from hub.store.db import WriterLock

AUDIT = cast(Table, m.AuditEventRow.__table__)
log = logging.getLogger("hub.audit")


class AuditTrail:
    def __init__(self, engine: Engine, interval: float = 0.2) -> None:
        self.engine, self.interval = engine, interval
        self._lock = WriterLock(engine)
        self._queue: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-audit", daemon=True)
        self._thread.start()

    def record(self, event: dict[str, Any]) -> None:
        self._queue.put(event)

    def flush(self) -> int:
        """Write what is queued; how many."""
        batch: list[dict[str, Any]] = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if batch:
            with self._lock, self.engine.begin() as conn:
                conn.execute(insert(AUDIT), batch)
        return len(batch)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # the database away for a moment: the events wait for the next round
                log.exception("audit events could not be written")

    def search(self, organisation: str, *, patient: str | None = None, entity: str | None = None,
               agent: str | None = None, since: datetime | None = None, until: datetime | None = None,
               count: int = 100) -> list[Any]:
        """An organisation's own events, newest first."""
        self.flush()  # what this process has queued is seen at once
        clauses = [AUDIT.c.organisation == organisation]
        if patient:
            clauses.append(AUDIT.c.patient == patient)
        if entity:
            clauses.append(AUDIT.c.entity == entity)
        if agent:
            clauses.append(AUDIT.c.client_id == agent)
        if since:
            clauses.append(AUDIT.c.recorded >= since)
        if until:
            clauses.append(AUDIT.c.recorded < until)
        with self.engine.connect() as conn:
            return list(conn.execute(select(AUDIT).where(and_(*clauses)).order_by(AUDIT.c.recorded.desc())
                                     .limit(count)))
