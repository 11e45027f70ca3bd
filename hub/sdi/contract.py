"""The SF1470 v6 contract, loaded with zeep from the standards store and never from the network.

KOMBIT's WSDL imports its OIOIDWS policy and XSDs by relative paths, so the whole contract resolves from the
store; the transport refuses every fetch, so a reference that would reach the network fails loudly instead of
being followed. DTDs are refused as everywhere in the hub. The Java sample's copy of the WSDL is the one loaded:
it binds SOAP 1.1, as KOMBIT's own configuration calls the service (the .NET copy's SOAP 1.2 binding is not
what the service speaks).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import zeep
from lxml import etree
from zeep.exceptions import ExternalReferenceForbidden
from zeep.transports import Transport

from hub.core import xml
from hub.core.outcome import Outcome, single

WSDL = Path("files/kombit/SF1470-SagDokumentIndeks/wsdl/SagDokumentIndeksService_6.wsdl")
OPERATIONS = ("importer", "opdater", "fremsoeg", "fjern")


class OfflineTransport(Transport):
    """A zeep transport that loads local files only: the contract must not depend on the network."""

    def load(self, url: str) -> bytes:
        if "://" in url and not url.startswith("file://"):
            raise OSError(f"the SF1470 contract refers to {url}: the hub loads its contract from the store only")
        return super().load(url)  # type: ignore[no-untyped-call,no-any-return]

    def post(self, address: str, message: bytes, headers: dict[str, str]) -> Any:
        raise OSError("the offline transport only loads the contract")


def client(store: Path) -> zeep.Client:
    """A zeep client of the SF1470 v6 contract in the standards store (`hub schemas sync`)."""
    wsdl = store / WSDL
    if not wsdl.exists():
        raise FileNotFoundError(f"{wsdl} is not in the store; run `hub schemas sync`")
    settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        return zeep.Client(str(wsdl), transport=OfflineTransport(), settings=settings)  # type: ignore[no-untyped-call]
    except ExternalReferenceForbidden as exc:  # zeep's own guard, before the transport's
        raise OSError(f"the SF1470 contract refers to {exc.url}: the hub loads its contract from the store "
                      "only") from None


def operations(sdi: zeep.Client) -> dict[str, Any]:
    """The operations of the service's one port, by name."""
    service = next(iter(sdi.wsdl.services.values()))
    port = next(iter(service.ports.values()))
    return dict(port.binding._operations)


XSD = Path("files/kombit/SF1470-SagDokumentIndeks/wsdl/xsd")
# The operations' namespaces, and the XSDs declaring what their strict extension points (LokalUdvidelseListe) take.
SCHEMAS = {"urn:oio:sts:sagdok:sagdokumentindeks:6": "6.0.STS-0/SagDokumentIndeksOperationer.xsd",
           "urn:oio:sts:sagdok:sagindeks:6": "6.0.STS-0/SagIndeksOperationer.xsd",
           "urn:oio:sts:sagdok:dokumentindeks:6": "6.0.STS-0/DokumentIndeksOperationer.xsd",
           "http://kombit.dk/xml/schemas/RequestHeader/1/": "common/RequestHeader.xsd"}


def request_schema(store: Path) -> etree.XMLSchema:
    """The XSDs a request body (and its RequestHeader) is checked against, compiled together from the store:
    the operations alone leave the extension points' elements undeclared, which `processContents="strict"`
    then refuses."""
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{(store / XSD / rel).resolve().as_uri()}"/>'
                      for ns, rel in SCHEMAS.items())
    wrapper = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    return xml.schema(wrapper.encode())


def validation_outcome(raw: bytes, store: Path) -> Outcome:
    """An SF1470 v6 request (a SOAP envelope, or its body's operation element alone) checked as the local index
    checks it: the XSDs, then the anvisning rules of each imported case and document. For `hub validate`."""
    from hub.fhir.io import parse_xml_root
    from hub.sdi.rules import NS, case_findings, document_findings

    root = parse_xml_root(raw)
    operation = root if etree.QName(root).namespace == NS["sdi"] else next(
        (c for body in root.iter("{http://schemas.xmlsoap.org/soap/envelope/}Body") for c in body
         if isinstance(c.tag, str)), None)
    if operation is None:
        return single("structure", "Not an SF1470 v6 request: no operation in a SOAP Body")
    schema = request_schema(store)
    outcome = Outcome()
    if not schema.validate(etree.ElementTree(copy.deepcopy(operation))):
        for error in schema.error_log:
            outcome.error("structure", f"line {error.line}: {error.message}", error.path)
        return outcome
    for path, findings in (("sdi:SagIndeks", case_findings), ("sdi:DokumentIndeks", document_findings)):
        for element in operation.xpath(path, namespaces=NS):
            for finding in findings(element):
                outcome.error("business-rule", f"{finding.rule} ({finding.source})", finding.path)
    return outcome
