"""SMART Backend Services' client authentication: a JWT the client signs with its own key (`private_key_jwt`,
RFC 7523), checked against the public keys registered with the client (`hub clients add --jwks FILE`).

The assertion's `iss` and `sub` are the client, `aud` the token endpoint, `exp` at most five minutes ahead, and
its `jti` is used once (`seen` says whether it was).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt

from hub.auth.tokens import ALGORITHMS, LEEWAY, MAX_LIFETIME, Refused

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_of(assertion: str, token_urls: list[str], jwks_of: Callable[[str], dict[str, Any] | None],
              seen: Callable[[str, int], bool]) -> str:
    """The client the assertion authenticates, or `Refused`."""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Refused("client_assertion is not a JWT") from None
    client = unverified.get("iss")
    if not isinstance(client, str) or unverified.get("sub") != client:
        raise Refused("client_assertion: iss and sub must both be the client_id")
    jwks = jwks_of(client)
    if not jwks:
        raise Refused("client_assertion: the client has no registered keys")
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except jwt.PyJWTError:
        raise Refused("client_assertion: the client's registered keys cannot be read") from None
    key = next((k for k in keys if k.key_id == header.get("kid")), keys[0] if len(keys) == 1 else None)
    if key is None:
        raise Refused("client_assertion: its kid names none of the client's keys")
    try:
        claims = jwt.decode(assertion, key.key, algorithms=ALGORITHMS, audience=token_urls, issuer=client,
                            leeway=LEEWAY, options={"require": ["exp", "iss", "sub", "aud", "jti"]})
    except jwt.PyJWTError as exc:
        raise Refused(f"client_assertion is not accepted: {exc}") from None
    if claims["exp"] > time.time() + MAX_LIFETIME + LEEWAY:
        raise Refused("client_assertion: exp is more than five minutes ahead")
    if seen(str(claims["jti"]), int(claims["exp"])):
        raise Refused("client_assertion: its jti was used before")
    return client
