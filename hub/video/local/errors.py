"""VDX's error answer: `VdxError`, raised anywhere in the service, leaves as a `detailedError` body.

The hub's client acts on the numeric `detailed_error_code` (12, 13, 21 among others), so every refusal
carries the code VDX itself would give, not just an HTTP status.
"""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Any

from hub.video.local.clock import format_vdx_time


class VdxError(Exception):
    """An error answered with VDX's `detailedError` body; `code` is one of the spec's detailed_error_code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _invalid(message: str) -> VdxError:
    return VdxError(400, "10", message)


def _error_body(status: int, code: str, message: str, path: str, now: datetime) -> dict[str, Any]:
    """The `detailedError` schema: basicError fields plus the detailed text and code (a string)."""
    return {
        "timestamp": format_vdx_time(now),
        "status": status,
        "error": HTTPStatus(status).phrase,
        "path": path,
        "detailed_error": message,
        "detailed_error_code": code,
    }
