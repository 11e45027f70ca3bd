"""`GET /metrics`: the hub's Prometheus metrics as text (`hub.core.metrics` says what is counted where).

Under `hub serve` the counters and histograms of every process (API workers, MLLP listener, store writer,
supervisor) are added up from their folder (prometheus_client's multiprocess mode); run in-process (tests), the
process's own registry serves. States are read at each scrape: outbox rows by topic and status and the age of
the oldest row due, acknowledgements awaited (messages converted and passed on whose receiver has not answered),
and this process's circuits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from hub.core.metrics import FOLDER_VAR
from hub.store.statements import CONVERSIONS, OUTBOX

router = APIRouter(tags=["operations"])
CIRCUIT_VALUES = {"closed": 0, "half-open": 1, "open": 2}


class States(Collector):
    """What is read when asked: from the database, and the circuits of this process."""

    def __init__(self, sessions: sessionmaker[Session], circuits: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self.sessions = sessions
        self.circuits = circuits

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = GaugeMetricFamily("hub_outbox_rows", "Outbox rows by topic and status", labels=["topic", "status"])
        oldest = GaugeMetricFamily("hub_outbox_oldest_due_seconds", "How long the oldest row due has waited, by "
                                   "topic", labels=["topic"])
        awaited = GaugeMetricFamily("hub_acknowledgements_awaited", "Converted messages passed on whose receiver "
                                    "has not answered yet, by direction", labels=["direction"])
        now = datetime.now(UTC)
        with self.sessions() as s:
            for topic, status, count in s.execute(select(OUTBOX.c.topic, OUTBOX.c.status, func.count())
                                                  .group_by(OUTBOX.c.topic, OUTBOX.c.status)):
                rows.add_metric([topic, status], count)
            for topic, first in s.execute(select(OUTBOX.c.topic, func.min(OUTBOX.c.next_attempt_at))
                                          .where(OUTBOX.c.status == "pending", OUTBOX.c.next_attempt_at <= now)
                                          .group_by(OUTBOX.c.topic)):
                first = first if first.tzinfo else first.replace(tzinfo=UTC)
                oldest.add_metric([topic], max(0.0, (now - first).total_seconds()))
            for direction, count in s.execute(select(CONVERSIONS.c.direction, func.count())
                                              .where(CONVERSIONS.c.answered_at.is_(None))
                                              .group_by(CONVERSIONS.c.direction)):
                awaited.add_metric([direction], count)
        circuit = GaugeMetricFamily("hub_circuit_state", "Each downstream's circuit in this process: 0 closed, 1 "
                                    "half-open, 2 open", labels=["downstream"])
        busy = GaugeMetricFamily("hub_downstream_calls_in_flight", "Calls out to each downstream now",
                                 labels=["downstream"])
        for name, status in self.circuits().items():
            circuit.add_metric([name], CIRCUIT_VALUES.get(str(status["circuit"]), 0))
            busy.add_metric([name], float(status["busy"]))
        yield from (rows, oldest, awaited, circuit, busy)


def exposition(sessions: sessionmaker[Session], circuits: Callable[[], dict[str, dict[str, Any]]]) -> bytes:
    registry = CollectorRegistry()
    registry.register(States(sessions, circuits))
    text = generate_latest(registry)
    if os.environ.get(FOLDER_VAR):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)  # type: ignore[no-untyped-call]
        return generate_latest(processes) + text
    return generate_latest(REGISTRY) + text


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format (version 0.0.4)."""
    body = await run_in_threadpool(exposition, request.app.state.services.sessions,
                                   request.app.state.background.circuits)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
