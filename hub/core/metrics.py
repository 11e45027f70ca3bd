"""The hub's Prometheus metrics (prometheus_client), defined once here and served at `/metrics` (`hub.api.metrics`).

Counted where it happens, in whichever process it happens: messages as the store writes them (`hub.store.db`,
also in the store writer and the MLLP listener), requests by the access log, calls to VDX, the case index and
each outbox receiver by their guard (`hub.core.guard`), restarts by the supervisor. `hub serve` runs its parts as
processes, so it points `PROMETHEUS_MULTIPROC_DIR` at a folder of its own (`use_folder`), each process writes its
values there, and `/metrics` adds them up (prometheus_client's multiprocess mode). What is a state rather than an
event — outbox rows by topic and status, the oldest due row, acknowledgements awaited, circuits — is read when
`/metrics` is asked.

Every metric has labels, so a process's values are made at their first use: after `use_folder` has chosen where
they go.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import Counter, Histogram, values

FOLDER_VAR = "PROMETHEUS_MULTIPROC_DIR"

MESSAGES = Counter("hub_messages", "Messages stored in the message log, by channel, direction and outcome",
                   ["channel", "direction", "outcome"])
REQUESTS = Histogram("hub_http_request_duration_seconds", "HTTP requests answered, by method, route and status",
                     ["method", "route", "status"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
CALLS = Histogram("hub_downstream_call_duration_seconds", "Calls to VDX, the case index and outbox receivers, by "
                  "downstream and outcome (ok, answered: refused by it, failed, rejected: not made)",
                  ["downstream", "outcome"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RESTARTS = Counter("hub_part_restarts", "Parts of hub serve started again after they died", ["part"])


def use_folder(folder: Path) -> None:
    """This process and the processes it starts write their values under `folder`, emptied first (`hub serve`)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[FOLDER_VAR] = str(folder)
    # prometheus_client reads the variable once, at import; the metrics' values are made after this
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def mark_process_dead(pid: int) -> None:
    """A part that ended: its live gauges go (prometheus_client's multiprocess clean-up); its counters stay."""
    if os.environ.get(FOLDER_VAR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
