"""Shared pieces of the REST edge: the hub's services, body reading, content negotiation, FHIR answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request, Response

from hub.core.config import Settings
from hub.core.errors import HubError, InvalidInput
from hub.core.outcome import Outcome, single
from hub.fhir import io
from hub.wiring import Services

T = TypeVar("T")


async def services(request: Request) -> Services:
    """Async on purpose: FastAPI runs a plain-def dependency in its thread pool, a costly hop for a lookup."""
    return request.app.state.services  # type: ignore[no-any-return]


async def on_vdx_threads(request: Request, fn: Callable[..., T], *args: object) -> T:
    """Run work that may call VDX in the VDX bulkhead (`hub.api.bulkhead`), not on the request threads."""
    return await request.app.state.vdx_bulkhead.run(fn, *args)  # type: ignore[no-any-return]


class BodyTooLarge(HubError):
    """A body over the limit: answered 413, and its first `limit` bytes kept, marked as cut (`hub.api.app`)."""

    status = 413

    def __init__(self, limit: int, head: bytes) -> None:
        super().__init__(single("too-costly", f"The body is larger than {limit} bytes"), 413)
        self.head = head


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused past `limit` bytes without reading more than that into memory. The body read is
    left on the request (`state.raw_body`) so an error answered later can still keep it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit, b"".join([*chunks, chunk])[:limit])
        chunks.append(chunk)
    request.state.raw_body = body = b"".join(chunks)
    return body


def refuse_unknown(request: Request, known: set[str]) -> None:
    """A search naming a parameter the endpoint does not know is refused (400), never silently widened."""
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(single("not-supported", f"Unknown search parameter(s): {', '.join(unknown)}"))


def response_kind(request: Request) -> str:
    """`json` or `xml`: `_format` first, then Accept, then the request's own Content-Type."""
    from_format = io.media_kind(request.query_params.get("_format"))
    if from_format:
        return from_format
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        kind = io.media_kind(part)
        if kind:
            return kind
    return io.media_kind(request.headers.get("content-type")) or "json"


def fhir_response(request: Request, resource: dict[str, Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    body, media = io.serialise(resource, response_kind(request))
    return Response(body, status_code=status, media_type=media, headers=headers)


def outcome_response(request: Request, outcome: Outcome, status: int) -> Response:
    return fhir_response(request, outcome.to_fhir(), status)


def base_url(request: Request, settings: Settings) -> str:
    return (settings.public_base_url or str(request.base_url)).rstrip("/")
