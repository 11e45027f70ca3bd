"""Run the API in one process, or in several worker processes that share the port.

With more than one worker each process binds its own listening socket with SO_REUSEPORT, so the kernel spreads
incoming connections over the workers. (Workers sharing one inherited socket let whichever process wakes first
accept every keep-alive connection, which leaves the others idle.)
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
from types import FrameType
from typing import Any

import uvicorn

APP = "hub.api.app:create_app"
STARTUP_FAILED = 3  # a worker's exit status when the app did not start (uvicorn's own)


class NotStarted(RuntimeError):
    """The API did not start (its start-up failed: the log says why)."""


def _config() -> uvicorn.Config:
    return uvicorn.Config(APP, factory=True, log_config=None, access_log=False)


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


def serve(host: str, port: int, workers: int, log_level: str) -> None:
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
    procs = [ctx.Process(target=_worker, args=(host, port, log_level, counts, i), name=f"hub-worker-{i}")
             for i in range(workers)]
    for p in procs:
        p.start()

    stopping = []

    def stop(_sig: int, _frame: FrameType | None) -> None:
        stopping.append(True)
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for p in procs:
        p.join()
        if p.exitcode == STARTUP_FAILED and not stopping:
            stop(signal.SIGTERM, None)  # the others would serve without it
    if any(p.exitcode == STARTUP_FAILED for p in procs):
        raise NotStarted("the API did not start")
