"""Housekeeping: work no request waits for, run on a timer in each API process.

Settling bookings a stopped process left pending (BookingFlow.settle_pending) and letters waiting too long. Every
worker process of every hub instance has the timer, but a round runs in one of them at a time (`exclusive`: an
advisory lock on PostgreSQL, a file lock on SQLite); the others skip it. The work is idempotent all the same (a
claim is settled only while it is still pending).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

log = logging.getLogger("hub.housekeeping")


class HousekeepingFlow:
    """Runs `task` now and then every `interval` seconds on a daemon thread, until `stop`."""

    def __init__(self, task: Callable[[], object], interval: float,
                 exclusive: Callable[[], AbstractContextManager[bool]] = lambda: nullcontext(True)) -> None:
        self.task, self.interval, self.exclusive = task, interval, exclusive
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def run_once(self) -> bool:
        """One round, unless another process is doing one (False then)."""
        with self.exclusive() as mine:
            if mine:
                self.task()
            return mine

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # housekeeping must outlive a bad round; the next one tries again
                log.exception("housekeeping failed")
            self._stop.wait(self.interval)
