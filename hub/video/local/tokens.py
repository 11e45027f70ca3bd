"""OAuth2 client-credentials tokens, standing in for the Keycloak in front of the real VDX.

Off unless `create_vdx_app` is given client credentials; then every /v2 call needs a bearer token from
POST /token, so the hub's client exercises the same token flow it uses against VDX.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import unquote_plus

from starlette.responses import JSONResponse

ANONYMOUS_CLIENT = "hub"
"""The caller's name when OAuth2 is off; it becomes the creator's e-mail `hub@<domain>`."""
TOKEN_LIFETIME_SECONDS = 300


class _TokenIssuer:
    """Client-credentials tokens (standing in for VDX's Keycloak), valid for 300 s on the service clock."""

    def __init__(self, credentials: Mapping[str, str]) -> None:
        self._credentials = dict(credentials)
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, datetime]] = {}

    def authenticate(self, client_id: str | None, secret: str | None) -> bool:
        expected = self._credentials.get(client_id or "")
        return expected is not None and secret is not None and hmac.compare_digest(
            expected.encode(), secret.encode())

    def issue(self, client_id: str, now: datetime) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (client_id, now + timedelta(seconds=TOKEN_LIFETIME_SECONDS))
        return token

    def client_for(self, token: str, now: datetime) -> str | None:
        """The client a token was issued to, or None when unknown or expired."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or now >= entry[1]:
            return None
        return entry[0]


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """client_id and secret from an HTTP Basic header (form-urlencoded per RFC 6749 §2.3.1)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="vdx"'
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers=headers)
