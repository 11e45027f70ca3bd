"""OIOIDWS message security: requests signed with a holder-of-key token from the local STS (real HTTP on loopback),
verified as the service would, and every tampering the policy must catch; signed responses; credentials."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.signer import XMLSigner

from hub.api.server_thread import ServerThread
from hub.sdi import certs
from hub.sdi.certs import Credential
from hub.sdi.local.sts import create_sts_app
from hub.sdi.oioidws import (
    DS,
    NS,
    WSA,
    WSU,
    WSU_ID,
    Caller,
    SecurityError,
    now_utc,
    parse_xml,
    saml_reference,
    secure_request,
    sign_response,
    verify_request,
    verify_response,
)
from hub.sdi.sts import StsClient

AUDIENCE = "http://sagsogdokumentindeks.stoettesystemerne.dk/service/SagDokumentIndeks/6"
CVR = "29189846"
SF1470_ACTION = "http://kombit.dk/sts/sagdokumentindeks/importer"


@dataclass(frozen=True)
class Keys:
    ca: Credential
    sts: Credential
    client: Credential
    other_client: Credential
    rogue_sts: Credential
    service: Credential


@pytest.fixture(scope="module")
def keys() -> Keys:
    ca = certs.make_ca("Test OCES CA")
    return Keys(
        ca=ca,
        sts=certs.issue(ca, "Local STS", serial_number="CVR:11111111-FID:1"),
        client=certs.issue(ca, "Hub (funktionscertifikat)", serial_number="CVR:12345678-FID:2"),
        other_client=certs.issue(ca, "Other system", serial_number="CVR:12345678-FID:3"),
        rogue_sts=certs.issue(certs.make_ca("Rogue CA"), "Rogue STS"),
        service=certs.issue(ca, "SF1470 service", serial_number="CVR:19435075-FID:4"),
    )


def _token(sts: Credential, keys: Keys, audience: str = AUDIENCE) -> etree._Element:
    app = create_sts_app(sts, trusted_ca=keys.ca.certificate)
    with ServerThread(app) as server:
        client = StsClient(f"{server.url}/sts", keys.client, audience=audience, cvr=CVR)
        return client.token().assertion


@pytest.fixture(scope="module")
def assertion(keys: Keys) -> etree._Element:
    return _token(keys.sts, keys)


@pytest.fixture(scope="module")
def rogue_assertion(keys: Keys) -> etree._Element:
    return _token(keys.rogue_sts, keys)


def envelope(body_text: str = "sag") -> etree._Element:
    """A SF1470-shaped SOAP 1.1 request: Liberty Framework, WS-Addressing, RequestHeader, a body."""
    return etree.fromstring(f"""
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="{WSA}"
               xmlns:sbf="urn:liberty:sb:2006-08" xmlns:hdr="http://kombit.dk/xml/schemas/RequestHeader/1/">
  <soap:Header>
    <sbf:Framework xmlns:ns1="urn:liberty:sb:profile" ns1:profile="urn:liberty:sb:profile:basic" version="2.0"/>
    <wsa:Action>{SF1470_ACTION}</wsa:Action>
    <wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>
    <wsa:To>https://sagsogdokumentindeks.eksterntest-stoettesystemerne.dk/sagdokumentindeks/6</wsa:To>
    <wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo>
    <hdr:RequestHeader><hdr:TransactionUUID>{uuid.uuid4()}</hdr:TransactionUUID></hdr:RequestHeader>
  </soap:Header>
  <soap:Body>
    <sdi:ImporterSagDokumentIndeksInput xmlns:sdi="urn:oio:sagdok:3.0.0">{body_text}
    </sdi:ImporterSagDokumentIndeksInput>
  </soap:Body>
</soap:Envelope>""".encode())


def wire(element: etree._Element) -> etree._Element:
    """What the service receives: the bytes, parsed again."""
    return parse_xml(etree.tostring(element))


@pytest.fixture
def secured(assertion: etree._Element, keys: Keys) -> etree._Element:
    return wire(secure_request(envelope(), assertion, keys.client, now=now_utc()))


def verify(message: etree._Element, keys: Keys, audience: str | None = AUDIENCE,
           now: datetime | None = None) -> Caller:
    return verify_request(message, sts_certificate=keys.sts.certificate, audience=audience, now=now or now_utc())


def rejected(message: etree._Element, keys: Keys, match: str, audience: str | None = AUDIENCE,
             now: datetime | None = None) -> None:
    with pytest.raises(SecurityError, match=match):
        verify(message, keys, audience, now)


# ------------------------------------------------------------------ the good case


def test_secured_request_verifies(secured: etree._Element, keys: Keys, assertion: etree._Element) -> None:
    caller = verify(secured, keys)
    assert caller.cvr == CVR
    assert caller.certificate == keys.client.certificate
    assert caller.assertion_id == assertion.get("ID")
    assert "CVR:12345678-FID:2" in caller.subject


def test_request_shape_follows_kombit_sample(secured: etree._Element, assertion: etree._Element) -> None:
    security = secured.find("soap:Header/wsse:Security", {**NS, "soap": "http://schemas.xmlsoap.org/soap/envelope/"})
    assert security is not None
    assert security.get("{http://schemas.xmlsoap.org/soap/envelope/}mustUnderstand") == "1"
    assert [etree.QName(c).localname for c in security] == ["Timestamp", "Assertion", "SecurityTokenReference",
                                                            "Signature"]
    def c14n(element: etree._Element) -> bytes:
        return bytes(etree.tostring(element, method="c14n", exclusive=True))

    assert c14n(security[1]) == c14n(assertion)  # untouched
    signed = {r.get("URI") for r in security.iterfind("ds:Signature/ds:SignedInfo/ds:Reference", NS)}
    header = secured[0]
    for name in ("Action", "MessageID", "To", "ReplyTo"):
        assert f"#{header.find(f'wsa:{name}', NS).get(WSU_ID)}" in signed
    assert f"#{header.find('sbf:Framework', NS).get(WSU_ID)}" in signed
    assert f"#{assertion.get('ID')}" in signed and f"#{security[2].get(WSU_ID)}" in signed
    assert {m.get("Algorithm") for m in security.iterfind(".//ds:SignatureMethod", NS)} == {
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"}
    key_id = security.findtext("ds:Signature/ds:KeyInfo/wsse:SecurityTokenReference/wsse:KeyIdentifier", namespaces=NS)
    assert key_id == assertion.get("ID")


def test_signs_in_place_with_the_envelopes_wsu_prefix(assertion: etree._Element, keys: Keys) -> None:
    message = envelope()
    declared = etree.Element(message.tag, nsmap={**message.nsmap, "wsu": WSU})
    declared.extend(list(message))
    assert secure_request(declared, assertion, keys.client, now=now_utc()) is declared
    text = etree.tostring(declared).decode()
    assert 'soap:Body wsu:Id="' in text and "ns0:" not in text
    assert verify(wire(declared), keys).cvr == CVR


# ------------------------------------------------------------------ tampering


def _set(message: etree._Element, path: str, text: str) -> etree._Element:
    element = message.find(path, {**NS, "soap": "http://schemas.xmlsoap.org/soap/envelope/"})
    assert element is not None, path
    element.text = text
    return message


def test_tampered_body_fails(secured: etree._Element, keys: Keys) -> None:
    body = secured.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    body[0].text = "another case"
    rejected(secured, keys, "signature does not verify")


@pytest.mark.parametrize("header", ["To", "Action", "MessageID"])
def test_tampered_addressing_fails(secured: etree._Element, keys: Keys, header: str) -> None:
    rejected(_set(secured, f"soap:Header/wsa:{header}", "https://evil.example/"), keys, "does not verify")


def test_tampered_timestamp_fails(secured: etree._Element, keys: Keys) -> None:
    later = (now_utc() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    rejected(_set(secured, "soap:Header/wsse:Security/wsu:Timestamp/wsu:Expires", later), keys, "does not verify")


def test_expired_timestamp_fails(assertion: etree._Element, keys: Keys) -> None:
    old = wire(secure_request(envelope(), assertion, keys.client, now=now_utc() - timedelta(minutes=20)))
    rejected(old, keys, "Timestamp expired")


def test_expired_token_fails(assertion: etree._Element, keys: Keys) -> None:
    later = now_utc() + timedelta(hours=9)  # the local STS issues for 8 hours
    message = wire(secure_request(envelope(), assertion, keys.client, now=later))
    rejected(message, keys, "token expired", now=later)


def test_other_key_than_holder_of_key_fails(assertion: etree._Element, keys: Keys) -> None:
    message = wire(secure_request(envelope(), assertion, keys.other_client, now=now_utc()))
    rejected(message, keys, "message signature does not verify: .*not made with the key of .*Hub")


def test_assertion_not_signed_by_trusted_sts_fails(rogue_assertion: etree._Element, keys: Keys) -> None:
    message = wire(secure_request(envelope(), rogue_assertion, keys.client, now=now_utc()))
    rejected(message, keys, "Assertion's signature by the trusted STS does not verify: .*Local STS")


def test_tampered_assertion_fails(secured: etree._Element, keys: Keys) -> None:
    _set(secured, "soap:Header/wsse:Security/saml:Assertion/saml:AttributeStatement/saml:Attribute/"
                  "saml:AttributeValue", "99999999")
    rejected(secured, keys, "trusted STS does not verify")


def test_audience_mismatch_fails(secured: etree._Element, keys: Keys) -> None:
    rejected(secured, keys, "not 'https://other.service/'", audience="https://other.service/")


def test_unsigned_request_fails(keys: Keys) -> None:
    rejected(envelope(), keys, "not signed")


def _sign_parts(message: etree._Element, credential: Credential, ids: list[str], assertion_id: str) -> None:
    """Replace the message signature by a valid one over only `ids`."""
    security = message.find("{*}Header/wsse:Security", NS)
    assert security is not None
    security.remove(security.find("ds:Signature", NS))
    key_info = etree.Element(f"{{{DS}}}KeyInfo")
    key_info.append(saml_reference(assertion_id))
    signer = XMLSigner(method=SignatureConstructionMethod.detached, signature_algorithm=SignatureMethod.RSA_SHA256,
                       digest_algorithm=DigestAlgorithm.SHA256,
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    security.append(signer.sign(message, key=credential.key, reference_uri=[f"#{i}" for i in ids],
                                key_info=key_info))


def test_signature_that_leaves_out_the_body_fails(secured: etree._Element, keys: Keys,
                                                  assertion: etree._Element) -> None:
    body_id = secured.find("{*}Body").get(WSU_ID)
    ids = [str(e.get(WSU_ID)) for e in secured.iter() if e.get(WSU_ID) and e.get(WSU_ID) != body_id]
    _sign_parts(secured, keys.client, ids + [str(assertion.get("ID"))], str(assertion.get("ID")))
    # the signature itself is valid; only what it covers is wrong
    rejected(wire(secured), keys, "does not cover the Body")


def test_signature_that_leaves_out_to_fails(secured: etree._Element, keys: Keys, assertion: etree._Element) -> None:
    to_id = secured.find("{*}Header/wsa:To", NS).get(WSU_ID)
    ids = [str(e.get(WSU_ID)) for e in secured.iter() if e.get(WSU_ID) and e.get(WSU_ID) != to_id]
    _sign_parts(secured, keys.client, ids + [str(assertion.get("ID"))], str(assertion.get("ID")))
    rejected(wire(secured), keys, "does not cover the wsa:To header")


def test_signature_wrapping_fails(secured: etree._Element, keys: Keys) -> None:
    """The signed Body hidden in a header and a forged Body with the same Id in its place."""
    body = secured.find("{*}Body")
    assert body is not None
    forged = etree.fromstring(etree.tostring(body))
    forged[0].text = "forged"
    wrapper = etree.SubElement(secured[0], "{urn:x}Wrapper")
    secured.replace(body, forged)
    wrapper.append(body)
    rejected(wire(secured), keys, "Ambiguous|more than once")


# ------------------------------------------------------------------ responses


def response_envelope(relates_to: str = "urn:uuid:1") -> etree._Element:
    return etree.fromstring(f"""
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="{WSA}">
  <soap:Header><wsa:Action>{SF1470_ACTION}Response</wsa:Action><wsa:RelatesTo>{relates_to}</wsa:RelatesTo></soap:Header>
  <soap:Body><out xmlns="urn:oio:sagdok:3.0.0"><StatusKode>20</StatusKode></out></soap:Body>
</soap:Envelope>""".encode())


def test_signed_response_verifies_and_tampering_fails(keys: Keys) -> None:
    now = now_utc()
    signed = etree.tostring(sign_response(response_envelope(), keys.service, now=now))
    verify_response(parse_xml(signed), service_certificate=keys.service.certificate, now=now)
    token = parse_xml(signed).find("{*}Header/wsse:Security/wsse:BinarySecurityToken", NS)
    assert token is not None and token.get(WSU_ID)

    tampered = parse_xml(signed)
    tampered.find(".//{urn:oio:sagdok:3.0.0}StatusKode").text = "50"
    with pytest.raises(SecurityError, match="does not verify"):
        verify_response(tampered, service_certificate=keys.service.certificate, now=now)

    relates = parse_xml(signed)
    relates.find("{*}Header/wsa:RelatesTo", NS).text = "urn:uuid:2"
    with pytest.raises(SecurityError, match="does not verify"):
        verify_response(relates, service_certificate=keys.service.certificate, now=now)

    with pytest.raises(SecurityError, match="not by the expected"):
        verify_response(parse_xml(signed), service_certificate=keys.client.certificate, now=now)
    with pytest.raises(SecurityError, match="expired"):
        verify_response(parse_xml(signed), service_certificate=keys.service.certificate,
                        now=now + timedelta(minutes=30))


def test_unsigned_response_fails(keys: Keys) -> None:
    with pytest.raises(SecurityError, match="not signed"):
        verify_response(response_envelope(), service_certificate=keys.service.certificate, now=now_utc())


def test_dtd_is_refused() -> None:
    with pytest.raises(SecurityError, match="DTD"):
        parse_xml(b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>')
    with pytest.raises(SecurityError, match="well-formed"):
        parse_xml(b"not xml")


# ------------------------------------------------------------------ credentials


def test_credentials_round_trip_pem_and_pkcs12(keys: Keys, tmp_path: Path) -> None:
    cert_path, key_path = certs.write_pem(keys.client, tmp_path, "hub")
    assert key_path.stat().st_mode & 0o077 == 0
    loaded = certs.load_credential(cert_path, key_path)
    assert loaded.certificate == keys.client.certificate
    assert loaded.key.public_key().public_numbers() == keys.client.key.public_key().public_numbers()

    p12 = tmp_path / "hub.p12"
    p12.write_bytes(pkcs12.serialize_key_and_certificates(
        b"hub", keys.client.key, keys.client.certificate, [keys.ca.certificate], BestAvailableEncryption(b"secret")))
    from_p12 = certs.load_credential(p12, Path("ignored"), password=b"secret")
    assert from_p12.certificate == keys.client.certificate
    assert from_p12.cert_b64 == keys.client.cert_b64

    keys.client.certificate.verify_directly_issued_by(keys.ca.certificate)
    assert "CVR:12345678-FID:2" in keys.client.certificate.subject.rfc4514_string()
    with pytest.raises(ValueError, match="does not belong"):
        certs.load_credential(cert_path, certs.write_pem(keys.service, tmp_path, "svc")[1])

