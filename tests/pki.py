"""A certificate authority and certificates the tests make (cryptography): the listener's, and senders'."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
           *, ca: bool = False, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer[0])
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return folder / f"{name}.pem", folder / f"{name}.key"


def make_pki(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """A CA, the listener's certificate and two senders' (EPJ at OUH, and a lab), as PEM files in `tmp_path`."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("Test CA", ca_key, (_name("Test CA"), ca_key), ca=True)
    files = {"ca": _write(tmp_path, "ca", ca_cert, ca_key)}
    for name, server in (("server", True), ("epj.ouh.example", False), ("lab.rh.example", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        files[name] = _write(tmp_path, name, _issue(name, key, (ca_cert.subject, ca_key), server=server), key)
    return files


