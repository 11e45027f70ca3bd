"""The parts `hub serve` runs in processes of their own (the MLLP listener, the built-in VDX service, the local
case index, the store writer), kept running: one that dies is started again, after a pause that doubles with each
death in quick succession (from `first_pause` up to a minute), and said in the log; while it is down `/readyz`
says so (`hub.api.health`). The API workers are kept by `hub.api.serving` the same way. A part is a
`subprocess.Popen`, or a multiprocessing child seen through `Spawned` (the store writer).

Why hand-written: uvicorn's and gunicorn's supervisors manage workers of one ASGI app, not these other programs,
and a process manager (systemd, supervisord) would be a second thing to install and configure for what `make run`
starts with one command; this is one thread and a loop over `subprocess.Popen`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from hub.core.metrics import RESTARTS, mark_process_dead

log = logging.getLogger("hub.supervisor")
MAX_PAUSE = 60.0  # seconds between restarts at most
STEADY = 60.0  # a part that ran this long has its pause reset


class Child(Protocol):
    """What the supervisor needs of a process: `subprocess.Popen`'s."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | Any: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int | Any: ...

    def kill(self) -> None: ...


class Spawned:
    """A multiprocessing child as a `Child`."""

    def __init__(self, proc: BaseProcess) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid or 0

    @property
    def returncode(self) -> int | None:
        return self.proc.exitcode

    def poll(self) -> int | None:
        return self.proc.exitcode

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        self.proc.join(timeout)
        if self.proc.exitcode is None:
            raise subprocess.TimeoutExpired("store writer", timeout or 0)
        return self.proc.exitcode

    def kill(self) -> None:
        self.proc.kill()


@dataclass
class Part:
    """A part in a process of its own: `start` makes the process (again)."""

    name: str
    start: Callable[[], Child]
    grace: float = 10.0  # seconds it may take to stop on SIGTERM before it is killed
    proc: Child | None = None
    pause: float = 0.0
    started_at: float = 0.0
    restarts: int = 0
    due: float | None = None  # when it is to be started again


@dataclass
class Supervisor:
    """Keeps `parts` running until `stop`; checks them every `interval` seconds."""

    first_pause: float = 1.0
    interval: float = 0.2
    parts: list[Part] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-supervisor", daemon=True)

    def add(self, part: Part, proc: Child) -> None:
        """A part already started (its first start is the caller's, who waits for it to be ready)."""
        part.proc, part.started_at, part.pause = proc, time.monotonic(), self.first_pause
        self.parts.append(part)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether it still watches its parts (until `stop`)."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            for part in self.parts:
                self._check(part, time.monotonic())

    def _check(self, part: Part, now: float) -> None:
        if part.due is not None:
            if now >= part.due and not self._stopping.is_set():
                part.proc, part.started_at, part.due = part.start(), now, None
                part.restarts += 1
                RESTARTS.labels(part.name).inc()
                log.warning("%s started again (restart %d)", part.name, part.restarts)
            return
        if part.proc is None or part.proc.poll() is None:
            return
        if now - part.started_at > STEADY:
            part.pause = self.first_pause  # it had been running well: a fresh start
        part.due = now + part.pause
        mark_process_dead(part.proc.pid)
        log.error("%s exited (status %s); starting it again in %.1f s", part.name, part.proc.returncode, part.pause)
        part.pause = min(part.pause * 2, MAX_PAUSE)

    def stop(self) -> None:
        """No more restarts; every part stopped, the last added first (the MLLP listener, which may still need
        VDX for the messages it holds, before VDX): SIGTERM, then SIGKILL after its grace."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        for part in reversed(self.parts):
            stop(part.proc, part.grace)


def stop(proc: Child | None, grace: float) -> None:
    """A child stopped: SIGTERM, then after `grace` seconds SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
