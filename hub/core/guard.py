"""A bulkhead and a circuit breaker around one downstream (VDX, the case index, an outbox receiver).

Why: a downstream that accepts connections and never answers held every request thread of the API, so endpoints
that never call it waited too. A `Guard` bounds how many calls may be out to its downstream at once (callers
beyond that wait at most `queue_seconds`, then are refused), and opens a circuit after `Circuit.failures` failed
calls in a row, refusing every call at once for `Circuit.reset_seconds`; then one trial call decides
(half-open). Refusals are `Rejected`, which callers turn into their own "unavailable" answer (a 503 with
`Retry-After`, a delivery tried later). State is per process, like the connection pools it protects.

Hand-written (some forty lines): pybreaker, the well-known library, holds its lock for the whole guarded call,
so calls through one breaker run one at a time — measured here as a second booking waiting for the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from hub.core.metrics import CALLS

T = TypeVar("T")
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass(frozen=True)
class Circuit:
    """When a circuit opens (`failures` in a row) and how long it stays open before a trial call."""

    failures: int = 5
    reset_seconds: float = 30.0


class Rejected(Exception):
    """The call was not made: every slot busy, or the circuit open."""


class Guard:
    """Thread-safe; one per downstream and process."""

    def __init__(self, name: str, *, concurrency: int = 8, queue_seconds: float = 1.0, circuit: Circuit = Circuit(),
                 harmless: Iterable[type[BaseException]] = ()) -> None:
        """`harmless`: exceptions that are the downstream's answer, not its failure (a refusal, a 4xx)."""
        self.name = name
        self.concurrency = concurrency
        self.queue_seconds = queue_seconds
        self.circuit = circuit
        self.harmless = tuple(harmless)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()  # held for bookkeeping only, never across a call
        self._busy = 0
        self._failures = 0
        self._opened: float | None = None  # monotonic time the circuit opened
        self._trial = False  # a half-open trial call is out

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` within the bulkhead and circuit; each call's time and outcome go to the metrics."""
        try:
            trial = self._admit()
        except Rejected:
            CALLS.labels(self.name, "rejected").observe(0)
            raise
        if not self._slots.acquire(timeout=self.queue_seconds):
            if trial:
                with self._lock:
                    self._trial = False
            CALLS.labels(self.name, "rejected").observe(0)
            raise Rejected(f"{self.name}: all {self.concurrency} connections busy")
        with self._lock:
            self._busy += 1
        started, outcome = time.perf_counter(), "ok"
        try:
            result = fn(*args)
        except self.harmless:
            outcome = "answered"
            self._succeeded()
            raise
        except BaseException:
            outcome = "failed"
            self._failed(trial)
            raise
        else:
            self._succeeded()
            return result
        finally:
            with self._lock:
                self._busy -= 1
            self._slots.release()
            CALLS.labels(self.name, outcome).observe(time.perf_counter() - started)

    def _admit(self) -> bool:
        """Refuse while the circuit is open; let one trial call through when its pause is over (True then)."""
        with self._lock:
            if self._opened is None:
                return False
            if self._trial or time.monotonic() < self._opened + self.circuit.reset_seconds:
                raise Rejected(f"{self.name}: circuit open after repeated failures")
            self._trial = True
            return True

    def _succeeded(self) -> None:
        with self._lock:
            self._failures, self._opened, self._trial = 0, None, False

    def _failed(self, trial: bool) -> None:
        with self._lock:
            self._failures += 1
            if trial or self._failures >= self.circuit.failures:
                self._opened, self._trial = time.monotonic(), False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened is None:
                return CLOSED
            return HALF_OPEN if self._trial else OPEN

    def status(self) -> dict[str, object]:
        """For `/readyz` and the metrics: the circuit, the calls out now and the limit, the failures in a row."""
        return {"circuit": self.state, "busy": self._busy, "limit": self.concurrency, "failures": self._failures}
