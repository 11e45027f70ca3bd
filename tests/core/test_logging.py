"""Logs are JSON, and CPR numbers never appear in them in clear."""

from __future__ import annotations

import json
import logging

from hub.core import cpr
from hub.core.logging import JsonFormatter


def test_cpr_masking_in_text_and_logs() -> None:
    assert cpr.mask("0101801234") == "010180-****"
    assert cpr.mask_text("patient 0101801234 and 020290-4321") == "patient 010180-**** and 020290-****"
    record = logging.LogRecord("t", logging.INFO, "f", 1, "booking for %s", ("0101801234",), None)
    record.cpr = "010180-1234"
    line = JsonFormatter().format(record)
    assert "0101801234" not in line and "1234" not in line
    assert json.loads(line)["message"] == "booking for 010180-****"
