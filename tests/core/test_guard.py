"""The guard: calls beyond the bulkhead refused, the circuit opened by failures in a row and closed by a trial."""

from __future__ import annotations

import threading
import time

import pytest

from hub.core.guard import Circuit, Guard, Rejected


def _fail() -> None:
    raise OSError("down")


def test_failures_in_a_row_open_the_circuit_and_a_trial_closes_it() -> None:
    guard = Guard("x", circuit=Circuit(failures=2, reset_seconds=0.05), harmless=(KeyError,))
    for _ in range(3):  # the downstream's own refusals are answers, not failures
        with pytest.raises(KeyError):
            guard.call(lambda: {}["k"])
    with pytest.raises(OSError):
        guard.call(_fail)
    assert guard.state == "closed"
    with pytest.raises(OSError):
        guard.call(_fail)
    assert guard.state == "open"
    called = []
    with pytest.raises(Rejected, match="circuit open"):
        guard.call(called.append, 1)
    assert called == []
    deadline = time.monotonic() + 10
    while True:  # the pause over, one trial goes through
        try:
            assert guard.call(lambda: 5) == 5
            break
        except Rejected:
            assert time.monotonic() < deadline
    assert guard.state == "closed" and guard.status()["failures"] == 0


def test_a_failed_trial_opens_the_circuit_again() -> None:
    guard = Guard("x", circuit=Circuit(failures=1, reset_seconds=0.01))
    with pytest.raises(OSError):
        guard.call(_fail)
    deadline = time.monotonic() + 10
    while True:
        try:
            guard.call(_fail)
        except Rejected:
            assert time.monotonic() < deadline
            continue
        except OSError:
            break
    assert guard.state == "open"


def test_calls_beyond_the_bulkhead_are_refused_and_the_others_run_side_by_side() -> None:
    guard = Guard("x", concurrency=2, queue_seconds=0)
    release = threading.Event()
    both = threading.Barrier(3)

    def hold() -> None:
        both.wait(10)
        release.wait(10)

    threads = [threading.Thread(target=guard.call, args=(hold,)) for _ in range(2)]
    for t in threads:
        t.start()
    both.wait(10)  # both calls inside the guard at once: it does not serialise them
    assert guard.status()["busy"] == 2
    with pytest.raises(Rejected, match="busy"):
        guard.call(lambda: None)
    release.set()
    for t in threads:
        t.join(10)
    assert guard.status()["busy"] == 0 and guard.state == "closed"
