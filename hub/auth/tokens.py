"""Access tokens: the hub's own issuer, and the verifier of every trusted issuer's tokens (PyJWT).

The hub's own issuer (for `make run`, the tests, and whoever has no OIDC provider) signs ES256 JWTs of at most
five minutes with a key every instance shares (kept in the database, `hub.store.clients`); its JWKS names the key
by its RFC 7638 thumbprint. The verifier checks a token against the issuer it names — the hub's own, or one
configured (`HUB_AUTH_ISSUERS`: a municipality's or a region's OIDC provider, KOMBIT's gateway), whose keys come
from its JWKS URI — with `iss`, `aud`, `exp` and `nbf` and a small clock skew, asymmetric algorithms only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub.auth.scopes import Grant, parse

ALGORITHMS = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256"]  # never HS*: a public key is no secret
MAX_LIFETIME = 300  # seconds: SMART Backend Services' recommendation for access tokens
LEEWAY = 30  # seconds of clock skew allowed on exp, nbf and iat


class Refused(Exception):
    """The token (or client assertion) is not accepted; the text says why, for the 401's diagnostics."""


@dataclass(frozen=True)
class Principal:
    """Who calls: the client, its organisation (`system|value`), and what its token allows."""

    client_id: str
    organisation: str | None
    scope: str
    issuer: str
    expires_at: float = 0.0  # the token's exp

    @cached_property
    def grants(self) -> frozenset[Grant]:
        return parse(self.scope)


def new_signing_key() -> bytes:
    """A fresh P-256 private key, PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: the SHA-256 of the key's required members, base64url."""
    members = {k: jwk[k] for k in (("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n"))}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OwnIssuer:
    def __init__(self, private_pem: bytes, issuer: str, audience: str) -> None:
        self.issuer, self.audience = issuer, audience
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the hub's signing key must be an EC key")
        self._key = key
        public: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        self.kid = thumbprint(public)
        self._jwk = {**public, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def issue(self, client_id: str, organisation: str | None, scope: str,
              lifetime: int = MAX_LIFETIME) -> tuple[str, int]:
        """(the token, its lifetime in seconds)."""
        lifetime = min(lifetime, MAX_LIFETIME)
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": client_id, "aud": self.audience, "iat": now, "nbf": now,
                  "exp": now + lifetime, "jti": uuid.uuid4().hex, "client_id": client_id, "scope": scope}
        if organisation:
            claims["organisation"] = organisation
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid}), lifetime

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._jwk]}

    def key(self, kid: str | None) -> Any:
        if kid not in (None, self.kid):
            raise Refused("the token names a key the hub does not have")
        return self._key.public_key()


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose tokens the hub accepts, and how to read them."""

    issuer: str
    audience: str
    key: Callable[[str | None], Any]  # the key a token's `kid` names
    organisation_claim: str = "organisation"


def from_jwks_uri(issuer: str, audience: str, jwks_uri: str, organisation_claim: str = "organisation",
                  timeout: float = 5.0) -> TrustedIssuer:
    """An issuer configured by its JWKS URI; the keys are fetched when first needed and cached."""
    client = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=300, timeout=int(timeout))

    def key(kid: str | None) -> Any:
        try:
            return client.get_signing_key(kid).key if kid else client.get_signing_keys()[0].key
        except jwt.PyJWKClientError as exc:
            raise Refused(f"the issuer's keys do not include the token's: {exc}") from None

    return TrustedIssuer(issuer, audience, key, organisation_claim)


class Verifier:
    def __init__(self, issuers: list[TrustedIssuer], leeway: float = LEEWAY) -> None:
        self._issuers = {i.issuer: i for i in issuers}
        self.leeway = leeway

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            claimed = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            raise Refused("the bearer token is not a JWT") from None
        trusted = self._issuers.get(claimed) if isinstance(claimed, str) else None
        if trusted is None:
            raise Refused("the token's issuer is not trusted here")
        try:
            claims = jwt.decode(token, trusted.key(header.get("kid")), algorithms=ALGORITHMS,
                                audience=trusted.audience, issuer=trusted.issuer, leeway=self.leeway,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Refused("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise Refused("the token is not meant for this hub (aud)") from None
        except jwt.ImmatureSignatureError:
            raise Refused("the token is not valid yet (nbf)") from None
        except jwt.PyJWTError as exc:
            raise Refused(f"the token is not accepted: {exc}") from None
        client = claims.get("client_id") or claims.get("azp") or claims.get("sub")
        if not isinstance(client, str) or not client:
            raise Refused("the token names no client")
        organisation = claims.get(trusted.organisation_claim)
        scope = claims.get("scope", "")
        return Principal(client, organisation if isinstance(organisation, str) else None,
                         scope if isinstance(scope, str) else " ".join(map(str, scope)), trusted.issuer,
                         float(claims["exp"]))
