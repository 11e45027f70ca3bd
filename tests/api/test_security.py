"""Bearer tokens on every endpoint but the public ones, scopes per endpoint, the hub's own issuer (client secret and
`private_key_jwt`), and issuers configured by their JWKS — all over real HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from typer.testing import CliRunner

from hub.api.app import create_app
from hub.api.routers import (
    appointment,
    audit,
    booking_confirmation,
    encounter,
    messaging,
    oioxml,
    validate,
    vans,
)
from hub.api.security import NEEDS
from hub.api.server_thread import ServerThread
from hub.auth.assertions import ASSERTION_TYPE
from hub.auth.tokens import OwnIssuer, new_signing_key
from hub.store.clients import ClientStore
from hub.store.db import make_engine
from tests.conftest import hub_settings
from tests.tokens import register, token

PROTECTED = [("POST", "/fhir/Appointment"), ("GET", "/fhir/Appointment/x"), ("PUT", "/fhir/Appointment/x"),
             ("PATCH", "/fhir/Appointment/x"), ("GET", "/fhir/Appointment"),
             ("GET", "/fhir/Appointment/x/$booking-confirmation"), ("GET", "/fhir/Encounter"),
             ("GET", "/fhir/Encounter/x"), ("POST", "/fhir/$process-message"), ("POST", "/fhir/$validate"),
             ("POST", "/fhir/Appointment/$validate"), ("POST", "/medcom/oioxml"), ("POST", "/medcom/vans"),
             ("GET", "/metrics"), ("GET", "/fhir/AuditEvent")]


def test_every_route_has_a_scope() -> None:
    """Deny by default: a route without an entry in the table would be refused to everyone."""
    routes = {(method, r.path) for module in (appointment, audit, booking_confirmation, encounter, messaging,
                                              oioxml, validate, vans)
              for r in module.router.routes for method in r.methods}  # type: ignore[attr-defined]
    assert routes | {("GET", "/metrics")} == set(NEEDS)


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401_with_an_outcome_and_a_challenge(hub: Any, method: str, path: str) -> None:
    r = httpx.request(method, f"{hub.url}{path}", timeout=30)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer ")
    assert r.json()["resourceType"] == "OperationOutcome" and r.json()["issue"][0]["code"] == "login"


def _hub_key(hub: Any) -> OwnIssuer:
    """The hub's own issuer, with the key the hub signs with (read from its database)."""
    settings = hub.settings
    pem = ClientStore(make_engine(settings.effective_database_url)).signing_key(new_signing_key)
    return OwnIssuer(pem, "http://localhost/auth", "http://localhost/fhir")


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "http://localhost/auth", "aud": "http://localhost/fhir", "sub": "c", "client_id": "c",
            "iat": now, "nbf": now, "exp": now + 60, "scope": "system/*.cruds hub/*",
            "organisation": "urn:oid:1.2.208.176.1.1|1234561000016000", **changes}


@pytest.mark.parametrize(("changes", "said"), [
    ({"iss": "https://elsewhere.example/auth"}, "issuer is not trusted"),
    ({"aud": "https://other-hub.example/fhir"}, "not meant for this hub"),
    ({"exp": int(time.time()) - 600}, "expired"),
    ({"nbf": int(time.time()) + 600}, "not valid yet"),
])
def test_a_token_with_the_wrong_claims_is_401(hub: Any, changes: dict[str, Any], said: str) -> None:
    own = _hub_key(hub)
    forged = jwt.encode(_claims(**changes), own._key, algorithm="ES256", headers={"kid": own.kid})
    r = httpx.get(f"{hub.url}/fhir/Appointment", headers={"Authorization": f"Bearer {forged}"}, timeout=30)
    assert r.status_code == 401 and said in r.text, r.text


def test_a_token_signed_by_another_key_or_garbage_is_401(hub: Any) -> None:
    other = OwnIssuer(new_signing_key(), "http://localhost/auth", "http://localhost/fhir")
    forged, _ = other.issue("c", None, "system/*.cruds")
    for value in (f"Bearer {forged}", "Bearer garbage", "Basic Zm9vOmJhcg=="):
        r = httpx.get(f"{hub.url}/fhir/Appointment", headers={"Authorization": value}, timeout=30)
        assert r.status_code == 401, (value, r.text)
    unsigned = jwt.encode(_claims(), key=None, algorithm="none")  # type: ignore[arg-type]
    r = httpx.get(f"{hub.url}/fhir/Appointment", headers={"Authorization": f"Bearer {unsigned}"}, timeout=30)
    assert r.status_code == 401


def test_the_hub_s_own_token_with_the_right_claims_is_accepted(hub: Any) -> None:
    own = _hub_key(hub)
    made = jwt.encode(_claims(), own._key, algorithm="ES256", headers={"kid": own.kid})
    r = httpx.get(f"{hub.url}/fhir/Appointment", headers={"Authorization": f"Bearer {made}"}, timeout=30)
    assert r.status_code == 200, r.text


def test_a_token_without_the_scope_is_403_naming_it(hub: Any) -> None:
    client_id, secret = register(hub.settings, scope="system/Appointment.rs")
    auth = {"Authorization": f"Bearer {token(hub.url, client_id, secret)}"}
    assert httpx.get(f"{hub.url}/fhir/Appointment", headers=auth, timeout=30).status_code == 200
    r = httpx.post(f"{hub.url}/fhir/Appointment", headers=auth, json={}, timeout=30)
    assert r.status_code == 403 and "system/Appointment.c" in r.text
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    r = httpx.post(f"{hub.url}/fhir/$validate", headers=auth, json={}, timeout=30)
    assert r.status_code == 403 and "hub/validate" in r.text


def test_public_endpoints_need_no_token(hub: Any) -> None:
    for path in ("/fhir/metadata", "/healthz", "/readyz", "/.well-known/smart-configuration", "/auth/jwks"):
        assert httpx.get(f"{hub.url}{path}", timeout=30).status_code == 200, path
    discovery = httpx.get(f"{hub.url}/.well-known/smart-configuration", timeout=30).json()
    assert discovery["token_endpoint"].endswith("/auth/token")
    assert set(discovery["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "private_key_jwt"}
    keys = httpx.get(f"{hub.url}/auth/jwks", timeout=30).json()["keys"]
    assert keys and all("d" not in k for k in keys)  # public keys only


def test_the_token_endpoint_speaks_oauth2(hub: Any) -> None:
    client_id, secret = register(hub.settings, scope="system/Appointment.rs hub/validate")
    url = f"{hub.url}/auth/token"
    ok = httpx.post(url, data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=30)
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "no-store"
    assert ok.json()["token_type"] == "Bearer" and 0 < ok.json()["expires_in"] <= 300
    assert ok.json()["scope"] == "system/Appointment.rs hub/validate"
    narrower = httpx.post(url, data={"grant_type": "client_credentials", "scope": "system/Appointment.r"},
                          auth=(client_id, secret), timeout=30)
    assert narrower.json()["scope"] == "system/Appointment.r"
    beyond = httpx.post(url, data={"grant_type": "client_credentials", "scope": "system/Appointment.c"},
                        auth=(client_id, secret), timeout=30)
    assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope"
    wrong = httpx.post(url, data={"grant_type": "client_credentials"}, auth=(client_id, "nope"), timeout=30)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    grant = httpx.post(url, data={"grant_type": "password"}, auth=(client_id, secret), timeout=30)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    as_json = httpx.post(url, json={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=30)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


def _private_key_client(hub: Any) -> tuple[str, ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    kid = uuid.uuid4().hex
    client = ClientStore(make_engine(hub.settings.effective_database_url)).add(
        f"jwt-{kid[:6]}", "urn:oid:1.2.208.176.1.1|1234561000016000", "system/Appointment.rs", None,
        {"keys": [{**public, "kid": kid, "use": "sig", "alg": "ES256"}]})
    return client.client_id, key, kid


def _assertion(client_id: str, key: Any, kid: str, aud: str, jti: str | None = None) -> str:
    now = int(time.time())
    return jwt.encode({"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240, "iat": now,
                       "jti": jti or uuid.uuid4().hex}, key, algorithm="ES256", headers={"kid": kid})


def test_private_key_jwt_with_a_key_the_test_makes(hub: Any) -> None:
    client_id, key, kid = _private_key_client(hub)
    url = f"{hub.url}/auth/token"

    def ask(assertion: str) -> httpx.Response:
        return httpx.post(url, data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                                     "client_assertion": assertion}, timeout=30)

    assertion = _assertion(client_id, key, kid, url)
    first = ask(assertion)
    assert first.status_code == 200, first.text
    auth = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert httpx.get(f"{hub.url}/fhir/Appointment", headers=auth, timeout=30).status_code == 200
    replayed = ask(assertion)
    assert replayed.status_code == 401 and "used before" in replayed.text
    elsewhere = ask(_assertion(client_id, key, kid, "https://other.example/auth/token"))
    assert elsewhere.status_code == 401
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = ask(_assertion(client_id, stranger, kid, url))
    assert forged.status_code == 401


@pytest.fixture
def external_issuer() -> Iterator[tuple[str, Any]]:
    """An OIDC provider's keys at a JWKS URI (a municipality's, say): (its JWKS URL, its private key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    app = FastAPI()

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        return {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "ES256"}]}

    with ServerThread(app) as server:
        yield f"{server.url}/jwks", key


def test_an_issuer_configured_by_its_jwks_uri(data_root: Path, tmp_path: Path, vdx: Any,
                                              external_issuer: tuple[str, Any]) -> None:
    jwks_uri, key = external_issuer
    issuers = json.dumps([{"issuer": "https://login.kommune.example", "jwks_uri": jwks_uri,
                           "audience": "https://hub.kommune.example/fhir", "organisation_claim": "org"}])
    settings = hub_settings(data_root, tmp_path, vdx.url, auth_issuers=issuers)
    now = int(time.time())
    claims = {"iss": "https://login.kommune.example", "aud": "https://hub.kommune.example/fhir", "sub": "eoj",
              "exp": now + 120, "scope": "system/Appointment.rs", "org": "http://cvr.dk|29189846"}
    with ServerThread(create_app(settings)) as srv:
        theirs = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
        r = httpx.get(f"{srv.url}/fhir/Appointment", headers={"Authorization": f"Bearer {theirs}"}, timeout=30)
        assert r.status_code == 200, r.text
        unknown_kid = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k2"})
        r = httpx.get(f"{srv.url}/fhir/Appointment", headers={"Authorization": f"Bearer {unknown_kid}"},
                      timeout=30)
        assert r.status_code == 401


def test_hub_clients_add_list_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.cli import app

    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    runner = CliRunner()
    added = runner.invoke(app, ["clients", "add", "EOJ Ishøj", "--organisation", "http://cvr.dk|29189846",
                                "--scope", "system/Appointment.cruds hub/validate"])
    assert added.exit_code == 0, added.output
    made = json.loads(added.output)
    assert made["client_id"] and len(made["client_secret"]) >= 32
    database = (tmp_path / "hub.sqlite").read_bytes()
    assert made["client_secret"].encode() not in database  # stored hashed only
    listed = runner.invoke(app, ["clients", "list"])
    assert made["client_id"] in listed.output and made["client_secret"] not in listed.output
    again = runner.invoke(app, ["clients", "add", "EOJ Ishøj", "--organisation", "http://cvr.dk|29189846",
                                "--scope", "system/Appointment.rs"])
    assert again.exit_code == 1 and "exists already" in again.output
    bad = runner.invoke(app, ["clients", "add", "X", "--organisation", "29189846", "--scope", "everything"])
    assert bad.exit_code == 2 and "--organisation" in bad.output and "--scope" in bad.output
    assert runner.invoke(app, ["clients", "remove", "EOJ Ishøj"]).exit_code == 0
    assert made["client_id"] not in runner.invoke(app, ["clients", "list"]).output
