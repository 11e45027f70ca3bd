"""The API's bulkhead for requests that call VDX: threads of their own, so a slow or hung VDX holds only them.

Why: the request threads are few (`HUB_WORKER_THREADS`, measured fastest that way), and a booking waiting on a
VDX that never answers held one each; ten of them made `$validate`, which never calls VDX, wait some 80 s. Work
that may call VDX runs here, on `HUB_VDX_CONCURRENCY` threads of its own; as many again may wait for one, and a
request beyond that is answered `503` with `Retry-After` at once, never queued without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from anyio import CapacityLimiter, Semaphore, WouldBlock, to_thread

from hub.core.errors import UpstreamError
from hub.core.outcome import single

T = TypeVar("T")


class Bulkhead:
    """Made inside the event loop (the app's lifespan)."""

    def __init__(self, threads: int) -> None:
        self.threads = CapacityLimiter(threads)
        self.admission = Semaphore(2 * threads)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        try:
            self.admission.acquire_nowait()
        except WouldBlock:
            raise UpstreamError(single("transient", "VDX is slow to answer and the hub's connections to it are all "
                                                    "busy; try again later"), status=503) from None
        try:
            return await to_thread.run_sync(fn, *args, limiter=self.threads)
        finally:
            self.admission.release()
