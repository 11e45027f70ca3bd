"""Connection balancing between API workers: connections move only away from a busier worker."""

from __future__ import annotations

from typing import Any


def test_connection_balancer_moves_connections_only_away_from_a_busier_worker() -> None:
    import asyncio

    from hub.api.balance import ConnectionBalancer

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def request(mw: ConnectionBalancer, port: int) -> list[tuple[bytes, bytes]]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "http", "http_version": "1.1", "client": ("127.0.0.1", port)}
        await mw(scope, None, send)  # type: ignore[arg-type]
        return list(sent[0]["headers"])

    counts = [0, 4]  # worker 1 serves four connections
    mw = ConnectionBalancer(app, counts, 0)

    async def scenario() -> None:
        for port in range(5):  # five connections here against four there: even enough
            assert (b"connection", b"close") not in await request(mw, port)
        assert counts[0] == 5
        # Six and more against four: an answer asks its client to reconnect, one per interval, not a stampede.
        closing = [(b"connection", b"close") in await request(mw, port) for port in range(5, 9)]
        assert closing == [True, False, False, False]
        assert counts[0] == 8  # nine seen, the one asked to reconnect no longer counts here

    asyncio.run(scenario())
