"""Clients and tokens for the tests: every test calls the hub as a registered client with a real token from the
hub's own issuer (`POST /auth/token`), never with security switched off."""

from __future__ import annotations

import uuid

import httpx

from hub.auth.secrets import hashed, new_secret
from hub.core.config import Settings
from hub.store.clients import ClientStore
from hub.store.db import make_engine

ALL = "system/*.cruds hub/*"
ORGANISATION = "urn:oid:1.2.208.176.1.1|1234561000016000"  # a SOR code


def register(settings: Settings, scope: str = ALL, organisation: str = ORGANISATION,
             name: str | None = None) -> tuple[str, str]:
    """A client of the hub's own issuer (as `hub clients add` makes one): (client_id, secret)."""
    engine = make_engine(settings.effective_database_url)  # the hub's, migrated when it started
    secret = new_secret()
    client = ClientStore(engine).add(name or f"test-{uuid.uuid4().hex[:8]}", organisation, scope, hashed(secret),
                                     None)
    engine.dispose()
    return client.client_id, secret


def token(url: str, client_id: str, secret: str, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    r = httpx.post(f"{url}/auth/token", data=data, auth=(client_id, secret), timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(url: str, settings: Settings, scope: str = ALL, organisation: str = ORGANISATION) -> dict[str, str]:
    """The Authorization header of a new client with `scope`, for the hub at `url`."""
    return {"Authorization": f"Bearer {token(url, *register(settings, scope, organisation))}"}
