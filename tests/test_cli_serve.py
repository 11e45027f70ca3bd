"""`hub serve` as a user runs it: its own process, the built-in VDX service beside it, JSON logs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.api.server_thread import free_port, wait_until_healthy
from hub.core.config import Settings
from hub.hl7v2.mllp import send
from tests.appointments import video_appointment
from tests.flows.test_appointment import FHIR
from tests.flows.test_hl7v2 import CPR as CPR_ADT
from tests.flows.test_hl7v2 import adt
from tests.tokens import bearer, register

CPR = "0101804321"


def test_hub_serve_books_and_logs_without_cpr(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "standards").symlink_to(data_root / "standards")
    port = free_port()
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "HUB_LOG_LEVEL": "DEBUG"}
    env.pop("HUB_VDX_URL", None)
    env.pop("HUB_DATABASE_URL", None)
    mllp_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port), "--workers", "2",
                             "--mllp-port", str(mllp_port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/healthz", proc)
        auth = _auth(url, tmp_path)
        patient = {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": CPR}}
        booked = httpx.post(f"{url}/fhir/Appointment", json=video_appointment(patient=patient),
                            headers={**FHIR, **auth}, timeout=30)
        assert booked.status_code == 201, booked.text
        found = httpx.get(f"{url}/fhir/Appointment", params={"patient:identifier": CPR}, headers=auth).json()
        assert found["total"] == 1
        bad = video_appointment(patient={"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "3213804321"}})
        assert httpx.post(f"{url}/fhir/Appointment", json=bad, headers={**FHIR, **auth}).status_code == 422
        ack = _mllp_send(mllp_port, adt(control_id="SERVE1").encode("iso-8859-1"))
        assert b"MSA|AA|SERVE1" in ack  # the MLLP listener beside the API, on the same store
        stays = httpx.get(f"{url}/fhir/Encounter", headers=auth,
                          params={"patient:identifier": f"urn:oid:1.2.208.176.1.2|{CPR_ADT}"})
        assert stays.json()["total"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGINT)
    log = stderr.decode()
    assert "built-in VDX-compatible service" in log
    assert CPR not in log and "3213804321" not in log and CPR_ADT not in log
    assert "010180-****" in log  # the booking's log line names the patient, masked
    for line in log.splitlines():
        if line.startswith("{"):
            json.loads(line)  # structured logs: one JSON object a line


def _auth(url: str, data: Path) -> dict[str, str]:
    """A new client's token for the `hub serve` at `url` on the data folder `data` (its SQLite database)."""
    return bearer(url, Settings(data_dir=data, database_url=None))


def _mllp_send(port: int, payload: bytes) -> bytes:
    """Send once the listener is up (it starts beside the API, in its own process)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return send("127.0.0.1", port, payload)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (Linux's /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _serve(tmp_path: Path, port: int, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`hub serve` on `port` with the data in `tmp_path`, the built-in services and SQLite; `env` adds HUB_*."""
    environment = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "HUB_LOG_LEVEL": "WARNING",
                   **{f"HUB_{k.upper()}": v for k, v in env.items()}}
    environment.pop("HUB_VDX_URL", None)
    environment.pop("HUB_DATABASE_URL", None)
    return subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port), *args], env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class _Load:
    """Bookings and HL7 v2 messages sent without pause from threads of their own, until `stop`."""

    def __init__(self, url: str, mllp_port: int, auth: dict[str, str]) -> None:
        self.auth = auth
        self.statuses: list[int | str] = []
        self.answered = threading.Condition()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._book, args=(url,)) for _ in range(3)]
        self.threads.append(threading.Thread(target=self._mllp, args=(mllp_port,)))
        for t in self.threads:
            t.start()

    def _note(self, status: int | str) -> None:
        with self.answered:
            self.statuses.append(status)
            self.answered.notify_all()

    def _book(self, url: str) -> None:
        with httpx.Client(base_url=url, timeout=30, headers=self.auth) as client:
            while not self._stop.is_set():
                try:
                    self._note(client.post("/fhir/Appointment", json=video_appointment(), headers=FHIR).status_code)
                except httpx.HTTPError:
                    return  # the API has stopped taking connections

    def _mllp(self, port: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                ack = send("127.0.0.1", port, adt(control_id=f"LOAD{n}").encode("iso-8859-1"))
            except OSError:
                return
            self._note(segments_of(ack)["MSA"][1])

    def wait_for_answers(self, count: int) -> None:
        with self.answered:
            assert self.answered.wait_for(lambda: len(self.statuses) >= count, 60), self.statuses

    def stop(self) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(60)


def segments_of(ack: bytes) -> dict[str, list[str]]:
    return {line[:3]: line.split("|") for line in ack.decode("iso-8859-1").split("\r") if line}


def test_sigterm_stops_every_part_frees_the_ports_and_a_restart_serves_again(data_root: Path, tmp_path: Path) -> None:
    """As systemd, Docker and Kubernetes stop a service: SIGTERM, one worker (the default)."""
    (tmp_path / "standards").symlink_to(data_root / "standards")
    port, mllp_port = free_port(), free_port()
    for round_ in ("first", "restart"):
        proc = _serve(tmp_path, port, "--mllp-port", str(mllp_port))
        load = None
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            ack = _mllp_send(mllp_port, adt(control_id=f"TERM-{round_}").encode("iso-8859-1"))
            assert f"MSA|AA|TERM-{round_}".encode() in ack  # this run's own listener answers
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text  # every part there: the database, the store writer, …
            assert set(ready.json()["checks"]) >= {"database", "store writer", "mllp listener", "vdx", "case index"}
            parts = _descendants(proc.pid)
            assert len(parts) >= 3  # the VDX service, the store writer, the MLLP listener, …
            url = f"http://127.0.0.1:{port}"
            load = _Load(url, mllp_port, _auth(url, tmp_path))  # bookings and HL7 v2 going on when it stops
            load.wait_for_answers(5)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
            if load is not None:
                load.stop()
        assert proc.returncode == 0, stderr.decode()[-2000:]
        # what was answered was answered in full (never a 5xx), the rest refused at the door
        assert load is not None and load.statuses and set(load.statuses) <= {201, 202, "AA"}, load.statuses
        deadline = time.monotonic() + 30
        while any(_running(p) for p in parts) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in parts if _running(p)] == []
        for taken in (port, mllp_port):
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", taken))  # free again


def test_a_port_in_use_is_one_line_and_a_failed_start(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "standards").symlink_to(data_root / "standards")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        busy = other.getsockname()[1]
        for port, mllp_port in ((busy, free_port()), (free_port(), busy)):
            proc = _serve(tmp_path, port, "--mllp-port", str(mllp_port))
            _, stderr = proc.communicate(timeout=60)
            lines = [line for line in stderr.decode().splitlines() if not line.startswith("{")]
            assert proc.returncode == 1
            assert lines == [f"error: cannot listen on 127.0.0.1:{busy} (Address already in use): is another hub "
                             "running there?"]


@pytest.mark.parametrize(("setting", "value", "said"), [
    ("HUB_SDI_URL", "http://127.0.0.1:9/sdi", "error: HUB_SDI_CLASSES is required with HUB_SDI_URL"),
    ("HUB_DATABASE_URL", "postgresql+psycopg://hub:s3cret@127.0.0.1:1/hub",
     "error: HUB_DATABASE_URL postgresql+psycopg://hub:***@127.0.0.1:1/hub cannot be used: "),
    ("HUB_DATA_DIR", "never-synced", "error: the standards store "),
])
def test_a_bad_setting_is_one_line_and_exit_2_before_any_part_starts(data_root: Path, tmp_path: Path, setting: str,
                                                                     value: str, said: str) -> None:
    if setting != "HUB_DATA_DIR":
        (tmp_path / "standards").symlink_to(data_root / "standards")
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), setting: value}
    if setting == "HUB_DATA_DIR":
        env[setting] = str(tmp_path / value)
    env.pop("HUB_VDX_URL", None)
    run = subprocess.run([sys.executable, "-m", "hub", "serve", "--port", str(free_port()), "--mllp-port", "0"],
                         env=env, capture_output=True, timeout=60, check=False)
    lines = run.stderr.decode().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith(said), lines
    assert "s3cret" not in run.stderr.decode()  # a password is never said


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _listens(pid: int, port: int) -> bool:
    """Whether `pid` holds a socket listening on `port` (Linux's /proc: an API worker, not the store writer)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    listening.add(f"socket:[{fields[9]}]")
    try:
        return any(os.readlink(fd) in listening for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def _until(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_a_part_that_dies_is_started_again_and_readiness_shows_the_gap(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "standards").symlink_to(data_root / "standards")
    port, mllp_port = free_port(), free_port()
    proc = _serve(tmp_path, port, "--mllp-port", str(mllp_port),
                  restart_pause_seconds="15")  # a gap long enough to be seen
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        _until(lambda: httpx.get(url, timeout=10).status_code == 200, 30, "ready")

        def listener() -> int | None:
            return next((p for p in _descendants(proc.pid) if " hub mllp " in _cmdline(p) and _running(p)), None)

        first = _until(listener, 30, "the MLLP listener")
        os.kill(first, signal.SIGKILL)
        gap = _until(lambda: (r := httpx.get(url, timeout=10)).status_code == 503 and r.json(), 12, "the gap")
        assert gap["checks"]["mllp listener"] != "ok" and gap["checks"]["database"] == "ok"
        _until(lambda: httpx.get(url, timeout=10).status_code == 200, 60, "ready again")
        again = _until(listener, 30, "a new MLLP listener")
        assert again != first
        ack = _mllp_send(mllp_port, adt(control_id="AGAIN").encode("iso-8859-1"))
        assert b"MSA|AA|AGAIN" in ack
        # the restart and the listener's messages, counted in other processes, added up by the API's /metrics
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10,
                      headers=_auth(f"http://127.0.0.1:{port}", tmp_path)).text) for s in family.samples}
        assert samples[("hub_part_restarts_total", (("part", "the MLLP listener"),))] == 1
        assert samples[("hub_messages_total", (("channel", "hl7v2"), ("direction", "in"),
                                               ("outcome", "accepted")))] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "the MLLP listener exited (status -9); starting it again in 15.0 s" in stderr.decode()


def test_an_api_worker_that_dies_is_started_again(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "standards").symlink_to(data_root / "standards")
    port = free_port()
    proc = _serve(tmp_path, port, "--workers", "2", "--mllp-port", "0", sdi_enabled="false")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/healthz", proc)

        def workers() -> list[int]:
            return [p for p in _descendants(proc.pid) if _running(p) and _listens(p, port)]

        first = _until(lambda: (found := workers()) and len(found) == 2 and found, 60, "two API workers")
        os.kill(first[0], signal.SIGKILL)
        again = _until(lambda: (found := workers()) and len(found) == 2 and first[0] not in found and found, 60,
                       "a new API worker")
        assert first[1] in again  # the other went on serving
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "exited (status -9); starting it again" in stderr.decode()


def test_the_store_writer_that_dies_is_started_again(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "standards").symlink_to(data_root / "standards")
    port = free_port()
    proc = _serve(tmp_path, port, "--mllp-port", "0", sdi_enabled="false",
                  restart_pause_seconds="15")  # a gap long enough to be seen
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/healthz", proc)

        def writer() -> int | None:  # the one multiprocessing child of a one-worker hub
            return next((p for p in _descendants(proc.pid) if "spawn_main" in _cmdline(p) and _running(p)), None)

        first = _until(writer, 30, "the store writer")
        os.kill(first, signal.SIGKILL)
        gap = _until(lambda: (r := httpx.get(f"{url}/readyz", timeout=10)).status_code == 503 and r.json(), 12,
                     "the gap")
        assert gap["checks"]["store writer"] != "ok"
        # meanwhile a booking is committed by the worker itself (hub.store.writer.WriterClient)
        auth = _auth(url, tmp_path)
        assert httpx.post(f"{url}/fhir/Appointment", json=video_appointment(), headers={**FHIR, **auth},
                          timeout=30).status_code == 201
        _until(lambda: httpx.get(f"{url}/readyz", timeout=10).status_code == 200, 60, "ready again")
        assert _until(writer, 30, "a new store writer") != first
        assert httpx.post(f"{url}/fhir/Appointment", json=video_appointment(), headers={**FHIR, **auth},
                          timeout=30).status_code == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "the store writer exited (status -9); starting it again in 15.0 s" in stderr.decode()


def test_https_directly_for_those_without_a_proxy(data_root: Path, tmp_path: Path,
                                                  pki: dict[str, tuple[Path, Path]]) -> None:
    (tmp_path / "standards").symlink_to(data_root / "standards")
    port = free_port()
    cert, key = pki["server"]
    proc = _serve(tmp_path, port, "--mllp-port", "0", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
                  sdi_enabled="false")
    url = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=pki["ca"][0]), timeout=10) as client:
            _until(lambda: _answers(client, f"{url}/healthz"), 60, "HTTPS")
            client_id, secret = register(Settings(data_dir=tmp_path, database_url=None))
            issued = client.post(f"{url}/auth/token", data={"grant_type": "client_credentials"},
                                 auth=(client_id, secret))
            auth = {"Authorization": f"Bearer {issued.json()['access_token']}"}
            assert client.post(f"{url}/fhir/Appointment", json=video_appointment(),
                               headers={**FHIR, **auth}).status_code == 201
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # no plain HTTP beside it
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False
