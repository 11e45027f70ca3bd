"""Raw bodies of requests refused before any flow took them — too large (413), or failed unexpectedly (500) — kept
in the message log as the flows keep theirs, so every raw body the hub was sent is there to look at and replay.

A 413's body is kept up to the size limit and marked `cut`; a 500's with the correlation id its answer and log line
carry. The channel is the endpoint's, as the flows name it.
"""

from __future__ import annotations

import logging

from fastapi import Request

from hub.core.outcome import Outcome
from hub.wiring import Services

log = logging.getLogger("hub.api")

_CHANNELS = (("/fhir/$process-message", "fhir-messaging"), ("/medcom/oioxml", "oioxml"),
             ("/medcom/vans", "vans"), ("/fhir", "fhir-rest"))


def channel_of(path: str) -> str:
    return next((channel for prefix, channel in _CHANNELS if path.startswith(prefix)), "http")


def keep(services: Services, request: Request, raw: bytes, outcome: Outcome, status: int, *, cut: bool) -> None:
    """Store the body; a store that fails too is logged, and the answer goes out all the same."""
    try:
        services.flow.record_message(direction="in", channel=channel_of(request.url.path), format="unknown",
                                     operation=f"{request.method} {request.url.path}"[:200],
                                     content_type=request.headers.get("content-type"), raw=raw,
                                     verdict=outcome.to_fhir(), status="rejected" if status < 500 else "failed",
                                     http_status=status, cut=cut)
    except Exception:
        log.exception("the body of a refused %s %s could not be kept", request.method, request.url.path)
