"""The client that gets holder-of-key tokens from a security token service (STS) shaped like KOMBIT's and caches them,
and the WS-Trust vocabulary it shares with the hub's local STS (`hub.sdi.local.sts`).

KOMBIT's STS contract (`STS-AdgangsstyringSystemer/sts.wsdl`) is WS-Trust 1.3 Issue over SOAP 1.2: the system asks,
signing with its function certificate, for a SAML 2.0 holder-of-key token for one service (AppliesTo) on behalf of
one municipality (its CVR), and gets an assertion signed by the STS that SF1470 then accepts (`hub.sdi.oioidws`).
The client speaks the same request to KOMBIT's STS and to the local one, which lets the hub and its tests run the
whole OIOIDWS exchange without KOMBIT's test environment.

The hub's policies where KOMBIT's material is silent (what the local STS requires and answers, in full, in
`hub.sdi.local.sts`):

- **Claims.** The WSDL gives no RequestSecurityToken claims format. The CVR travels as
  `wst:Claims Dialect="http://docs.oasis-open.org/wsfed/authorization/200706/authclaims"` holding
  `auth:ClaimType Uri="dk:gov:saml:attribute:CvrNumberIdentifier"` with `auth:Value` = the CVR (8 digits).
- **Authentication.** The request carries wsse:Security with a BinarySecurityToken (X509v3) of the client's
  certificate, a current Timestamp, and a signature by that certificate over Body, Timestamp and the WS-Addressing
  headers; wst:UseKey names that same certificate, to which the token is then bound.
- **The response** is not message-signed: the assertion inside carries the STS's signature, which the client
  verifies when it is given the STS certificate.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256

import httpx
from cryptography import x509
from lxml import etree

from hub.sdi.certs import Credential
from hub.sdi.oioidws import (
    ANONYMOUS,
    BASE64_BINARY,
    CVR_ATTRIBUTE,
    DS,
    SAML,
    SAML_TOKEN_TYPE,
    SOAP12,
    WSA,
    WSSE,
    WSU,
    X509V3,
    SecurityError,
    assertion_expiry,
    attribute,
    holder_of_key,
    now_utc,
    parse_time,
    parse_xml,
    sign_with_certificate,
    verify_assertion,
)

__all__ = ["StsClient", "StsError", "Token", "build_request", "now_utc"]

WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"  # the WS-Policy namespace of sts.wsdl (WS-Trust 1.3)
WSP15 = "http://www.w3.org/ns/ws-policy"  # also accepted in AppliesTo
AUTH = "http://docs.oasis-open.org/wsfed/authorization/200706"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CLAIMS_DIALECT = f"{AUTH}/authclaims"
ISSUE = f"{WST}/Issue"
PUBLIC_KEY = f"{WST}/PublicKey"
ACTION_ISSUE = f"{WST}/RST/Issue"
ACTION_ISSUE_FINAL = f"{WST}/RSTRC/IssueFinal"
NS = {"s": SOAP12, "wst": WST, "wsp": WSP, "wsp15": WSP15, "wsa": WSA, "wsse": WSSE, "wsu": WSU, "ds": DS,
      "saml": SAML, "auth": AUTH}


@dataclass(frozen=True)
class Token:
    """An issued assertion, exactly as the STS signed it, and when to stop using it."""

    assertion: etree._Element
    expires: datetime


class StsError(Exception):
    """The STS refused the request or failed; `code` is the fault subcode (e.g. wst:FailedAuthentication)."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def sub(parent: etree._Element, ns: str, name: str, text: str | None = None, **attrib: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{name}", attrib)
    if text is not None:
        element.text = text
    return element


def serialise(envelope: etree._Element) -> bytes:
    return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))


_CacheKey = tuple[str, str, str, str]
_CACHE: dict[_CacheKey, Token] = {}
_LOCKS: dict[_CacheKey, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def build_request(*, url: str, audience: str, cvr: str, credential: Credential) -> etree._Element:
    """An unsigned WS-Trust 1.3 Issue request (SOAP 1.2) for a holder-of-key SAML 2.0 token for `audience` and
    `cvr`, bound to `credential`'s certificate."""
    envelope = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"s": SOAP12, "wsa": WSA, "wsu": WSU, "wst": WST,
                                                              "wsp": WSP, "wsse": WSSE, "auth": AUTH})
    header = sub(envelope, SOAP12, "Header")
    sub(header, WSA, "Action", ACTION_ISSUE).set(f"{{{SOAP12}}}mustUnderstand", "1")
    sub(header, WSA, "MessageID", f"urn:uuid:{uuid.uuid4()}")
    sub(header, WSA, "To", url)
    sub(sub(header, WSA, "ReplyTo"), WSA, "Address", ANONYMOUS)
    rst = sub(sub(envelope, SOAP12, "Body"), WST, "RequestSecurityToken", Context=f"urn:uuid:{uuid.uuid4()}")
    sub(rst, WST, "TokenType", SAML_TOKEN_TYPE)
    sub(rst, WST, "RequestType", ISSUE)
    sub(sub(sub(rst, WSP, "AppliesTo"), WSA, "EndpointReference"), WSA, "Address", audience)
    sub(rst, WST, "KeyType", PUBLIC_KEY)
    sub(sub(rst, WST, "UseKey"), WSSE, "BinarySecurityToken", credential.cert_b64, ValueType=X509V3,
         EncodingType=BASE64_BINARY)
    claim = sub(sub(rst, WST, "Claims", Dialect=CLAIMS_DIALECT), AUTH, "ClaimType", Uri=CVR_ATTRIBUTE)
    sub(claim, AUTH, "Value", cvr)
    return envelope


class StsClient:
    """Gets holder-of-key tokens from an STS (KOMBIT's or the local one) and caches them until shortly before they
    expire. The cache is shared by all clients in the process, one entry per (STS, certificate, audience, CVR), so a
    client made per call still reuses tokens; a lock per entry makes concurrent callers wait for one fetch."""

    def __init__(self, url: str, credential: Credential, *, audience: str, cvr: str,
                 sts_certificate: x509.Certificate | None = None, clock: Callable[[], datetime] = now_utc,
                 margin: timedelta = timedelta(minutes=5), http: httpx.Client | None = None) -> None:
        self.url, self.credential, self.audience, self.cvr = url, credential, audience, cvr
        self.sts_certificate, self.clock, self.margin = sts_certificate, clock, margin
        self._http = http
        fingerprint = sha256(credential.cert_pem).hexdigest()
        self._key: _CacheKey = (url, fingerprint, audience, cvr)
        with _LOCKS_GUARD:
            self._lock = _LOCKS.setdefault(self._key, threading.Lock())

    def token(self) -> Token:
        """A token valid for at least `margin` more: the cached one, or a new one from the STS."""
        with self._lock:
            cached = _CACHE.get(self._key)
            if cached is not None and self.clock() < cached.expires - self.margin:
                return cached
            token = self._fetch()
            _CACHE[self._key] = token
            return token

    def invalidate(self) -> None:
        """Forget the cached token, e.g. when the service rejected it."""
        with self._lock:
            _CACHE.pop(self._key, None)

    def _fetch(self) -> Token:
        now = self.clock()
        envelope = build_request(url=self.url, audience=self.audience, cvr=self.cvr, credential=self.credential)
        signed = sign_with_certificate(envelope, self.credential, soap_ns=SOAP12, now=now)
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION_ISSUE}"'}
        try:
            if self._http is None:
                with httpx.Client(timeout=30) as http:
                    response = http.post(self.url, content=serialise(signed), headers=headers)
            else:
                response = self._http.post(self.url, content=serialise(signed), headers=headers)
        except httpx.HTTPError as exc:
            raise StsError(f"the STS at {self.url} could not be reached: {exc}") from exc
        return self._token(response, now)

    def _token(self, response: httpx.Response, now: datetime) -> Token:
        try:
            envelope = parse_xml(response.content)
        except SecurityError as exc:
            raise StsError(f"the STS answered HTTP {response.status_code} without SOAP: {exc}",
                           status=response.status_code) from exc
        fault = envelope.find("s:Body/s:Fault", NS)
        if fault is not None:
            code = fault.findtext("s:Code/s:Subcode/s:Value", namespaces=NS) or fault.findtext("s:Code/s:Value",
                                                                                                namespaces=NS)
            reason = " ".join((fault.findtext("s:Reason/s:Text", namespaces=NS) or "").split())
            raise StsError(f"the STS refused: {code}: {reason}", code=code, status=response.status_code)
        if response.status_code != 200:
            raise StsError(f"the STS answered HTTP {response.status_code}", status=response.status_code)
        found = envelope.find("s:Body//wst:RequestedSecurityToken/saml:Assertion", NS)
        if found is None:
            raise StsError("the STS answer holds no RequestedSecurityToken/saml:Assertion")
        assertion = copy.deepcopy(found)
        try:
            expires = self._check(assertion, now)
            lifetime = envelope.findtext(".//wst:RequestSecurityTokenResponse/wst:Lifetime/wsu:Expires",
                                         namespaces=NS)
            if lifetime is not None:
                expires = min(expires, parse_time(lifetime, "wst:Lifetime/wsu:Expires"))
        except SecurityError as exc:
            raise StsError(f"the STS issued an unacceptable token: {exc}") from exc
        return Token(assertion=assertion, expires=expires)

    def _check(self, assertion: etree._Element, now: datetime) -> datetime:
        """The token's expiry; with the STS certificate known, also that it is the STS's and is what we asked for."""
        if self.sts_certificate is None:
            return assertion_expiry(assertion)
        signed = verify_assertion(assertion, sts_certificate=self.sts_certificate, audience=self.audience, now=now)
        if holder_of_key(signed, now) != self.credential.certificate:
            raise SecurityError("the token is bound to another certificate than ours")
        if attribute(signed, CVR_ATTRIBUTE) != self.cvr:
            raise SecurityError(f"the token is for CVR {attribute(signed, CVR_ATTRIBUTE)!r}, not {self.cvr!r}")
        return assertion_expiry(signed)
