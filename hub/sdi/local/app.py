"""The hub's local case index with its own STS, as `hub serve` runs it when no real index is configured.

One app on one port: the index at `/sdi` (`hub.sdi.local.service`) and the STS at `/sts` (`hub.sdi.local.sts`).
With OIOIDWS the index takes only requests signed as the policy asks, with a token from this STS, and signs its
answers; the certificates are made once in the data folder (`sdi/`: a CA, the hub's function certificate issued by
it, the STS's and the index's), so the hub's client is configured exactly as for KOMBIT's index, only with local
addresses (`environment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxml import etree
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hub.sdi.certs import Credential, issue, load_credential, make_ca, write_pem
from hub.sdi.local.service import CaseIndex, create_sdi_app
from hub.sdi.local.sts import create_sts_app
from hub.sdi.oioidws import SecurityError, now_utc, sign_response, verify_request

AUDIENCE = "http://stoettesystemerne.dk/service/sagdokumentindeks/6"
NAMES = ("ca", "hub", "sts", "sdi")


@dataclass(frozen=True)
class LocalCredentials:
    folder: Path
    ca: Credential
    hub: Credential
    sts: Credential
    sdi: Credential

    @classmethod
    def in_folder(cls, folder: Path, cvr: str) -> LocalCredentials:
        """The local certificates, made the first time and read after."""
        if not all((folder / f"{name}.cert.pem").exists() for name in NAMES):
            folder.mkdir(parents=True, exist_ok=True)
            ca = make_ca("Hub local CA")
            made = {"ca": ca, "hub": issue(ca, "Hub (funktionscertifikat)", serial_number=f"CVR:{cvr}-FID:1"),
                    "sts": issue(ca, "Hub local STS"), "sdi": issue(ca, "Hub local case index")}
            for name, credential in made.items():
                write_pem(credential, folder, name)
        found = {name: load_credential(folder / f"{name}.cert.pem", folder / f"{name}.key.pem") for name in NAMES}
        return cls(folder, **found)

    def environment(self, url: str) -> dict[str, str]:
        """The hub's settings for calling this index at `url` (its base) with OIOIDWS."""
        return {"HUB_SDI_URL": f"{url}/sdi", "HUB_SDI_LOCAL": "true", "HUB_SDI_SECURITY": "oioidws",
                "HUB_SDI_STS_URL": f"{url}/sts", "HUB_SDI_AUDIENCE": AUDIENCE,
                "HUB_SDI_CERTIFICATE": str(self.folder / "hub.cert.pem"),
                "HUB_SDI_KEY": str(self.folder / "hub.key.pem"),
                "HUB_SDI_STS_CERTIFICATE": str(self.folder / "sts.cert.pem"),
                "HUB_SDI_SERVICE_CERTIFICATE": str(self.folder / "sdi.cert.pem")}


def create_local_app(store: Path, credentials: LocalCredentials | None, index: CaseIndex | None = None) -> Starlette:
    """The index and, with credentials, its STS and OIOIDWS on both sides; without, unsigned calls."""

    async def health(_: object) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/healthz", health)]
    if credentials is None:
        return Starlette(routes=[*routes, *create_sdi_app(store, index).routes])
    sts_certificate = credentials.sts.certificate

    def check(envelope: etree._Element) -> str | None:
        try:
            verify_request(envelope, sts_certificate=sts_certificate, audience=AUDIENCE, now=now_utc())
        except SecurityError as exc:
            return str(exc)
        return None

    def sign(envelope: etree._Element) -> etree._Element:
        return sign_response(envelope, credentials.sdi, now=now_utc())

    sts = create_sts_app(credentials.sts, trusted_ca=credentials.ca.certificate)
    sdi = create_sdi_app(store, index, check_security=check, sign_answer=sign)
    return Starlette(routes=[*routes, *sts.routes, *sdi.routes])
