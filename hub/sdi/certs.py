"""Certificates and keys for OIOIDWS: loaded from configuration, or made on the spot for tests and local mode.

KOMBIT's STS and services know a system by its OCES function certificate ("funktionscertifikat"), which comes as a
PKCS#12 file; the hub also takes PEM pairs, which is what `hub serve` writes for its local STS and services. A
`Credential` keeps the key and certificate as PEM bytes, so it is immutable, hashable and easy to hand to threads;
the parsed objects are derived (and cached) on demand.

`make_ca` and `issue` build a private CA with certificates shaped like OCES ones (serialNumber "CVR:…-FID:…"), so the
local STS and the tests exercise real X.509 chains rather than bare keys. RSA 2048: what OCES uses, and quick to make.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

KEY_SIZE = 2048
_BACKDATE = timedelta(minutes=5)  # certificates start a little in the past, so clock skew does not reject them


@dataclass(frozen=True)
class Credential:
    """A private key and its certificate, as PEM (the key unencrypted: it lives only in memory)."""

    key_pem: bytes
    cert_pem: bytes

    @cached_property
    def key(self) -> rsa.RSAPrivateKey:
        """The private key; OIOIDWS (Basic256Sha256) signs with RSA, so other key types are refused."""
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"OIOIDWS needs an RSA key, not {type(key).__name__}")
        return key

    @cached_property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @cached_property
    def cert_b64(self) -> str:
        """The certificate as base64 DER: the content of ds:X509Certificate and wsse:BinarySecurityToken."""
        return base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def _credential(key: rsa.RSAPrivateKey, cert: x509.Certificate) -> Credential:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Credential(key_pem=key_pem, cert_pem=cert.public_bytes(serialization.Encoding.PEM))


def load_credential(cert_path: Path, key_path: Path | None = None, password: bytes | None = None) -> Credential:
    """A credential from a PEM certificate and key, or from a PKCS#12 file when `cert_path` ends .p12/.pfx
    (`key_path` is ignored then). With a PEM chain, the first certificate is the one the key belongs to."""
    cert_path = Path(cert_path)
    if cert_path.suffix.lower() in {".p12", ".pfx"}:
        key, cert, _chain = pkcs12.load_key_and_certificates(cert_path.read_bytes(), password)
        if key is None or cert is None:
            raise ValueError(f"{cert_path} does not hold both a private key and a certificate")
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{cert_path}: OIOIDWS needs an RSA key, not {type(key).__name__}")
        return _credential(key, cert)
    if key_path is None:
        raise ValueError("a PEM certificate needs its key file")
    certs = x509.load_pem_x509_certificates(cert_path.read_bytes())
    pem_key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=password)
    if not isinstance(pem_key, rsa.RSAPrivateKey):
        raise ValueError(f"{key_path}: OIOIDWS needs an RSA key, not {type(pem_key).__name__}")
    if certs[0].public_key() != pem_key.public_key():
        raise ValueError(f"the key in {key_path} does not belong to the certificate in {cert_path}")
    return _credential(pem_key, certs[0])


def _name(common_name: str, serial_number: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if serial_number is not None:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number))
    return x509.Name(attributes)


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey, days: int) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def make_ca(common_name: str, *, days: int = 3650) -> Credential:
    """A self-signed CA, standing in for the OCES issuing CA that the local STS trusts."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    name = _name(common_name)
    cert = (
        _builder(name, name, key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _credential(key, cert)


def issue(ca: Credential, common_name: str, *, serial_number: str | None = None, days: int = 365) -> Credential:
    """An end-entity (function) certificate signed by `ca`, e.g. serial_number="CVR:12345678-FID:1" as in OCES."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
    cert = (
        _builder(_name(common_name, serial_number), ca.certificate.subject, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=True, data_encipherment=True,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return _credential(key, cert)


def write_pem(credential: Credential, directory: Path, name: str) -> tuple[Path, Path]:
    """Write `<name>.cert.pem` and `<name>.key.pem` (mode 0600) into `directory`; returns (cert path, key path)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.cert.pem", directory / f"{name}.key.pem"
    cert_path.write_bytes(credential.cert_pem)
    tmp = directory / f".{name}.{uuid.uuid4().hex}.key"
    tmp.touch(mode=0o600)
    tmp.write_bytes(credential.key_pem)
    tmp.replace(key_path)
    return cert_path, key_path
