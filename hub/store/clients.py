"""The own issuer's clients, its signing key and the client assertions used (`hub.auth`), in the database so every
worker and instance shares them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

from hub.store import models as m

CLIENTS = cast(Table, m.AuthClientRow.__table__)
KEYS = cast(Table, m.AuthKeyRow.__table__)
USED = cast(Table, m.UsedAssertionRow.__table__)


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    organisation: str
    scope: str
    secret_hash: str | None
    jwks: dict[str, Any] | None

    def public(self) -> dict[str, Any]:
        """What `hub clients list` shows: never the secret's hash."""
        return {"client_id": self.client_id, "name": self.name, "organisation": self.organisation,
                "scope": self.scope, "authentication": "private_key_jwt" if self.jwks else "client_secret_basic"}


class ClientStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, name: str, organisation: str, scope: str, secret_hash: str | None,
            jwks: dict[str, Any] | None) -> Client:
        client = Client(secrets.token_urlsafe(16), name, organisation, scope, secret_hash, jwks)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(CLIENTS).values(client_id=client.client_id, name=name, organisation=organisation,
                                                    scope=scope, secret_hash=secret_hash, jwks=jwks,
                                                    created_at=datetime.now(UTC)))
        except IntegrityError:
            raise ValueError(f"a client named {name!r} exists already") from None
        return client

    def get(self, client_id: str) -> Client | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(CLIENTS).where(CLIENTS.c.client_id == client_id)).first()
        return _client(row) if row else None

    def all(self) -> list[Client]:
        with self.engine.connect() as conn:
            return [_client(r) for r in conn.execute(select(CLIENTS).order_by(CLIENTS.c.name))]

    def remove(self, name_or_id: str) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(delete(CLIENTS).where((CLIENTS.c.client_id == name_or_id)
                                                      | (CLIENTS.c.name == name_or_id)))
        return gone.rowcount > 0

    def signing_key(self, make: Any) -> bytes:
        """The issuer's key: the one stored, or `make()`'s, stored by whichever instance comes first."""
        with self.engine.connect() as conn:
            found = conn.execute(select(KEYS.c.private_pem).order_by(KEYS.c.created_at)).first()
        if found:
            return str(found[0]).encode()
        pem: bytes = make()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(KEYS).values(kid="hub-1", private_pem=pem.decode(), created_at=datetime.now(UTC)))
        except IntegrityError:  # another instance was first: its key it is
            return self.signing_key(make)
        return pem

    def first_use(self, jti: str, expires: int) -> bool:
        """True the first time an assertion's `jti` is seen (expired ones are forgotten)."""
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(USED).where(USED.c.expires_at < now))
                conn.execute(insert(USED).values(jti=jti, expires_at=datetime.fromtimestamp(expires, UTC)))
        except IntegrityError:
            return False
        return True


def _client(row: Any) -> Client:
    return Client(row.client_id, row.name, row.organisation, row.scope, row.secret_hash, row.jwks)
