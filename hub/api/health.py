"""Readiness: whether the hub can do its work now (`/readyz`), beside liveness (`/healthz`: the process answers).

Each part the API depends on is checked within a short timeout, concurrently: the database (a `SELECT 1`), the
store writer (its socket, when `hub serve` runs one), the MLLP listener `hub serve` runs beside the API, VDX and
the case index (each reachable over TCP, and its circuit not open: `hub.core.guard`). Not ready is `503` with
every check's result, so an orchestrator stops sending traffic and an operator sees which part is missing. The
answer also lists every circuit of the process (VDX, the case index, each outbox receiver): a receiver's open
circuit is shown but does not make the hub unready, since everything else still works.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Client
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from hub.core.config import Settings
from hub.store.writer import ADDRESS_VAR, KEY_VAR

TIMEOUT = 1.0  # seconds for each check
MLLP_VAR = "HUB_MLLP_ADDRESS"  # host:port of the listener `hub serve` runs beside the API


def _reachable(address: tuple[str, int]) -> Callable[[], None]:
    def check() -> None:
        with socket.create_connection(address, timeout=TIMEOUT):
            pass
    return check


def _url_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def _closed(circuits: dict[str, dict[str, object]], name: str, check: Callable[[], None]) -> Callable[[], None]:
    def guarded() -> None:
        state = circuits.get(name, {}).get("circuit")
        if state == "open":
            raise ConnectionRefusedError("circuit open after repeated failures")
        check()
    return guarded


def checks(settings: Settings, sessions: sessionmaker[Session],
           circuits: dict[str, dict[str, object]]) -> dict[str, Callable[[], None]]:
    """What readiness checks: each a function that raises when its part is not there."""

    def database() -> None:
        with sessions() as session:
            session.execute(text("SELECT 1"))

    def store_writer() -> None:  # connected and authenticated, as a worker does (a killed writer leaves its socket)
        Client(os.environ[ADDRESS_VAR], family="AF_UNIX", authkey=bytes.fromhex(os.environ[KEY_VAR])).close()

    found: dict[str, Callable[[], None]] = {"database": database}
    if os.environ.get(ADDRESS_VAR):
        found["store writer"] = store_writer
    if mllp := os.environ.get(MLLP_VAR):
        host, _, port = mllp.rpartition(":")
        found["mllp listener"] = _reachable((host, int(port)))
    if settings.vdx_url:
        found["vdx"] = _closed(circuits, "vdx", _reachable(_url_address(settings.vdx_url)))
    if settings.sdi_enabled and settings.sdi_url:
        found["case index"] = _closed(circuits, "case index", _reachable(_url_address(settings.sdi_url)))
    return found


def readiness(settings: Settings, sessions: sessionmaker[Session],
              circuits: dict[str, dict[str, object]]) -> tuple[bool, dict[str, str]]:
    """(ready, each check's result: `ok` or why not)."""
    found = checks(settings, sessions, circuits)

    def run(check: Callable[[], None]) -> str:
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure is "not ready", said in its own words
            return f"{type(exc).__name__}: {exc}"[:200]
        return "ok"

    with ThreadPoolExecutor(len(found)) as pool:
        results = dict(zip(found, pool.map(run, found.values()), strict=True))
    return all(r == "ok" for r in results.values()), results
