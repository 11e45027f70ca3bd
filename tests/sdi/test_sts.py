"""The local STS over real HTTP on loopback, and the client's token cache: issued tokens are signed, bound to the
client's certificate and carry CVR and audience; bad requests get SOAP 1.2 faults with WS-Trust subcodes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import pytest
from lxml import etree

from hub.api.server_thread import ServerThread
from hub.sdi import certs
from hub.sdi.certs import Credential
from hub.sdi.local.sts import create_sts_app
from hub.sdi.oioidws import (
    CVR_ATTRIBUTE,
    SOAP12,
    attribute,
    holder_of_key,
    now_utc,
    parse_xml,
    sign_with_certificate,
    verify_assertion,
)
from hub.sdi.sts import NS, StsClient, StsError, build_request

CVR = "29189846"
LIFETIME = timedelta(hours=1)


@dataclass
class Clock:
    """A clock the STS and the client share, which a test can move forward."""

    offset: timedelta = timedelta()

    def __call__(self) -> datetime:
        return now_utc() + self.offset


@dataclass(frozen=True)
class Setup:
    ca: Credential
    sts: Credential
    client: Credential
    stranger: Credential  # issued by another CA
    url: str
    clock: Clock
    requests: list[httpx.Request] = field(default_factory=list)
    http: list[httpx.Client] = field(default_factory=list)

    def counting_http(self) -> httpx.Client:
        """An HTTP client that records each request it sends (closed after the test)."""
        http = httpx.Client(timeout=10, event_hooks={"request": [self.requests.append]})
        self.http.append(http)
        return http


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    ca = certs.make_ca("Test OCES CA")
    sts = certs.issue(ca, "Local STS", serial_number="CVR:11111111-FID:1")
    clock = Clock()
    app = create_sts_app(sts, trusted_ca=ca.certificate, lifetime=LIFETIME, clock=clock)
    with ServerThread(app) as server:
        yield Setup(ca=ca, sts=sts, client=certs.issue(ca, "Hub", serial_number="CVR:12345678-FID:2"),
                    stranger=certs.issue(certs.make_ca("Other CA"), "Stranger"), url=f"{server.url}/sts", clock=clock)


@pytest.fixture
def s(setup: Setup) -> Iterator[Setup]:
    setup.clock.offset = timedelta()
    setup.requests.clear()
    yield setup
    setup.clock.offset = timedelta()
    while setup.http:
        setup.http.pop().close()


def audience() -> str:
    """A fresh audience per test, so the process-wide token cache never carries over between tests."""
    return f"urn:test:service:{uuid.uuid4()}"


def client(s: Setup, credential: Credential | None = None, **kw: object) -> StsClient:
    options: dict[str, object] = {"audience": audience(), "cvr": CVR, "sts_certificate": s.sts.certificate,
                                  "clock": s.clock, "http": s.counting_http(), **kw}
    return StsClient(s.url, credential or s.client, **options)  # type: ignore[arg-type]


def post(s: Setup, body: bytes) -> tuple[int, str | None, str]:
    """POST raw bytes; (status, fault subcode or code, reason)."""
    response = httpx.post(s.url, content=body, headers={"Content-Type": "application/soap+xml"}, timeout=10)
    root = parse_xml(response.content)
    fault = root.find("s:Body/s:Fault", NS)
    assert fault is not None, response.text
    code = fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS) or fault.findtext("s:Code/s:Value",
                                                                                        namespaces=NS)
    return response.status_code, code, fault.findtext("s:Reason/s:Text", namespaces=NS) or ""


def signed_rst(s: Setup, credential: Credential, cvr: str | None = CVR) -> etree._Element:
    rst = build_request(url=s.url, audience=audience(), cvr=cvr or "", credential=credential)
    if cvr is None:
        claims = rst.find(".//wst:Claims", NS)
        claims.getparent().remove(claims)
    return sign_with_certificate(rst, credential, soap_ns=SOAP12, now=now_utc())


# ------------------------------------------------------------------ issuing


def test_token_is_signed_bound_and_carries_cvr_and_audience(s: Setup) -> None:
    sts_client = client(s)
    token = sts_client.token()
    now = now_utc()
    signed = verify_assertion(token.assertion, sts_certificate=s.sts.certificate, audience=sts_client.audience,
                              now=now)
    assert attribute(signed, CVR_ATTRIBUTE) == CVR
    assert attribute(signed, "dk:gov:saml:attribute:AssuranceLevel") == "3"
    assert attribute(signed, "dk:gov:saml:attribute:SpecVer") == "DK-SAML-2.0"
    assert attribute(signed, "dk:gov:saml:attribute:KombitSpecVer") == "1.0"
    assert holder_of_key(signed, now) == s.client.certificate
    assert signed.findtext("saml:Issuer", namespaces=NS) == "https://sts.hub.local"
    assert "CVR:12345678-FID:2" in (signed.findtext("saml:Subject/saml:NameID", namespaces=NS) or "")
    assert now + LIFETIME - timedelta(minutes=1) < token.expires <= now + LIFETIME
    with pytest.raises(Exception, match="audience"):
        verify_assertion(token.assertion, sts_certificate=s.sts.certificate, audience="urn:other", now=now)


def test_token_is_cached_until_it_nears_expiry(s: Setup) -> None:
    sts_client = client(s)
    first = sts_client.token()
    assert sts_client.token() is first
    assert len(s.requests) == 1
    s.clock.offset = LIFETIME - timedelta(minutes=4)  # inside the 5 minute margin
    second = sts_client.token()
    assert second is not first and second.expires > first.expires
    assert len(s.requests) == 2


def test_cache_is_shared_and_invalidate_refetches(s: Setup) -> None:
    one = client(s)
    other = StsClient(s.url, s.client, audience=one.audience, cvr=CVR, clock=s.clock, http=s.counting_http())
    assert one.token() is other.token()
    assert len(s.requests) == 1
    other.invalidate()
    one.token()
    assert len(s.requests) == 2


def test_concurrent_callers_share_one_fetch(s: Setup) -> None:
    sts_client = client(s)
    tokens: list[object] = []
    threads = [threading.Thread(target=lambda: tokens.append(sts_client.token())) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(s.requests) == 1 and len({id(t) for t in tokens}) == 1


def test_client_rejects_a_token_from_another_sts(s: Setup) -> None:
    with pytest.raises(StsError, match="unacceptable token.*does not verify"):
        client(s, sts_certificate=s.client.certificate).token()


# ------------------------------------------------------------------ faults


def test_unknown_client_certificate_is_refused(s: Setup) -> None:
    with pytest.raises(StsError, match="not issued by the trusted CA") as caught:
        client(s, s.stranger).token()
    assert caught.value.code == "wst:FailedAuthentication" and caught.value.status == 400


def test_unsigned_request_is_refused(s: Setup) -> None:
    rst = build_request(url=s.url, audience=audience(), cvr=CVR, credential=s.client)
    status, code, reason = post(s, etree.tostring(rst))
    assert (status, code) == (400, "wst:FailedAuthentication") and "not signed" in reason


def test_tampered_request_is_refused(s: Setup) -> None:
    rst = signed_rst(s, s.client)
    rst.find(".//auth:Value", NS).text = "99999999"
    status, code, reason = post(s, etree.tostring(rst))
    assert (status, code) == (400, "wst:FailedAuthentication") and "Digest mismatch" in reason


def test_missing_cvr_claim_is_refused(s: Setup) -> None:
    status, code, reason = post(s, etree.tostring(signed_rst(s, s.client, cvr=None)))
    assert (status, code) == (400, "wst:InvalidRequest") and CVR_ATTRIBUTE in reason


def test_bad_cvr_and_foreign_use_key_are_refused(s: Setup) -> None:
    status, code, reason = post(s, etree.tostring(signed_rst(s, s.client, cvr="1234")))
    assert (status, code) == (400, "wst:InvalidRequest") and "8 digits" in reason
    rst = build_request(url=s.url, audience=audience(), cvr=CVR, credential=s.stranger)  # UseKey: someone else
    status, code, reason = post(s, etree.tostring(sign_with_certificate(rst, s.client, soap_ns=SOAP12,
                                                                        now=now_utc())))
    assert (status, code) == (400, "wst:InvalidRequest") and "UseKey" in reason


def test_expired_request_timestamp_is_refused(s: Setup) -> None:
    rst = build_request(url=s.url, audience=audience(), cvr=CVR, credential=s.client)
    old = sign_with_certificate(rst, s.client, soap_ns=SOAP12, now=now_utc() - timedelta(minutes=30))
    status, code, reason = post(s, etree.tostring(old))
    assert (status, code) == (400, "wst:FailedAuthentication") and "expired" in reason


@pytest.mark.parametrize(("body", "expected"), [
    (b"this is not XML", (400, "wst:InvalidRequest")),
    (b'<!DOCTYPE e [<!ENTITY x "y">]><e>&x;</e>', (400, "wst:InvalidRequest")),
    (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>',
     (500, "s:VersionMismatch")),
    (f'<e:Envelope xmlns:e="{SOAP12}"><e:Body/></e:Envelope>'.encode(), (400, "wst:InvalidRequest")),
])
def test_malformed_requests_get_faults(s: Setup, body: bytes, expected: tuple[int, str]) -> None:
    status, code, reason = post(s, body)
    assert (status, code) == expected and reason
