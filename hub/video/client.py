"""Client for VDX's Booking API v2 (`video-api-v2.yaml`), real or the hub's own compatible service.

Plain HTTP with urllib3 (a connection pool per process; measured at less than half httpx's CPU per call, and
this client sits on the booking hot path): timeouts, retries with backoff on transient failures (connection
errors, 429, 5xx; safe for POST because every create carries the booking's own uuid and externalId),
and OAuth2 client credentials for the real service. A read timeout is not retried (a hung VDX would hold the
caller for every attempt), and a `Guard` bounds the calls out at once and opens a circuit after repeated
failures, so a slow or hung VDX is answered as unavailable quickly instead of holding the API's threads.
Refusals come back as `VdxRefused` carrying VDX's `detailed_error_code`, which the booking flow acts on (12,
13, 21). Every exchange can be recorded so the flow stores outbound messages with the booking they belong to.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3

from hub.core.guard import Circuit, Guard, Rejected


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request to VDX and its answer, as bytes, for the message log."""

    method: str
    path: str
    request: bytes
    status: int | None
    response: bytes


class VdxError(Exception):
    """VDX could not be reached or failed (transient: the request may be retried later)."""


class VdxRefused(Exception):
    """VDX answered with an error body; `code` is its detailed_error_code (a string such as "21")."""

    def __init__(self, status: int, code: str | None, text: str) -> None:
        super().__init__(f"VDX {status} (code {code}): {text}")
        self.status = status
        self.code = code
        self.text = text


class _Token:
    def __init__(self, url: str, client_id: str, secret: str) -> None:
        self.url, self.client_id, self.secret = url, client_id, secret
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def get(self, pool: urllib3.PoolManager) -> str:
        with self._lock:
            if self._token is None or time.monotonic() > self._expires - 30:
                headers = urllib3.make_headers(basic_auth=f"{self.client_id}:{self.secret}")
                r = pool.request("POST", self.url, fields={"grant_type": "client_credentials"}, headers=headers,
                                 encode_multipart=False)
                if r.status != 200:
                    raise VdxRefused(r.status, None, f"token request refused: {r.data[:200]!r}")
                body = orjson.loads(r.data)
                self._token = str(body["access_token"])
                self._expires = time.monotonic() + float(body.get("expires_in", 60))
            return self._token

    def forget(self) -> None:
        with self._lock:
            self._token = None


class VdxClient:
    """Thread-safe; one per process, sharing a connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        token_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        organizer_email: str | None = None,
        concurrency: int = 8,
        circuit: Circuit = Circuit(),
    ) -> None:
        base = urllib3.util.parse_url(base_url.rstrip("/"))
        self.prefix = base.path or ""
        timeouts = urllib3.Timeout(connect=min(timeout, 5.0), read=timeout)
        # One pool bound to VDX's host: no URL parsing or pool lookup per call.
        self.pool = urllib3.connection_from_url(base_url, maxsize=32, block=False, retries=False, timeout=timeouts)
        self.token_pool = urllib3.PoolManager(retries=False, timeout=timeouts)
        self.retries = retries
        self.backoff = backoff
        self.organizer_email = organizer_email
        self.token = _Token(token_url, client_id or "", client_secret or "") if token_url else None
        # At most `concurrency` calls out at once; failed calls in a row open the circuit for a while.
        self.guard = Guard("VDX", concurrency=concurrency, circuit=circuit, harmless=(VdxRefused,))

    def close(self) -> None:
        self.pool.close()
        self.token_pool.clear()

    def _call(self, method: str, path: str, body: dict[str, Any] | None, trace: list[Exchange] | None) -> Any:
        try:
            return self.guard.call(self._attempts, method, path, body, trace)
        except Rejected as exc:
            raise VdxError(str(exc)) from None

    def _attempts(self, method: str, path: str, body: dict[str, Any] | None, trace: list[Exchange] | None) -> Any:
        payload = orjson.dumps(body) if body is not None else b""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            headers = {"Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            try:
                if self.token:
                    headers["Authorization"] = f"Bearer {self.token.get(self.token_pool)}"
                r = self.pool.urlopen(method, self.prefix + path, body=payload or None, headers=headers,
                                      retries=False)
            except urllib3.exceptions.HTTPError as exc:
                last = VdxError(f"VDX {method} {path}: {exc.__class__.__name__}: {exc}")
                if trace is not None:
                    trace.append(Exchange(method, path, payload, None, str(exc).encode()))
                if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                    break  # a VDX that does not answer in time is not asked again now: the caller is told at once
                continue
            if trace is not None:
                trace.append(Exchange(method, path, payload, r.status, r.data))
            if r.status == 401 and self.token and attempt < self.retries:
                self.token.forget()
                last = VdxRefused(401, None, "token rejected")
                continue
            if r.status == 429 or r.status >= 500:
                last = VdxError(f"VDX {method} {path}: HTTP {r.status}")
                continue
            if r.status >= 400:
                raise _refusal(r.status, r.data)
            return orjson.loads(r.data) if r.data else None
        assert last is not None
        raise last

    # --- the operations the hub uses ---------------------------------------------------------------------

    def create_meeting(self, body: dict[str, Any], trace: list[Exchange] | None = None) -> dict[str, Any]:
        if self.organizer_email and "organizedByEmail" not in body:
            body = {**body, "organizedByEmail": self.organizer_email}
        return self._call("POST", "/v2/meetings", body, trace)  # type: ignore[no-any-return]

    def get_meeting(self, uuid: str, trace: list[Exchange] | None = None) -> dict[str, Any]:
        return self._call("GET", f"/v2/meetings/{uuid}", None, trace)  # type: ignore[no-any-return]

    def update_meeting(self, uuid: str, body: dict[str, Any], trace: list[Exchange] | None = None) -> dict[str, Any]:
        return self._call("PUT", f"/v2/meetings/{uuid}", body, trace)  # type: ignore[no-any-return]

    def patch_meeting(self, uuid: str, body: dict[str, Any], trace: list[Exchange] | None = None) -> dict[str, Any]:
        return self._call("PATCH", f"/v2/meetings/{uuid}", body, trace)  # type: ignore[no-any-return]

    def delete_meeting(self, uuid: str, trace: list[Exchange] | None = None) -> None:
        self._call("DELETE", f"/v2/meetings/{uuid}", None, trace)

    def scheduling_info(self, uuid: str, trace: list[Exchange] | None = None) -> dict[str, Any]:
        return self._call("GET", f"/v2/scheduling-info/{uuid}", None, trace)  # type: ignore[no-any-return]


def _refusal(status: int, data: bytes) -> VdxRefused:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = {}
    code = body.get("detailed_error_code") if isinstance(body, dict) else None
    text = (body.get("detailed_error") or body.get("error")) if isinstance(body, dict) else None
    fallback = data[:300].decode("utf-8", "replace")
    return VdxRefused(status, str(code) if code is not None else None, str(text or fallback))
