"""Even out keep-alive connections over the API worker processes.

The workers share the port through SO_REUSEPORT, so the kernel assigns each new connection to a worker by a
hash of its addresses. Care-record systems, like benchmark clients, keep a few connections open for hours, and
with few connections the hash is often lopsided: 16 clients split 12/4 as easily as 8/8, and then one worker
(one interpreter lock) carries three times the other's load, its requests queueing for threads while the other
idles. Measured at 16 clients, a 4/12 split raised p99 latency by a quarter over an even one.

Each worker counts the connections it served in the last few seconds and publishes the count in shared memory.
A worker holding clearly more than the least loaded one answers the next request with `Connection: close`
(at most one such answer per interval); the client reconnects, and the kernel places the new connection
afresh. Connections move only away from a busier worker, so the split settles near even and stays there.
"""

from __future__ import annotations

import time
from collections.abc import MutableSequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_WINDOW_SECONDS = 3.0  # a connection counts as open if it made a request this recently
_CLOSE_INTERVAL_SECONDS = 0.25  # at most one connection moved per interval and worker


# Set in each worker process by `hub.api.serving` before the app is built: (shared counts, this worker's index).
worker_slot: tuple[Any, int] | None = None


class ConnectionBalancer:
    """ASGI middleware for worker `index` of the processes sharing `counts` (a shared integer array)."""

    def __init__(self, app: ASGIApp, counts: MutableSequence[int], index: int) -> None:
        self.app, self.counts, self.index = app, counts, index
        self._seen: dict[tuple[str, int], float] = {}
        self._last_close = 0.0
        self._last_prune = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("client") is None or scope.get("http_version") == "2":
            await self.app(scope, receive, send)
            return
        client: tuple[str, int] = tuple(scope["client"])
        now = time.monotonic()
        new = client not in self._seen
        self._seen[client] = now
        if new:
            self.counts[self.index] = len(self._seen)
        if now - self._last_prune > 0.1:
            self._prune(now)
        if not self._should_move(now):
            await self.app(scope, receive, send)
            return
        self._last_close = now
        self._seen.pop(client, None)
        self.counts[self.index] = len(self._seen)

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)

    def _prune(self, now: float) -> None:
        self._last_prune = now
        cutoff = now - _WINDOW_SECONDS
        self._seen = {c: t for c, t in self._seen.items() if t >= cutoff}
        self.counts[self.index] = len(self._seen)

    def _should_move(self, now: float) -> bool:
        if now - self._last_close < _CLOSE_INTERVAL_SECONDS:
            return False
        mine = len(self._seen)
        least = min(self.counts[i] for i in range(len(self.counts)) if i != self.index)
        return mine > least + 1
