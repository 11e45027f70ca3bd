"""`hub serve` as a user runs it: its own process, the built-in VDX service beside it, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hub.api.server_thread import free_port, wait_until_healthy
from hub.hl7v2.mllp import send
from tests.appointments import video_appointment
from tests.flows.test_appointment import FHIR
from tests.flows.test_hl7v2 import CPR as CPR_ADT
from tests.flows.test_hl7v2 import adt

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
        patient = {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": CPR}}
        booked = httpx.post(f"{url}/fhir/Appointment", json=video_appointment(patient=patient), headers=FHIR,
                            timeout=30)
        assert booked.status_code == 201, booked.text
        found = httpx.get(f"{url}/fhir/Appointment", params={"patient:identifier": CPR}).json()
        assert found["total"] == 1
        bad = video_appointment(patient={"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "3213804321"}})
        assert httpx.post(f"{url}/fhir/Appointment", json=bad, headers=FHIR).status_code == 422
        ack = _mllp_send(mllp_port, adt(control_id="SERVE1").encode("iso-8859-1"))
        assert b"MSA|AA|SERVE1" in ack  # the MLLP listener beside the API, on the same store
        stays = httpx.get(f"{url}/fhir/Encounter", params={"patient:identifier": f"urn:oid:1.2.208.176.1.2|{CPR_ADT}"})
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
