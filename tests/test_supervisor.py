"""`hub.supervisor`: a part that dies is started again, after pauses that double while it keeps dying; stopping
ends the restarts and the part."""

from __future__ import annotations

import subprocess
import sys
import time

from hub.supervisor import Part, Supervisor


def _dying() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])


def _lasting() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def test_a_part_that_keeps_dying_waits_longer_each_time_and_stopping_ends_it() -> None:
    supervisor = Supervisor(first_pause=0.05, interval=0.01)
    part = Part("a failing part", _dying)
    supervisor.add(part, _dying())
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while part.restarts < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert part.restarts >= 3
        assert part.pause >= 0.05 * 2 ** 3  # 0.05, 0.1, 0.2, then 0.4 s before the next
    finally:
        supervisor.stop()
    assert not supervisor.running  # no restart can come after stop
    assert part.proc is not None and part.proc.poll() is not None


def test_stopping_stops_a_part_that_runs() -> None:
    supervisor = Supervisor()
    part = Part("a lasting part", _lasting, grace=5)
    proc = _lasting()
    supervisor.add(part, proc)
    supervisor.start()
    supervisor.stop()
    assert proc.poll() is not None and part.restarts == 0
