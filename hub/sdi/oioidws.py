"""OIOIDWS message security for SOAP calls to KOMBIT (SF1470) and for the hub's local services.

What KOMBIT's policy asks (`SF1470-SagDokumentIndeks/wsdl/xsd/policies/OIOIDWS.wsdl`, read with KOMBIT's captured
request `examples/kosdy-java/example.xml`): the caller presents a SAML 2.0 holder-of-key assertion issued by KOMBIT's
STS, and signs the message with the key the assertion is bound to (AsymmetricBinding, Basic256Sha256: RSA-SHA256,
SHA-256 digests, exc-c14n); the signature covers the Body, the Timestamp (IncludeTimestamp) and the WS-Addressing
headers (SignedParts), and the token (ProtectTokens). The service answers signed with its own X.509 certificate.

How the hub does it, with signxml (XML-DSig on lxml + cryptography):

- `secure_request` gives the Body, each WS-Addressing header and the Liberty `sbf:Framework` header a wsu:Id, and
  adds `wsse:Security` (mustUnderstand) with a Timestamp, the assertion exactly as issued, a SecurityTokenReference
  (KeyIdentifier, ValueType SAMLID) and a ds:Signature whose KeyInfo is such a reference to the assertion.
- **STR policy.** KOMBIT's sample signs the token through the STR-Transform, which signxml (like most libraries
  outside WSS4J/.NET) does not implement. The hub instead signs the SecurityTokenReference element itself (by its
  wsu:Id, exc-c14n) *and* the Assertion by its ID: that binds the same token, the Assertion's bytes rather than a
  dereference of them. A verifier that insists on the STR-Transform will not accept the hub's STR reference; one that
  follows the references by Id will. `verify_request` accepts the hub's form (it cannot check an STR-Transform).
- `verify_request` is the service side: it verifies the assertion's enveloped signature against the trusted STS
  certificate, its validity, audience and holder-of-key confirmation, then the message signature with the
  certificate in the assertion's SubjectConfirmationData, and that the signature covers what the policy says
  (a valid signature over the wrong parts is no signature). It reads claims only from what signxml verified.
- Responses (`sign_response`/`verify_response`) are signed with the service's certificate carried as a
  BinarySecurityToken (X509v3), over Body, Timestamp and the WS-Addressing headers; the same two helpers sign and
  verify the STS's RequestSecurityToken (SOAP 1.2): the client signs it (`hub.sdi.sts`), the local STS verifies it
  (`hub.sdi.local.sts`).

Every check raises `SecurityError`, whose text says what failed. All times are timezone-aware UTC.
"""

from __future__ import annotations

import base64
import binascii
import copy
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cryptography.exceptions
from cryptography import x509
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from hub.core import xml
from hub.sdi.certs import Credential

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSA = "http://www.w3.org/2005/08/addressing"
ANONYMOUS = f"{WSA}/anonymous"
DS = "http://www.w3.org/2000/09/xmldsig#"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SBF = "urn:liberty:sb:2006-08"
NS = {"wsse": WSSE, "wsse11": WSSE11, "wsu": WSU, "wsa": WSA, "ds": DS, "saml": SAML, "sbf": SBF}

SAML_TOKEN_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"
SAMLID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
CVR_ATTRIBUTE = "dk:gov:saml:attribute:CvrNumberIdentifier"
# WS-Addressing headers the policy's SignedParts names, in the order the hub references them.
WSA_HEADERS = ("Action", "MessageID", "To", "From", "ReplyTo", "FaultTo", "RelatesTo")

WSU_ID = f"{{{WSU}}}Id"
DEFAULT_SKEW = timedelta(minutes=5)
# Basic256Sha256: nothing weaker is accepted, whatever a signature claims.
_VERIFY = SignatureConfiguration(
    expect_references=True,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)


class SecurityError(Exception):
    """A message or token that fails OIOIDWS; the text says why."""


@dataclass(frozen=True)
class Caller:
    """Who called, as the verified assertion says: the municipality (CVR) and the system's certificate."""

    cvr: str
    subject: str
    certificate: x509.Certificate
    assertion_id: str


def now_utc() -> datetime:
    return datetime.now(UTC)


def xml_time(moment: datetime) -> str:
    """xs:dateTime in UTC with milliseconds and Z, as KOMBIT's STS writes it."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str | None, what: str) -> datetime:
    """An xs:dateTime that must carry a zone (WSS and SAML require UTC); SecurityError if not."""
    if not text or not text.strip():
        raise SecurityError(f"{what} is missing")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise SecurityError(f"{what} is not an xs:dateTime: {text.strip()!r}") from exc
    if moment.tzinfo is None:
        raise SecurityError(f"{what} has no time zone: {text.strip()!r}")
    return moment.astimezone(UTC)


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML: no entities, no network, no DTD (a document that declares one is refused)."""
    try:
        root = xml.untrusted(data)
    except xml.XmlRefused as exc:
        raise SecurityError(exc.text) from exc
    return root


def load_certificate_b64(text: str | None, what: str) -> x509.Certificate:
    """A certificate from base64 DER (ds:X509Certificate, wsse:BinarySecurityToken); whitespace is allowed."""
    if not text or not text.strip():
        raise SecurityError(f"{what} is empty")
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise SecurityError(f"{what} is not a base64 DER X.509 certificate: {exc}") from exc


# ---------------------------------------------------------------- envelope helpers


def _one(parent: etree._Element, path: str, what: str) -> etree._Element:
    found = parent.findall(path, NS)
    if len(found) != 1:
        raise SecurityError(f"expected one {what}, found {len(found)}")
    return found[0]


def _envelope(envelope: etree._Element, soap_ns: str) -> tuple[etree._Element | None, etree._Element]:
    """(Header or None, Body) of a SOAP envelope of the given version."""
    if envelope.tag != f"{{{soap_ns}}}Envelope":
        raise SecurityError(f"not a SOAP envelope in {soap_ns}: {envelope.tag}")
    bodies, headers = envelope.findall(f"{{{soap_ns}}}Body"), envelope.findall(f"{{{soap_ns}}}Header")
    if len(bodies) != 1 or len(headers) > 1:  # a second Body or Header could hide what was signed
        raise SecurityError(f"the SOAP envelope has {len(bodies)} Body and {len(headers)} Header elements")
    return (headers[0] if headers else None), bodies[0]


def _header(envelope: etree._Element, soap_ns: str) -> etree._Element:
    header, body = _envelope(envelope, soap_ns)
    if header is None:
        header = etree.Element(f"{{{soap_ns}}}Header")
        body.addprevious(header)
    if header.find("wsse:Security", NS) is not None:
        raise SecurityError("the message already has a wsse:Security header")
    return header


def _ensure_id(element: etree._Element, prefix: str = "_") -> str:
    existing = element.get(WSU_ID)
    if existing:
        return str(existing)
    ident = f"{prefix}{uuid.uuid4()}"
    element.set(WSU_ID, ident)
    return ident


def _wsa_headers(header: etree._Element | None) -> list[etree._Element]:
    if header is None:
        return []
    return [child for child in header if isinstance(child.tag, str) and etree.QName(child).namespace == WSA
            and etree.QName(child).localname in WSA_HEADERS]


def _framework(header: etree._Element | None) -> etree._Element | None:
    return None if header is None else header.find("sbf:Framework", NS)


def _security_element(header: etree._Element, soap_ns: str) -> etree._Element:
    security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE, "wsu": WSU})
    security.set(f"{{{soap_ns}}}mustUnderstand", "1")
    return security


def _timestamp(security: etree._Element, now: datetime, ttl: timedelta) -> str:
    timestamp = etree.SubElement(security, f"{{{WSU}}}Timestamp")
    ident = _ensure_id(timestamp, "TS-")
    etree.SubElement(timestamp, f"{{{WSU}}}Created").text = xml_time(now)
    etree.SubElement(timestamp, f"{{{WSU}}}Expires").text = xml_time(now + ttl)
    return ident


def saml_reference(assertion_id: str) -> etree._Element:
    """A wsse:SecurityTokenReference to a SAML 2.0 assertion by its ID (KeyIdentifier, ValueType SAMLID)."""
    reference = etree.Element(f"{{{WSSE}}}SecurityTokenReference", nsmap={"wsse": WSSE, "wsse11": WSSE11})
    reference.set(f"{{{WSSE11}}}TokenType", SAML_TOKEN_TYPE)
    etree.SubElement(reference, f"{{{WSSE}}}KeyIdentifier", ValueType=SAMLID).text = assertion_id
    return reference


def _key_info(reference: etree._Element) -> etree._Element:
    key_info = etree.Element(f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
    key_info.append(reference)
    return key_info


def _sign(envelope: etree._Element, security: etree._Element, credential: Credential, ids: Iterable[str],
          key_info: etree._Element) -> None:
    """Append to `security` a detached ds:Signature over the elements with these Ids (exc-c14n, RSA-SHA256)."""
    signer = XMLSigner(
        method=SignatureConstructionMethod.detached,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signature = signer.sign(envelope, key=credential.key, reference_uri=[f"#{i}" for i in ids], key_info=key_info)
    security.append(signature)


# ---------------------------------------------------------------- verification helpers


def _security(envelope: etree._Element, soap_ns: str) -> tuple[etree._Element, etree._Element, etree._Element]:
    """(Header, Body, wsse:Security); an unsigned message fails here."""
    header, body = _envelope(envelope, soap_ns)
    if header is None:
        raise SecurityError("the message has no SOAP Header, so no wsse:Security: it is not signed")
    found = header.findall("wsse:Security", NS)
    if not found:
        raise SecurityError("the message has no wsse:Security header: it is not signed")
    if len(found) > 1:
        raise SecurityError(f"the message has {len(found)} wsse:Security headers; expected one")
    return header, body, found[0]


def _check_timestamp(security: etree._Element, now: datetime, skew: timedelta) -> etree._Element:
    timestamp = _one(security, "wsu:Timestamp", "wsu:Timestamp in wsse:Security")
    created = parse_time(timestamp.findtext("wsu:Created", namespaces=NS), "wsu:Timestamp/wsu:Created")
    expires = parse_time(timestamp.findtext("wsu:Expires", namespaces=NS), "wsu:Timestamp/wsu:Expires")
    if created > now + skew:
        raise SecurityError(f"the message Timestamp was created in the future ({xml_time(created)}; "
                            f"now {xml_time(now)})")
    if expires <= now - skew:
        raise SecurityError(f"the message Timestamp expired at {xml_time(expires)} (now {xml_time(now)})")
    if expires <= created:
        raise SecurityError("the message Timestamp expires before it was created")
    return timestamp


def _count_ids(root: etree._Element, ident: str) -> int:
    """How many elements carry this value in an Id-like attribute: signxml resolves `#x` by any of them, so a
    second one would let a signature cover a decoy instead of the part we check (signature wrapping)."""
    query = "descendant-or-self::*[@*[local-name()='Id' or local-name()='ID' or local-name()='id'][.=$v]]"
    found = root.xpath(query, v=ident)
    return len(found) if isinstance(found, list) else 0


def _verify(root: etree._Element, certificate: x509.Certificate, location: str, now: datetime,
            what: str) -> list[VerifyResult]:
    config = SignatureConfiguration(
        location=location,
        expect_references=_VERIFY.expect_references,
        signature_methods=_VERIFY.signature_methods,
        digest_algorithms=_VERIFY.digest_algorithms,
        verification_time=now,
    )
    try:
        results = XMLVerifier().verify(root, x509_cert=certificate, expect_config=config)
    except (SignXMLException, cryptography.exceptions.InvalidSignature, etree.LxmlError, ValueError) as exc:
        detail = str(exc).strip().rstrip(":")
        if detail.endswith("verification failed") or not detail:  # cryptography says no more than that
            detail = f"the SignatureValue was not made with the key of {certificate.subject.rfc4514_string()}"
        raise SecurityError(f"{what} does not verify: {detail}") from exc
    results = results if isinstance(results, list) else [results]
    if not results:
        raise SecurityError(f"{what} has no references")
    return results


def _signed_ids(result: VerifyResult) -> set[str]:
    """The Ids the verified SignedInfo references (read from the SignedInfo that signxml checked)."""
    return {uri[1:] for ref in result.signature_xml.iterfind("ds:SignedInfo/ds:Reference", NS)
            if (uri := ref.get("URI", "")).startswith("#")}


def _verify_message(envelope: etree._Element, soap_ns: str, certificate: x509.Certificate, now: datetime) -> set[str]:
    location = f"./{{{soap_ns}}}Header/{{{WSSE}}}Security/"
    return _signed_ids(_verify(envelope, certificate, location, now, "the message signature")[0])


def _require_signed(envelope: etree._Element, signed: set[str],
                    parts: Iterable[tuple[str, etree._Element, str]]) -> None:
    """Each (description, element, id attribute) must be referenced by the signature, and its Id unique."""
    for what, element, attribute in parts:
        ident = element.get(attribute)
        if not ident or ident not in signed:
            raise SecurityError(f"the message signature does not cover {what}")
        if _count_ids(envelope, ident) != 1:
            raise SecurityError(f"the Id {ident!r} of {what} occurs more than once in the message")


def _covered_parts(header: etree._Element | None, body: etree._Element, timestamp: etree._Element,
                   wsa: Iterable[str]) -> list[tuple[str, etree._Element, str]]:
    parts = [("the Body", body, WSU_ID), ("the Timestamp", timestamp, WSU_ID)]
    parts += [(f"the wsa:{etree.QName(h).localname} header", h, WSU_ID) for h in _wsa_headers(header)
              if etree.QName(h).localname in wsa]
    return parts


# ---------------------------------------------------------------- SAML assertion


def verify_assertion(assertion: etree._Element, *, sts_certificate: x509.Certificate, audience: str | None,
                     now: datetime, clock_skew: timedelta = DEFAULT_SKEW) -> etree._Element:
    """Check an assertion's enveloped signature by the STS, its validity and audience; returns the assertion as
    signxml verified it (signature removed). Read claims only from the returned element, never from the input."""
    if assertion.tag != f"{{{SAML}}}Assertion":
        raise SecurityError(f"not a SAML 2.0 Assertion: {assertion.tag}")
    assertion_id = assertion.get("ID")
    if not assertion_id:
        raise SecurityError("the Assertion has no ID")
    result = _verify(assertion, sts_certificate, "./", now, "the Assertion's signature by the trusted STS")[0]
    references = result.signature_xml.findall("ds:SignedInfo/ds:Reference", NS)
    if len(references) != 1 or references[0].get("URI") != f"#{assertion_id}":
        raise SecurityError("the Assertion's signature does not reference the Assertion itself")
    if _count_ids(assertion, assertion_id) != 1:
        raise SecurityError(f"the Assertion ID {assertion_id!r} occurs more than once")
    signed = result.signed_xml
    if signed is None or signed.tag != f"{{{SAML}}}Assertion" or signed.get("ID") != assertion_id:
        raise SecurityError("the Assertion's signature does not cover the Assertion")
    _check_conditions(signed, audience, now, clock_skew)
    return signed


def _check_conditions(signed: etree._Element, audience: str | None, now: datetime, skew: timedelta) -> None:
    conditions = signed.find("saml:Conditions", NS)
    if conditions is None:
        raise SecurityError("the Assertion has no Conditions, so no validity period")
    not_before = conditions.get("NotBefore")
    if not_before is not None and parse_time(not_before, "Conditions/@NotBefore") > now + skew:
        raise SecurityError(f"the token is not valid before {not_before}")
    not_after = parse_time(conditions.get("NotOnOrAfter"), "Conditions/@NotOnOrAfter")
    if not_after <= now - skew:
        raise SecurityError(f"the token expired at {xml_time(not_after)} (now {xml_time(now)})")
    if audience is None:
        return
    restrictions = conditions.findall("saml:AudienceRestriction", NS)
    if not restrictions:
        raise SecurityError(f"the token has no AudienceRestriction; expected audience {audience!r}")
    for restriction in restrictions:  # SAML: every restriction must admit us, any Audience within one
        audiences = [(a.text or "").strip() for a in restriction.findall("saml:Audience", NS)]
        if audience not in audiences:
            raise SecurityError(f"the token is for audience {', '.join(audiences)!r}, not {audience!r}")


def assertion_expiry(assertion: etree._Element) -> datetime:
    """When a token stops being valid: Conditions/@NotOnOrAfter."""
    conditions = assertion.find("saml:Conditions", NS)
    return parse_time(None if conditions is None else conditions.get("NotOnOrAfter"), "Conditions/@NotOnOrAfter")


def holder_of_key(signed: etree._Element, now: datetime, skew: timedelta = DEFAULT_SKEW) -> x509.Certificate:
    """The certificate a holder-of-key assertion is bound to (SubjectConfirmationData/KeyInfo/X509Data)."""
    confirmations = [c for c in signed.findall("saml:Subject/saml:SubjectConfirmation", NS)
                     if c.get("Method") == HOLDER_OF_KEY]
    if not confirmations:
        raise SecurityError("the token is not holder-of-key (no SubjectConfirmation with that Method)")
    data = confirmations[0].find("saml:SubjectConfirmationData", NS)
    if data is None:
        raise SecurityError("the holder-of-key SubjectConfirmation has no SubjectConfirmationData")
    not_after = data.get("NotOnOrAfter")
    if not_after is not None and parse_time(not_after, "SubjectConfirmationData/@NotOnOrAfter") <= now - skew:
        raise SecurityError(f"the token's subject confirmation expired at {not_after}")
    text = data.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS)
    return load_certificate_b64(text, "the holder-of-key certificate in SubjectConfirmationData")


def attribute(signed: etree._Element, name: str) -> str | None:
    """The first value of a SAML attribute, stripped; None when absent."""
    for element in signed.findall("saml:AttributeStatement/saml:Attribute", NS):
        if element.get("Name") == name:
            value = element.findtext("saml:AttributeValue", namespaces=NS)
            return None if value is None else value.strip()
    return None


# ---------------------------------------------------------------- requests (client and service side)


def secure_request(envelope: etree._Element, assertion: etree._Element, credential: Credential, *, now: datetime,
                   ttl: timedelta = timedelta(minutes=5)) -> etree._Element:
    """Sign a SOAP 1.1 request as OIOIDWS asks, with the holder-of-key `assertion` and its `credential`.

    Signs in place and returns the same envelope. The assertion is copied in untouched: its STS signature must
    keep verifying. Declare xmlns:wsu on the Envelope to have the added wsu:Id attributes use that prefix (lxml
    otherwise declares a generated one on each element; any prefix is equally valid).
    """
    assertion_id = assertion.get("ID")
    if assertion.tag != f"{{{SAML}}}Assertion" or not assertion_id:
        raise SecurityError("secure_request needs a SAML 2.0 Assertion with an ID")
    header = _header(envelope, SOAP11)
    _, body = _envelope(envelope, SOAP11)
    body_id = _ensure_id(body)
    wsa_ids = [_ensure_id(h) for h in _wsa_headers(header)]
    framework = _framework(header)
    framework_ids = [] if framework is None else [_ensure_id(framework)]
    security = _security_element(header, SOAP11)
    timestamp_id = _timestamp(security, now, ttl)
    security.append(copy.deepcopy(assertion))
    reference = saml_reference(assertion_id)
    reference_id = _ensure_id(reference, "STR-")
    security.append(reference)
    ids = [timestamp_id, reference_id, body_id, *wsa_ids, *framework_ids, assertion_id]
    _sign(envelope, security, credential, ids, _key_info(saml_reference(assertion_id)))
    return envelope


def verify_request(envelope: etree._Element, *, sts_certificate: x509.Certificate, audience: str | None,
                   now: datetime, clock_skew: timedelta = DEFAULT_SKEW) -> Caller:
    """Check an OIOIDWS request (service side) and say who sent it; SecurityError on any failure."""
    header, body, security = _security(envelope, SOAP11)
    timestamp = _check_timestamp(security, now, clock_skew)
    assertion = _one(security, "saml:Assertion", "SAML Assertion in wsse:Security")
    signed = verify_assertion(assertion, sts_certificate=sts_certificate, audience=audience, now=now,
                              clock_skew=clock_skew)
    assertion_id = str(signed.get("ID"))
    certificate = holder_of_key(signed, now, clock_skew)
    cvr = attribute(signed, CVR_ATTRIBUTE)
    if not cvr:
        raise SecurityError(f"the token carries no {CVR_ATTRIBUTE} attribute")
    key_ref = security.findtext("ds:Signature/ds:KeyInfo/wsse:SecurityTokenReference/wsse:KeyIdentifier",
                                namespaces=NS)
    if key_ref is None or key_ref.strip() != assertion_id:
        raise SecurityError("the message signature's KeyInfo does not refer to the SAML token in the message")
    signed_ids = _verify_message(envelope, SOAP11, certificate, now)
    parts = _covered_parts(header, body, timestamp, WSA_HEADERS)
    framework = _framework(header)
    if framework is not None:
        parts.append(("the sbf:Framework header", framework, WSU_ID))
    parts.append(("the SAML Assertion", assertion, "ID"))
    _require_signed(envelope, signed_ids, parts)
    subject = (signed.findtext("saml:Subject/saml:NameID", namespaces=NS) or "").strip()
    return Caller(cvr=cvr, subject=subject, certificate=certificate, assertion_id=assertion_id)


# ---------------------------------------------------------------- X.509-signed messages (responses, STS requests)


def sign_with_certificate(envelope: etree._Element, credential: Credential, *, soap_ns: str, now: datetime,
                          ttl: timedelta = timedelta(minutes=5)) -> etree._Element:
    """Sign with a certificate sent along as a BinarySecurityToken (X509v3): Timestamp, the token, Body and every
    WS-Addressing header present. Used for service responses (SOAP 1.1) and for requests to the STS (SOAP 1.2)."""
    header = _header(envelope, soap_ns)
    _, body = _envelope(envelope, soap_ns)
    body_id = _ensure_id(body)
    wsa_ids = [_ensure_id(h) for h in _wsa_headers(header)]
    security = _security_element(header, soap_ns)
    timestamp_id = _timestamp(security, now, ttl)
    token = etree.SubElement(security, f"{{{WSSE}}}BinarySecurityToken", EncodingType=BASE64_BINARY,
                             ValueType=X509V3)
    token.text = credential.cert_b64
    token_id = _ensure_id(token, "X509-")
    reference = etree.Element(f"{{{WSSE}}}SecurityTokenReference", nsmap={"wsse": WSSE})
    etree.SubElement(reference, f"{{{WSSE}}}Reference", URI=f"#{token_id}", ValueType=X509V3)
    _sign(envelope, security, credential, [timestamp_id, token_id, body_id, *wsa_ids], _key_info(reference))
    return envelope


def binary_security_token(envelope: etree._Element, soap_ns: str) -> x509.Certificate:
    """The certificate in the message's single X509v3 BinarySecurityToken (not yet trusted: check it)."""
    _, _, security = _security(envelope, soap_ns)
    token = _one(security, "wsse:BinarySecurityToken", "wsse:BinarySecurityToken in wsse:Security")
    if token.get("ValueType") != X509V3:
        raise SecurityError(f"the BinarySecurityToken is not an X509v3 certificate: {token.get('ValueType')}")
    return load_certificate_b64(token.text, "the BinarySecurityToken")


def verify_with_certificate(envelope: etree._Element, certificate: x509.Certificate, *, soap_ns: str, now: datetime,
                            clock_skew: timedelta = DEFAULT_SKEW, wsa: Iterable[str] = WSA_HEADERS) -> None:
    """Check a message signed by `certificate` (its BinarySecurityToken, if any, must be that certificate): the
    Timestamp is current and the signature covers Body, Timestamp and the WS-Addressing headers named in `wsa`."""
    header, body, security = _security(envelope, soap_ns)
    timestamp = _check_timestamp(security, now, clock_skew)
    if security.find("wsse:BinarySecurityToken", NS) is not None:
        sent = binary_security_token(envelope, soap_ns)
        if sent != certificate:
            raise SecurityError(f"the message is signed by {sent.subject.rfc4514_string()}, "
                                f"not by the expected {certificate.subject.rfc4514_string()}")
    signed_ids = _verify_message(envelope, soap_ns, certificate, now)
    _require_signed(envelope, signed_ids, _covered_parts(header, body, timestamp, tuple(wsa)))


def sign_response(envelope: etree._Element, credential: Credential, *, now: datetime) -> etree._Element:
    """Service side: sign a SOAP 1.1 response with the service certificate (Timestamp, token, Body, WS-A headers)."""
    return sign_with_certificate(envelope, credential, soap_ns=SOAP11, now=now)


def verify_response(envelope: etree._Element, *, service_certificate: x509.Certificate, now: datetime,
                    clock_skew: timedelta = DEFAULT_SKEW) -> None:
    """Client side: the response must be signed by the service's certificate over Body, Timestamp and RelatesTo."""
    verify_with_certificate(envelope, service_certificate, soap_ns=SOAP11, now=now, clock_skew=clock_skew,
                            wsa=("RelatesTo",))
