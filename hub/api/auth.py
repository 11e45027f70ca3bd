"""The hub's own token issuer over HTTP: `POST /auth/token` (OAuth2 client credentials, RFC 6749 §4.4, with
`client_secret_basic` or SMART's `private_key_jwt`), its keys at `GET /auth/jwks`, and SMART's discovery at
`GET /.well-known/smart-configuration`. Public, as they must be. Errors are OAuth2's JSON (`error`,
`error_description`), not OperationOutcomes: the token endpoint speaks OAuth2.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hub.api.deps import BodyTooLarge, base_url, read_body
from hub.auth import assertions, scopes
from hub.auth.secrets import matches
from hub.auth.tokens import Refused
from hub.store.clients import Client
from hub.wiring import Services

router = APIRouter(tags=["authorization"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
GRANTABLE = ("system/*.cruds", "hub/*")  # what the discovery document says may be asked for


def _error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**NO_STORE, **(headers or {})})


def token_urls(request: Request, svc: Services) -> list[str]:
    """The token endpoint's URLs a client assertion may name as its audience."""
    return sorted({f"{base_url(request, svc.settings)}/auth/token", f"{str(request.base_url).rstrip('/')}/auth/token"})


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (unquote(client_id), unquote(secret)) if sep else None  # RFC 6749 §2.3.1: form-encoded before base64


def _granted(client: Client, asked: str | None) -> str | None:
    """The scopes to grant: those asked for (each within the client's own), or the client's when none are;
    None when one asked for is beyond them."""
    if not asked:
        return client.scope
    allowed = scopes.parse(client.scope)
    for scope in asked.split():
        grants = scopes.parse(scope)
        if not grants:
            return None
        for grant in grants:
            needs = [grant.resource] if not grant.interactions else [
                f"system/{grant.resource}.{i}" for i in grant.interactions]
            if not all(scopes.permits(allowed, need) for need in needs):
                return None
    return asked


@router.post("/auth/token", summary="OAuth2 client credentials: an access token of at most five minutes")
async def token(request: Request) -> Response:
    svc: Services = request.app.state.services
    if svc.auth.issuer is None:
        return _error(404, "invalid_request", "this hub issues no tokens (HUB_AUTH_OWN_ISSUER=false)")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return _error(400, "invalid_request", "the body must be application/x-www-form-urlencoded (RFC 6749)")
    try:
        fields = parse_qs((await read_body(request, 64 * 1024)).decode(), strict_parsing=False)
    except (UnicodeDecodeError, BodyTooLarge):
        return _error(400, "invalid_request", "the body is not a form")
    form = {name: values[0] for name, values in fields.items() if len(values) == 1}  # repeated: RFC 6749 §3.1
    if form.get("grant_type") != "client_credentials":
        return _error(400, "unsupported_grant_type" if form.get("grant_type") else "invalid_request",
                      "grant_type must be client_credentials")
    client: Client | None = None
    basic = _basic(request.headers.get("authorization"))
    assertion = form.get("client_assertion")
    if basic is not None:
        found = await run_in_threadpool(svc.auth.clients.get, basic[0])
        if found is not None and await run_in_threadpool(matches, basic[1], found.secret_hash):
            client = found
    elif form.get("client_assertion_type") == assertions.ASSERTION_TYPE and assertion:
        def keys_of(client_id: str) -> dict[str, Any] | None:
            found = svc.auth.clients.get(client_id)
            return found.jwks if found else None

        def check() -> Client | None:
            client_id = assertions.client_of(assertion, token_urls(request, svc), keys_of,
                                             lambda jti, exp: not svc.auth.clients.first_use(jti, exp))
            return svc.auth.clients.get(client_id)
        try:
            client = await run_in_threadpool(check)
        except Refused as exc:
            return _error(401, "invalid_client", str(exc))
    if client is None:
        return _error(401, "invalid_client", "unknown client or wrong credentials",
                      {"WWW-Authenticate": 'Basic realm="hub"'})
    scope = _granted(client, form.get("scope"))
    if scope is None:
        return _error(400, "invalid_scope", "a scope asked for is beyond the client's")
    request.state.audit_client = (client.client_id, client.organisation)  # the token's event is the client's
    access, lifetime = svc.auth.issuer.issue(client.client_id, client.organisation, scope)
    return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": lifetime, "scope": scope},
                        headers=NO_STORE)


@router.get("/auth/jwks", summary="The keys the hub's own issuer signs with")
async def jwks(request: Request) -> Response:
    issuer = request.app.state.services.auth.issuer
    return JSONResponse(issuer.jwks() if issuer else {"keys": []})


@router.get("/.well-known/smart-configuration", summary="SMART discovery (Backend Services)")
async def smart_configuration(request: Request) -> dict[str, Any]:
    svc: Services = request.app.state.services
    base = base_url(request, svc.settings)
    return {
        "issuer": svc.auth.issuer.issuer if svc.auth.issuer else None,
        "jwks_uri": f"{base}/auth/jwks",
        "token_endpoint": f"{base}/auth/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "ES384", "RS256", "RS384"],
        "scopes_supported": list(GRANTABLE),
        "capabilities": ["client-confidential-symmetric", "client-confidential-asymmetric", "permission-v2"],
    }
