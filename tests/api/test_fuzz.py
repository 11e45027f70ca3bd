"""No 500 on any input: a video appointment mutated at random (seeded, so a failure is found again) is answered
with a 4xx OperationOutcome, or booked — never a 5xx — on the endpoints that take a body."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.appointments import video_appointment

TOKENS = [b'"\\ud800"', b'"\\udfff\\ud800"', b"\xed\xa0\x80", b"\xff\xfe", b"[" * 400, b"9" * 400, b"-0.0e999",
          b"NaN", b"Infinity", b"null", b"{}", b"[]", b'""', b"true", b'"\\u0000"', b"1e400", b"\x00", b'"a":',
          b"\xc3", b'{"resourceType":"Bundle"}', b'"http://x/%00"', b'"2030-02-30T25:61:00Z"']


def mutate(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        kind = rng.randrange(5)
        if kind == 0:  # a byte changed
            data[at] = rng.randrange(256)
        elif kind == 1:  # a token put in
            data[at:at] = rng.choice(TOKENS)
        elif kind == 2:  # a value replaced by a token
            end = data.find(b",", at)
            data[at:end if end > at else at + 1] = rng.choice(TOKENS)
        elif kind == 3:  # cut short
            del data[at:]
            if not data:
                data = bytearray(b"{")
        else:  # a stretch repeated
            data[at:at] = data[at:at + rng.randint(1, 200)]
    return bytes(data)


@pytest.mark.parametrize("path", ["/fhir/Appointment", "/fhir/Appointment/$validate", "/fhir/$process-message"])
def test_mutated_bodies_never_get_a_5xx(hub: Any, path: str) -> None:
    rng = random.Random(f"fuzz {path}")
    body = json.dumps(video_appointment()).encode()
    for i in range(150):
        mutated = mutate(body, rng)
        r = hub.client.post(path, content=mutated, headers={"Content-Type": "application/fhir+json"})
        assert r.status_code < 500, (i, r.status_code, r.text[:500], mutated[:2000])
        if r.status_code >= 400:
            assert r.json()["resourceType"] == "OperationOutcome", (i, r.text[:300])
