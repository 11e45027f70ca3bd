"""The access log: one line per request, as operators expect of a service (method, path, status, duration,
correlation id), CPR numbers masked wherever they are in the path or query; and its duration in the metrics, by
the route's template (`hub_http_request_duration_seconds`).

A pure ASGI middleware (no body is read or copied): the line is written when the response has been sent. Its
correlation id is the request's `X-Correlation-Id` when it sent one (so a caller's id follows the request), else
one made here; the answer carries it back in `X-Correlation-Id`, and an unexpected error's log line and answer
use the same (`hub.api.app`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.core.cpr import mask_text
from hub.core.metrics import REQUESTS

log = logging.getLogger("hub.access")
HEADER = b"x-correlation-id"


def masked_target(scope: Scope) -> str:
    """The request's path and query as the log and the audit trail show it: CPR numbers masked, URL-encoded
    ones too (`%7C0101011234`)."""
    query = unquote(scope.get("query_string", b"").decode("latin-1"))
    return mask_text(scope.get("path", "") + (f"?{query}" if query else ""))


def correlation_id(scope: Scope) -> str:
    """The request's correlation id (set by `AccessLog`)."""
    return str(scope.get("state", {}).get("correlation_id", ""))


Audit = Callable[[Scope, int, str | None], None]  # (scope, status, Location) once answered: `hub.api.audit`


class AccessLog:
    def __init__(self, app: ASGIApp, audit: Audit | None = None) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(HEADER, b"").decode("latin-1")[:64]
        correlation = given if given.isprintable() and given else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["correlation_id"] = correlation
        started = time.perf_counter()
        status = 500  # what the client gets when the app fails before it answers
        location: str | None = None

        async def sending(message: Message) -> None:
            nonlocal status, location
            if message["type"] == "http.response.start":
                status = message["status"]
                location = next((v.decode("latin-1") for k, v in message.get("headers", []) if k == b"location"),
                                None)
                headers = [h for h in message.get("headers", []) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, correlation.encode("latin-1"))]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")  # the route's template, not the path: one series per endpoint
            REQUESTS.labels(scope.get("method", ""), getattr(route, "path", "unmatched"), str(status)).observe(elapsed)
            if self.audit is not None:
                self.audit(scope, status, location)
            if log.isEnabledFor(logging.INFO):  # the masking is done only for a line that is written
                log.info("%s %s %d %.1f ms %s", scope.get("method", ""), masked_target(scope), status,
                         elapsed * 1000, correlation)
