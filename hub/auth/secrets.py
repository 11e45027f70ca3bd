"""Client secrets: made at random, stored only as a salted scrypt hash, checked in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1  # scrypt's interactive parameters: ~20 ms a check, once a token (not a request)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hashed(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P)
    return "scrypt$" + "$".join(base64.b64encode(part).decode() for part in (salt, digest))


def matches(secret: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    salt, digest = (base64.b64decode(part) for part in stored.split("$")[1:3])
    return hmac.compare_digest(hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P), digest)
