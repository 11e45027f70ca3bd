"""Housekeeping: work no request waits for, on a timer, outliving a failing round."""

from __future__ import annotations


def test_housekeeping_runs_on_a_timer_and_outlives_a_failing_round() -> None:
    import threading

    from hub.flows.housekeeping import HousekeepingFlow

    rounds: list[int] = []
    third = threading.Event()

    def task() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("first round fails")
        if len(rounds) == 3:
            third.set()

    keeper = HousekeepingFlow(task, interval=0.01)
    keeper.start()
    assert third.wait(5)
    keeper.stop()
    count = len(rounds)
    assert count >= 3
    threading.Event().wait(0.05)
    assert len(rounds) == count  # stopped means stopped
