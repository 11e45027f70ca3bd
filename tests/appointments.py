"""Video appointments for tests, built from FUT's own example `videoappointment01`."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import fut_appointment

EOJ_SYSTEM = "urn:oid:1.2.208.176.1.2.99.eoj"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def video_appointment(start: datetime | None = None, minutes: int = 30, source_id: str | None = None,
                      patient: dict[str, Any] | None = None) -> dict[str, Any]:
    """FUT's example made bookable: one patient, the server-set room fields removed, our own identifier."""
    appt = copy.deepcopy(fut_appointment())
    start = start or datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    appt.pop("id")
    appt.pop("meta")
    server_set = ("meeting-url", "vmr-uri", "host-pin-code", "guest-pin-code")
    appt["extension"] = [e for e in appt["extension"] if not e["url"].endswith(server_set)]
    appt["identifier"] = [{"system": EOJ_SYSTEM, "value": source_id or str(uuid.uuid4())}]
    appt["start"], appt["end"] = iso(start), iso(start + timedelta(minutes=minutes))
    appt["participant"] = appt["participant"][:3]
    if patient is not None:
        appt["participant"][2]["actor"] = patient
    return appt
