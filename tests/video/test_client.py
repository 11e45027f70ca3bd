"""The hub's VDX client against the VDX-compatible service: OAuth2, refusals, timeouts, retries."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from hub.api.server_thread import ServerThread
from hub.video.client import VdxClient, VdxError, VdxRefused
from hub.video.local import VdxClock, create_vdx_app
from tests.conftest import VDX_CLIENT

MEETING = {"subject": "Videomøde", "startTime": "2031-01-02T10:00:00Z", "endTime": "2031-01-02T10:30:00Z"}



@pytest.fixture
def secured() -> Any:
    clock = VdxClock()
    with ServerThread(create_vdx_app(clock=clock, client_credentials={"hub": "s3cret"})) as srv:
        srv.clock = clock  # type: ignore[attr-defined]
        yield srv


def test_client_credentials_token_is_fetched_cached_and_renewed(secured: Any) -> None:
    client = VdxClient(secured.url, token_url=f"{secured.url}/token", client_id="hub", client_secret="s3cret")
    created = client.create_meeting(dict(MEETING))
    token = client.token.get(client.token_pool)  # type: ignore[union-attr]
    assert client.scheduling_info(created["uuid"])["uuid"] == created["uuid"]
    assert client.token.get(client.token_pool) == token  # type: ignore[union-attr]
    secured.clock.advance(3600)  # the service's token has expired; the client's cache has not noticed
    assert client.get_meeting(created["uuid"])["uuid"] == created["uuid"]  # 401 → new token → retried
    assert client.token.get(client.token_pool) != token  # type: ignore[union-attr]


def test_wrong_secret_is_refused(secured: Any) -> None:
    client = VdxClient(secured.url, token_url=f"{secured.url}/token", client_id="hub", client_secret="nope",
                       retries=0)
    with pytest.raises(VdxRefused) as exc:
        client.create_meeting(dict(MEETING))
    assert exc.value.status == 401


def test_refusal_carries_vdx_error_code(vdx: ServerThread) -> None:
    client = VdxClient(vdx.url, token_url=f"{vdx.url}/token", client_id=VDX_CLIENT[0], client_secret=VDX_CLIENT[1])
    body = {**MEETING, "externalId": "x-1"}
    client.create_meeting(dict(body))
    with pytest.raises(VdxRefused) as exc:
        client.create_meeting(dict(body))
    assert (exc.value.status, exc.value.code) == (400, "21")


def test_unreachable_vdx_is_a_transient_error_after_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = VdxClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.01)
    t0 = time.monotonic()
    with pytest.raises(VdxError):
        client.get_meeting("00000000-0000-0000-0000-000000000000")
    assert time.monotonic() - t0 >= 0.03  # two backoffs: 0.01 + 0.02


def test_a_silent_vdx_times_out() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    client = VdxClient(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=0.3, retries=0)
    t0 = time.monotonic()
    with pytest.raises(VdxError, match="Timeout|timed out"):
        client.get_meeting("00000000-0000-0000-0000-000000000000")
    assert time.monotonic() - t0 < 5
    server.close()


def test_server_errors_are_retried(vdx: ServerThread) -> None:
    """A 5xx is transient: the call is repeated; a 4xx is not."""
    calls: list[str] = []
    app = vdx.server.config.app

    async def flaky(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and len(calls) < 1 and scope["path"].startswith("/v2/meetings"):
            calls.append(scope["path"])
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    with ServerThread(flaky) as srv:
        created = VdxClient(srv.url, retries=2, backoff=0.01, token_url=f"{srv.url}/token", client_id=VDX_CLIENT[0],
                            client_secret=VDX_CLIENT[1]).create_meeting(dict(MEETING))
    assert calls == ["/v2/meetings"] and created["subject"] == "Videomøde"
