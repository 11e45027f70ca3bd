"""The SF1470 client's security from the settings: OIOIDWS (`HUB_SDI_SECURITY=oioidws`, the default) or none.

With OIOIDWS each request carries the STS's holder-of-key token (fetched once and kept until shortly before it
expires, `hub.sdi.sts.StsClient`) and is signed with the hub's function certificate (`hub.sdi.oioidws`); each
answer must be signed by the index's certificate. A token the STS will not give, or an answer that fails its
check, is a failure worth trying again (the outbox's backoff), not a refusal of the content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from cryptography import x509
from lxml import etree

from hub.core.config import Settings
from hub.sdi.certs import Credential, load_credential
from hub.sdi.client import SdiUnavailable, Security
from hub.sdi.oioidws import SecurityError, now_utc, secure_request, verify_response
from hub.sdi.sts import StsClient, StsError


@dataclass
class Oioidws:
    sts: StsClient
    credential: Credential
    service_certificate: x509.Certificate | None
    clock: Callable[[], datetime] = now_utc

    def secure(self, envelope: etree._Element) -> etree._Element:
        try:
            token = self.sts.token()
        except (StsError, SecurityError, httpx.HTTPError) as exc:
            raise SdiUnavailable(f"The STS gave no token: {exc}") from None
        return secure_request(envelope, token.assertion, self.credential, now=self.clock())

    def verify(self, envelope: etree._Element) -> None:
        if self.service_certificate is None:
            return
        try:
            verify_response(envelope, service_certificate=self.service_certificate, now=self.clock())
        except SecurityError as exc:
            raise SdiUnavailable(f"The case index's answer fails OIOIDWS: {exc}") from None


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def security(settings: Settings) -> Security | None:
    if settings.sdi_security == "none":
        return None
    if not (settings.sdi_sts_url and settings.sdi_certificate):
        raise ValueError("OIOIDWS needs HUB_SDI_STS_URL and HUB_SDI_CERTIFICATE (and HUB_SDI_KEY for a PEM "
                         "certificate); HUB_SDI_SECURITY=none calls the index unsigned")
    password = settings.sdi_key_password.encode() if settings.sdi_key_password else None
    credential = load_credential(settings.sdi_certificate, settings.sdi_key, password)
    sts_certificate = certificate(settings.sdi_sts_certificate) if settings.sdi_sts_certificate else None
    sts = StsClient(settings.sdi_sts_url, credential, audience=settings.sdi_audience, cvr=settings.sdi_cvr,
                    sts_certificate=sts_certificate)
    service = certificate(settings.sdi_service_certificate) if settings.sdi_service_certificate else None
    return Oioidws(sts, credential, service)
