"""Run the API in one process, or in several worker processes that share the port.

With more than one worker each process binds its own listening socket with SO_REUSEPORT, so the kernel spreads
incoming connections over the workers. (Workers sharing one inherited socket let whichever process wakes first
accept every keep-alive connection, which leaves the others idle.) A worker that dies is started again in its
slot; the others go on serving meanwhile.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from hub.core.metrics import RESTARTS, mark_process_dead

log = logging.getLogger("hub.serve")
APP = "hub.api.app:create_app"
STARTUP_FAILED = 3  # a worker's exit status when the app did not start (uvicorn's own)


class NotStarted(RuntimeError):
    """The API did not start (its start-up failed: the log says why)."""


def _config() -> uvicorn.Config:
    from hub.core.config import Settings

    settings = Settings()  # HTTPS directly (HUB_HTTPS_CERT, HUB_HTTPS_KEY), where no proxy terminates TLS
    https = settings.https_cert is not None and settings.https_key is not None
    return uvicorn.Config(APP, factory=True, log_config=None, access_log=False,
                          ssl_certfile=settings.https_cert if https else None,
                          ssl_keyfile=settings.https_key if https else None)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(host: str, port: int, log_level: str, counts: Any, index: int) -> None:
    from hub.api import balance
    from hub.core.logging import configure

    configure(log_level)
    balance.worker_slot = (counts, index)
    server = uvicorn.Server(_config())
    server.run(sockets=[_listen(host, port)])
    if not server.started:
        sys.exit(STARTUP_FAILED)


def serve(host: str, port: int, workers: int, log_level: str, restart_pause: float = 1.0) -> None:
    """Serve until interrupted; `NotStarted` when the app did not start."""
    if workers <= 1:
        config = _config()
        config.host, config.port = host, port
        server = uvicorn.Server(config)
        server.run()
        if not server.started:
            raise NotStarted("the API did not start")
        return
    ctx = multiprocessing.get_context("spawn")
    counts = ctx.Array("i", workers, lock=False)  # open connections per worker (hub.api.balance)

    def start(i: int) -> BaseProcess:
        p = ctx.Process(target=_worker, args=(host, port, log_level, counts, i), name=f"hub-worker-{i}")
        p.start()
        return p

    procs = [start(i) for i in range(workers)]
    stopping: list[bool] = []

    def stop(_sig: int, _frame: FrameType | None) -> None:
        stopping.append(True)
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    _keep_running(procs, start, stopping, restart_pause)
    for p in procs:
        p.join()
    if any(p.exitcode == STARTUP_FAILED for p in procs):
        raise NotStarted("the API did not start")


def _keep_running(procs: list[BaseProcess], start: Callable[[int], BaseProcess], stopping: list[bool],
                  first_pause: float) -> None:
    """Until stopped: a worker that dies is started again (its slot, after a pause doubling while it keeps dying,
    as `hub.supervisor` does for the other parts); one whose start-up failed stops them all."""
    pauses = [first_pause] * len(procs)
    while not stopping:
        wait([p.sentinel for p in procs], timeout=1.0)
        for i, p in enumerate(procs):
            if stopping or p.is_alive():
                continue
            if p.exitcode == STARTUP_FAILED:
                stopping.append(True)
                for other in procs:
                    if other.is_alive():
                        other.terminate()
                return
            log.error("API worker %d exited (status %s); starting it again in %.1f s", i, p.exitcode, pauses[i])
            mark_process_dead(p.pid or 0)
            deadline = time.monotonic() + pauses[i]
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            if stopping:
                return
            procs[i] = start(i)
            pauses[i] = min(pauses[i] * 2, 60.0)
            RESTARTS.labels(f"API worker {i}").inc()
