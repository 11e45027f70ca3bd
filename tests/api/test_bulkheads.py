"""A hung VDX holds only the bookings: `$validate` still answers, bookings beyond the bulkhead are 503 at once, and
after repeated failures the circuit opens (shown by `/readyz`) and bookings are refused without calling VDX."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.api.app import create_app
from hub.api.server_thread import ServerThread
from tests.appointments import video_appointment
from tests.conftest import hub_settings
from tests.flows.test_appointment import FHIR
from tests.tokens import bearer


class HungService:
    """Accepts connections and never answers (until closed): a VDX that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.accepted = threading.Condition()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.accepted:
                self.held.append(conn)
                self.accepted.notify_all()

    def wait_for(self, connections: int, deadline: float = 30.0) -> None:
        with self.accepted:
            assert self.accepted.wait_for(lambda: len(self.held) >= connections, deadline), len(self.held)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept: close alone would leave it listening
        self.sock.close()
        self.thread.join(5)
        for conn in self.held:
            conn.close()


@pytest.fixture
def hung() -> Iterator[HungService]:
    service = HungService()
    yield service
    service.close()


def _hub(data_root: Path, tmp_path: Path, hung: HungService, **overrides: Any) -> ServerThread:
    # the hung service hangs for tokens too: the hub asks it for none (its guard is what is under test)
    settings = hub_settings(data_root, tmp_path, f"http://127.0.0.1:{hung.port}", vdx_token_url=None, **overrides)
    srv = ServerThread(create_app(settings))
    srv.settings = settings  # type: ignore[attr-defined]
    return srv


def _client(srv: Any, timeout: float) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=timeout, headers=bearer(srv.url, srv.settings))


def test_a_hung_vdx_holds_only_the_bookings(data_root: Path, tmp_path: Path, hung: HungService) -> None:
    # VDX's timeout long enough that the held bookings are still held while the test looks around.
    with _hub(data_root, tmp_path, hung, vdx_timeout_seconds=120, vdx_concurrency=2) as srv, \
            ThreadPoolExecutor(8) as pool, _client(srv, 150) as client:
        held = [pool.submit(client.post, "/fhir/Appointment", json=video_appointment(), headers=FHIR)
                for _ in range(2)]
        hung.wait_for(2)  # both VDX slots held by a booking each
        queued = [pool.submit(client.post, "/fhir/Appointment", json=video_appointment(), headers=FHIR)
                  for _ in range(2)]
        bulkhead = srv.server.config.app.state.vdx_bulkhead
        deadline = time.monotonic() + 30
        while bulkhead.admission.value:  # the two queued are in (waiting for a VDX thread)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # the queue is as long as the bulkhead: a fifth booking is refused at once, the four wait
        beyond = client.post("/fhir/Appointment", json=video_appointment(), headers=FHIR)
        assert beyond.status_code == 503 and beyond.headers["Retry-After"] == "30"
        assert beyond.json()["issue"][0]["code"] == "transient"
        validated = client.post("/fhir/Appointment/$validate", json=video_appointment(), headers=FHIR)
        assert validated.status_code == 200 and validated.json()["resourceType"] == "OperationOutcome"
        assert client.get("/healthz").status_code == 200
        assert not any(f.done() for f in held + queued)  # still held: what answered did not wait for them
        hung.close()  # VDX goes away: the held bookings are told it is unavailable
        answers = [f.result() for f in held + queued]
        assert {a.status_code for a in answers} == {503}
        assert all(str(hung.port) not in a.text for a in answers)


def test_repeated_failures_open_the_circuit(data_root: Path, tmp_path: Path, hung: HungService) -> None:
    with _hub(data_root, tmp_path, hung, vdx_timeout_seconds=0.2, circuit_failures=3,
              circuit_reset_seconds=600) as srv, _client(srv, 60) as client:
        for _ in range(3):  # each waits out VDX's timeout
            r = client.post("/fhir/Appointment", json=video_appointment(), headers=FHIR)
            assert r.status_code == 503
        asked = len(hung.held)
        refused = client.post("/fhir/Appointment", json=video_appointment(), headers=FHIR)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
        assert len(hung.held) == asked  # VDX not asked again while the circuit is open
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["circuits"]["vdx"]["circuit"] == "open"
        assert "circuit open" in ready.json()["checks"]["vdx"]
