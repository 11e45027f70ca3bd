"""A local security token service (STS) shaped like KOMBIT's, so the hub and its tests run the whole OIOIDWS exchange
without KOMBIT's test environment.

It answers KOMBIT's STS contract (`STS-AdgangsstyringSystemer/sts.wsdl`, WS-Trust 1.3 Issue over SOAP 1.2, as
`hub.sdi.sts` describes it): a system asks, signing with its function certificate, for a SAML 2.0 holder-of-key token
for one service (AppliesTo) on behalf of one municipality (its CVR), and gets an assertion signed by this STS that the
local index then accepts (`hub.sdi.oioidws`). The hub's client (`hub.sdi.sts`) speaks the same request to KOMBIT's STS.

The hub's policies where KOMBIT's material is silent:

- **Claims** as the client writes them (`hub.sdi.sts`): the CVR claim (`auth:ClaimType Uri=
  "dk:gov:saml:attribute:CvrNumberIdentifier"`, 8 digits) in `wst:Claims Dialect=
  "http://docs.oasis-open.org/wsfed/authorization/200706/authclaims"`.
- **Authentication.** The request must carry wsse:Security with a BinarySecurityToken (X509v3) of the client's
  certificate, a current Timestamp, and a signature by that certificate over Body, Timestamp and the WS-Addressing
  headers; the certificate must be issued by the trusted CA and be valid now. wst:UseKey (a BinarySecurityToken, a
  ds:KeyInfo/X509Data, or a reference to the message's token) must name that same certificate: the token is bound
  to a key the requester has proved it holds.
- **Faults** are SOAP 1.2 Faults with a WS-Trust subcode and a plain reason. Per the SOAP 1.2 HTTP binding an
  env:Sender fault is HTTP 400 (wst:InvalidRequest: the request is malformed or incomplete, including non-XML and
  DTDs; wst:FailedAuthentication: the signature or certificate fails) and any other fault is HTTP 500
  (env:VersionMismatch for a non-SOAP-1.2 envelope; env:Receiver with wst:RequestFailed when the STS itself fails).
- **The response** is not message-signed: the assertion inside carries the STS's signature, which the client
  verifies when it is given the STS certificate.
"""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import cryptography.exceptions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.signer import XMLSigner
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hub.sdi.certs import Credential
from hub.sdi.oioidws import (
    CVR_ATTRIBUTE,
    DS,
    HOLDER_OF_KEY,
    SAML,
    SAML_TOKEN_TYPE,
    SOAP11,
    SOAP12,
    WSA,
    WSU,
    SecurityError,
    binary_security_token,
    load_certificate_b64,
    now_utc,
    parse_xml,
    saml_reference,
    verify_with_certificate,
    xml_time,
)
from hub.sdi.sts import (
    ACTION_ISSUE_FINAL,
    CLAIMS_DIALECT,
    ISSUE,
    NS,
    PUBLIC_KEY,
    WSP,
    WST,
    XSI,
    serialise,
    sub,
)

__all__ = ["create_sts_app"]

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1 << 20
_CVR = re.compile(r"\d{8}")
_SUBJECT_NAMES = {NameOID.SERIAL_NUMBER: "SERIALNUMBER"}  # as OCES subjects are written in KOMBIT's assertions


class _Fault(Exception):
    """A SOAP 1.2 fault to answer with: code (env:Sender …), WS-Trust subcode, reason."""

    def __init__(self, subcode: str | None, reason: str, *, code: str = "Sender") -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason = code, subcode, reason

    @property
    def status(self) -> int:
        return 400 if self.code == "Sender" else 500  # SOAP 1.2 Part 2, 7.5.1.2


def _invalid(reason: str) -> _Fault:
    return _Fault("InvalidRequest", reason)


def _failed_authentication(reason: str) -> _Fault:
    return _Fault("FailedAuthentication", reason)


def _subject_name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string(_SUBJECT_NAMES)


def _cert_b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")


@dataclass(frozen=True)
class _Request:
    """What a verified RequestSecurityToken asks for."""

    client: x509.Certificate
    audience: str
    cvr: str
    context: str | None
    message_id: str | None


class _Sts:
    """The issuing logic, synchronous and pure apart from the clock: `answer(bytes) -> (status, bytes)`."""

    def __init__(self, credential: Credential, trusted_ca: x509.Certificate, issuer: str, lifetime: timedelta,
                 clock: Callable[[], datetime]) -> None:
        self.credential, self.trusted_ca, self.issuer = credential, trusted_ca, issuer
        self.lifetime, self.clock = lifetime, clock

    def answer(self, data: bytes) -> tuple[int, bytes]:
        try:
            return 200, serialise(self.issue(data))
        except _Fault as fault:
            return fault.status, serialise(_fault_envelope(fault))
        except Exception:  # the STS must answer, never crash: a Receiver fault says it was our failure
            log.exception("the STS failed on a request")
            failure = _Fault("RequestFailed", "the STS could not process the request", code="Receiver")
            return failure.status, serialise(_fault_envelope(failure))

    def issue(self, data: bytes) -> etree._Element:
        now = self.clock()
        if len(data) > MAX_REQUEST_BYTES:
            raise _invalid(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
        try:
            envelope = parse_xml(data)
        except SecurityError as exc:
            raise _invalid(f"the request is not acceptable XML: {exc}") from exc
        request = self._read(envelope, now)
        return self._response(request, now)

    def _read(self, envelope: etree._Element, now: datetime) -> _Request:
        if envelope.tag == f"{{{SOAP11}}}Envelope":
            raise _Fault(None, "the STS speaks SOAP 1.2 (http://www.w3.org/2003/05/soap-envelope), not SOAP 1.1",
                         code="VersionMismatch")
        if envelope.tag != f"{{{SOAP12}}}Envelope":
            raise _invalid(f"not a SOAP 1.2 envelope: {envelope.tag}")
        rst = envelope.find("s:Body/wst:RequestSecurityToken", NS)
        if rst is None:
            raise _invalid("the Body holds no wst:RequestSecurityToken")
        client = self._authenticate(envelope, now)
        request_type = (rst.findtext("wst:RequestType", namespaces=NS) or "").strip()
        if request_type != ISSUE:
            raise _invalid(f"wst:RequestType must be {ISSUE}, not {request_type or 'missing'!r}")
        token_type = rst.findtext("wst:TokenType", namespaces=NS)
        if token_type is not None and token_type.strip() != SAML_TOKEN_TYPE:
            raise _invalid(f"this STS issues only {SAML_TOKEN_TYPE}, not {token_type.strip()!r}")
        key_type = rst.findtext("wst:KeyType", namespaces=NS)
        if key_type is not None and key_type.strip() != PUBLIC_KEY:
            raise _invalid(f"this STS issues holder-of-key tokens for wst:KeyType {PUBLIC_KEY} only")
        if _use_key(rst, envelope) != client:
            raise _invalid("wst:UseKey must name the certificate that signed the request")
        return _Request(client=client, audience=_applies_to(rst), cvr=_cvr_claim(rst), context=rst.get("Context"),
                        message_id=envelope.findtext("s:Header/wsa:MessageID", namespaces=NS))

    def _authenticate(self, envelope: etree._Element, now: datetime) -> x509.Certificate:
        """The requester's certificate, once its chain, validity and signature over the request all check out."""
        try:
            certificate = binary_security_token(envelope, SOAP12)
        except SecurityError as exc:
            raise _failed_authentication(f"the request is not signed with a certificate: {exc}") from exc
        try:
            certificate.verify_directly_issued_by(self.trusted_ca)
        except (ValueError, TypeError, cryptography.exceptions.InvalidSignature) as exc:
            raise _failed_authentication(
                f"the certificate {_subject_name(certificate)} is not issued by the trusted CA "
                f"{self.trusted_ca.subject.rfc4514_string()}") from exc
        if not certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc:
            raise _failed_authentication(f"the certificate {_subject_name(certificate)} is not valid now")
        try:
            verify_with_certificate(envelope, certificate, soap_ns=SOAP12, now=now)
        except SecurityError as exc:
            raise _failed_authentication(str(exc)) from exc
        return certificate

    def _response(self, request: _Request, now: datetime) -> etree._Element:
        expires = min(now + self.lifetime, request.client.not_valid_after_utc)
        assertion = self._assertion(request, now, expires)
        envelope = etree.Element(f"{{{SOAP12}}}Envelope",
                                 nsmap={"s": SOAP12, "wsa": WSA, "wst": WST, "wsu": WSU, "wsp": WSP})
        header = sub(envelope, SOAP12, "Header")
        sub(header, WSA, "Action", ACTION_ISSUE_FINAL).set(f"{{{SOAP12}}}mustUnderstand", "1")
        if request.message_id:
            sub(header, WSA, "RelatesTo", request.message_id.strip())
        collection = sub(sub(envelope, SOAP12, "Body"), WST, "RequestSecurityTokenResponseCollection")
        response = sub(collection, WST, "RequestSecurityTokenResponse")
        if request.context is not None:
            response.set("Context", request.context)
        sub(response, WST, "TokenType", SAML_TOKEN_TYPE)
        sub(response, WST, "RequestedSecurityToken").append(assertion)
        for name in ("RequestedAttachedReference", "RequestedUnattachedReference"):
            sub(response, WST, name).append(saml_reference(str(assertion.get("ID"))))
        applies_to = sub(sub(response, WSP, "AppliesTo"), WSA, "EndpointReference")
        sub(applies_to, WSA, "Address", request.audience)
        lifetime = sub(response, WST, "Lifetime")
        sub(lifetime, WSU, "Created", xml_time(now))
        sub(lifetime, WSU, "Expires", xml_time(expires))
        sub(response, WST, "KeyType", PUBLIC_KEY)
        return envelope

    def _assertion(self, request: _Request, now: datetime, expires: datetime) -> etree._Element:
        """A SAML 2.0 holder-of-key assertion shaped as KOMBIT's STS issues them, signed (enveloped) by the STS."""
        assertion_id = f"_{uuid.uuid4()}"
        issued, until = xml_time(now), xml_time(expires)
        assertion = etree.Element(f"{{{SAML}}}Assertion", nsmap={"saml": SAML, "xsi": XSI},
                                  ID=assertion_id, IssueInstant=issued, Version="2.0")
        sub(assertion, SAML, "Issuer", self.issuer, Format="urn:oasis:names:tc:SAML:2.0:nameid-format:entity")
        etree.SubElement(assertion, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
        subject = sub(assertion, SAML, "Subject")
        sub(subject, SAML, "NameID", _subject_name(request.client),
             Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")
        confirmation = sub(subject, SAML, "SubjectConfirmation", Method=HOLDER_OF_KEY)
        data = sub(confirmation, SAML, "SubjectConfirmationData", NotBefore=issued, NotOnOrAfter=until,
                    Recipient=request.audience)
        data.set(f"{{{XSI}}}type", "saml:KeyInfoConfirmationDataType")
        key_info = etree.SubElement(data, f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
        sub(sub(key_info, DS, "X509Data"), DS, "X509Certificate", _cert_b64(request.client))
        conditions = sub(assertion, SAML, "Conditions", NotBefore=issued, NotOnOrAfter=until)
        sub(sub(conditions, SAML, "AudienceRestriction"), SAML, "Audience", request.audience)
        statement = sub(assertion, SAML, "AttributeStatement")
        for name, value in ((CVR_ATTRIBUTE, request.cvr), ("dk:gov:saml:attribute:AssuranceLevel", "3"),
                            ("dk:gov:saml:attribute:SpecVer", "DK-SAML-2.0"),
                            ("dk:gov:saml:attribute:KombitSpecVer", "1.0")):
            element = sub(statement, SAML, "Attribute", Name=name,
                           NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic")
            sub(element, SAML, "AttributeValue", value)
        authn = sub(sub(assertion, SAML, "AuthnStatement", AuthnInstant=issued), SAML, "AuthnContext")
        sub(authn, SAML, "AuthnContextClassRef", "urn:oasis:names:tc:SAML:2.0:ac:classes:X509")
        signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped,
            signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        return signer.sign(assertion, key=self.credential.key, cert=[self.credential.certificate],
                           reference_uri=f"#{assertion_id}")


def _use_key(rst: etree._Element, envelope: etree._Element) -> x509.Certificate:
    use_key = rst.find("wst:UseKey", NS)
    if use_key is None:
        raise _invalid("wst:UseKey is required: the certificate the token is to be bound to")
    try:
        token = use_key.find("wsse:BinarySecurityToken", NS)
        if token is not None:
            return load_certificate_b64(token.text, "wst:UseKey/wsse:BinarySecurityToken")
        data = use_key.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
        if data is not None:
            return load_certificate_b64(data, "wst:UseKey/ds:KeyInfo/ds:X509Data")
        reference = use_key.find("wsse:SecurityTokenReference/wsse:Reference", NS)
        if reference is not None:
            uri = reference.get("URI", "")
            tokens = envelope.findall(f"s:Header/wsse:Security/wsse:BinarySecurityToken[@wsu:Id='{uri[1:]}']", NS) \
                if re.fullmatch(r"#[\w.\-]+", uri) else []
            if len(tokens) == 1:
                return load_certificate_b64(tokens[0].text, "the BinarySecurityToken wst:UseKey refers to")
    except SecurityError as exc:
        raise _invalid(str(exc)) from exc
    raise _invalid("wst:UseKey holds no certificate (BinarySecurityToken, ds:KeyInfo/X509Data or a Reference)")


def _applies_to(rst: etree._Element) -> str:
    for ns in ("wsp", "wsp15"):
        address = rst.findtext(f"{ns}:AppliesTo/wsa:EndpointReference/wsa:Address", namespaces=NS)
        if address and address.strip():
            return str(address).strip()
    raise _invalid("wsp:AppliesTo/wsa:EndpointReference/wsa:Address is required: the service's entityID")


def _cvr_claim(rst: etree._Element) -> str:
    for claims in rst.findall("wst:Claims", NS):
        if claims.get("Dialect") != CLAIMS_DIALECT:
            continue
        for claim in claims.findall("auth:ClaimType", NS):
            if claim.get("Uri") == CVR_ATTRIBUTE:
                value = (claim.findtext("auth:Value", namespaces=NS) or "").strip()
                if not _CVR.fullmatch(value):
                    raise _invalid(f"the {CVR_ATTRIBUTE} claim must be a CVR number of 8 digits, not {value!r}")
                return value
    raise _invalid(f"the request has no {CVR_ATTRIBUTE} claim (wst:Claims Dialect {CLAIMS_DIALECT}, "
                   f"auth:ClaimType Uri {CVR_ATTRIBUTE}, auth:Value): the municipality the token is for")


def _fault_envelope(fault: _Fault) -> etree._Element:
    envelope = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"s": SOAP12, "wst": WST})
    element = sub(sub(envelope, SOAP12, "Body"), SOAP12, "Fault")
    code = sub(element, SOAP12, "Code")
    sub(code, SOAP12, "Value", f"s:{fault.code}")
    if fault.subcode is not None:
        sub(sub(code, SOAP12, "Subcode"), SOAP12, "Value", f"wst:{fault.subcode}")
    text = sub(sub(element, SOAP12, "Reason"), SOAP12, "Text", fault.reason)
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    return envelope


def create_sts_app(credential: Credential, *, trusted_ca: x509.Certificate, issuer: str = "https://sts.hub.local",
                   lifetime: timedelta = timedelta(hours=8), clock: Callable[[], datetime] = now_utc) -> Starlette:
    """The local STS: POST /sts takes a WS-Trust 1.3 Issue request (SOAP 1.2) and answers a token or a Fault."""
    sts = _Sts(credential, trusted_ca, issuer, lifetime, clock)

    async def issue(request: Request) -> Response:
        status, payload = await run_in_threadpool(sts.answer, await request.body())
        return Response(payload, status_code=status, media_type="application/soap+xml; charset=utf-8")

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/sts", issue, methods=["POST"]), Route("/health", health, methods=["GET"])])
