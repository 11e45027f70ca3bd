"""`hub serve` as a user runs it: its own process, the built-in VDX service beside it, JSON logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from hub.api.server_thread import free_port, wait_until_healthy
from tests.appointments import video_appointment
from tests.test_booking_api import FHIR

CPR = "0101804321"


def test_hub_serve_books_and_logs_without_cpr(data_root: Path, tmp_path: Path) -> None:
    (tmp_path / "standards").symlink_to(data_root / "standards")
    port = free_port()
    env = {**os.environ, "HUB_DATA_DIR": str(tmp_path), "HUB_LOG_LEVEL": "DEBUG"}
    env.pop("HUB_VDX_URL", None)
    env.pop("HUB_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode in (0, -signal.SIGINT)
    log = stderr.decode()
    assert "built-in VDX-compatible service" in log
    assert CPR not in log and "3213804321" not in log
    assert "010180-****" in log  # the booking's log line names the patient, masked
    for line in log.splitlines():
        if line.startswith("{"):
            json.loads(line)  # structured logs: one JSON object a line
