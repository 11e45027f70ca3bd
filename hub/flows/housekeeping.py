"""Housekeeping: work no request waits for, run on a timer in each API process.

For now that is settling bookings a stopped process left pending (BookingFlow.settle_pending). Every worker
process runs it; the work is idempotent (a claim is settled only while it is still pending), so two workers
doing it at once do no harm.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("hub.housekeeping")


class HousekeepingFlow:
    """Runs `task` now and then every `interval` seconds on a daemon thread, until `stop`."""

    def __init__(self, task: Callable[[], object], interval: float) -> None:
        self.task, self.interval = task, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.task()
            except Exception:  # housekeeping must outlive a bad round; the next one tries again
                log.exception("housekeeping failed")
            self._stop.wait(self.interval)
