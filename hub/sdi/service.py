"""The hub's local case index: SF1470 v6 over SOAP 1.1 on HTTP, for tests and for `hub serve` without a real
index (`hub sdi serve --port N`).

Every request is checked as KOMBIT's index would check it, and more strictly: its body against the contract's
XSDs (`hub.sdi.contract`), each imported case against the anvisning rules (`hub.sdi.rules`), and the rules that
need what the index holds (a case's Master never changes; opdater and fjern name a case it has). It keeps the
cases, so `fremsoeg` finds them. The answer echoes the `RequestHeader` and carries a `StandardRetur` per case
(`UnikRetur`), or one for the whole request.

StatusKode: the contract defines the element, not its values. The hub's policy, after the service platform's
HTTP-like convention: 20 OK, 40 the request breaks the contract or a rule, 44 no such case, 50 the service
failed. A request that is not SOAP at all gets a SOAP 1.1 Fault (Client) with HTTP 400.

Security: this service runs with `HUB_SDI_SECURITY=none` (unsigned calls, as KOMBIT's validation endpoint is
said to take them); OIOIDWS signing and the local STS are not built yet. `opdater` keeps the update as sent in
place of the case's registration; merging it into the case by Virkning (undocumented by KOMBIT) is not built yet.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.sdi.contract import request_schema
from hub.sdi.rules import NS, case_findings, roles

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
REQUEST_HEADER = "http://kombit.dk/xml/schemas/RequestHeader/1/"
OK, INVALID, NOT_FOUND, FAILED = 20, 40, 44, 50
OUTPUTS = {"ImporterSagDokumentIndeksInput": "ImporterSagDokumentIndeksOutput",
           "OpdaterSagDokumentIndeksInput": "OpdaterSagDokumentIndeksOutput",
           "FremsoegSagDokumentIndeksInput": "FremsoegSagDokumentIndeksOutput",
           "FjernSagDokumentIndeksInput": "FjernSagDokumentIndeksOutput"}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class Retur:
    status: int
    text: str
    uuid: str | None = None  # a UnikRetur, about one case


@dataclass
class CaseIndex:
    """The cases the local index holds: UUID → the registration as last imported or updated."""

    cases: dict[str, etree._Element] = field(default_factory=dict)
    masters: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def importer(self, body: etree._Element) -> list[Retur]:
        out = []
        for sag in body.xpath("sdi:SagIndeks", namespaces=NS):
            uuid = sag.xpath("string(sd:UUIDIdentifikator)", namespaces=NS)
            findings = case_findings(sag)
            if findings:
                out.append(Retur(INVALID, "; ".join(f"{f.rule} ({f.path}; {f.source})" for f in findings), uuid))
                continue
            out.append(self._keep(uuid, sag.xpath("sag:Registrering", namespaces=NS)[0]))
        return out or [Retur(INVALID, "The request imports no case (SagIndeks)")]

    def opdater(self, body: etree._Element) -> list[Retur]:
        out = []
        for sag in body.xpath("sdi:OpdaterSagIndeks", namespaces=NS):
            uuid = sag.xpath("string(sd:UUIDIdentifikator)", namespaces=NS)
            with self.lock:
                known = uuid in self.cases
            if not known:
                out.append(Retur(NOT_FOUND, f"The index has no case {uuid}", uuid))
                continue
            registration = copy.deepcopy(sag)
            out.append(self._keep(uuid, registration))
        return out or [Retur(INVALID, "The request updates no case (OpdaterSagIndeks)")]

    def fjern(self, body: etree._Element) -> list[Retur]:
        out = []
        for uuid in body.xpath("sdi:SagUuid/sd:UUIDIdentifikator/text()", namespaces=NS):
            with self.lock:
                removed = self.cases.pop(str(uuid), None)
                self.masters.pop(str(uuid), None)
            out.append(Retur(OK, "OK", str(uuid)) if removed is not None else
                       Retur(NOT_FOUND, f"The index has no case {uuid}", str(uuid)))
        return out or [Retur(INVALID, "The request removes no case (SagUuid)")]

    def fremsoeg(self, body: etree._Element) -> list[tuple[str, etree._Element]]:
        with self.lock:
            return [(str(u), copy.deepcopy(self.cases[str(u)])) for u in body.xpath("sdi:SagUuid/text()", namespaces=NS)
                    if str(u) in self.cases]

    def _keep(self, uuid: str, registration: etree._Element) -> Retur:
        master = _master(registration)
        with self.lock:
            earlier = self.masters.get(uuid)
            if earlier is not None and master is not None and master != earlier:
                return Retur(INVALID, f"The case's Master is {earlier}; a Master never changes (anvisning sag v1.7 "
                                      "§3.12)", uuid)
            self.cases[uuid] = copy.deepcopy(registration)
            if master is not None:
                self.masters.setdefault(uuid, master)
        return Retur(OK, "OK", uuid)


def _master(registration: etree._Element) -> str | None:
    uuid = {name: key for key, name in roles().items()}["Master"]
    found = registration.xpath(f".//si:SagsitsystemRelation[gd:Rolle/sd:UUIDIdentifikator='{uuid}']"
                               "/gd:ReferenceID/sd:UUIDIdentifikator/text()", namespaces=NS)
    return str(found[0]) if found else None


def create_sdi_app(store: Path, index: CaseIndex | None = None) -> Starlette:
    schema = request_schema(store)
    cases = index or CaseIndex()

    async def soap(request: Request) -> Response:
        raw = await request.body()
        try:
            envelope = etree.fromstring(raw, _PARSER)
        except etree.XMLSyntaxError as exc:
            return _fault(f"Not XML: {exc}")
        body = envelope.find(f"{{{SOAP}}}Body")
        operation = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        if etree.QName(envelope).namespace != SOAP or operation is None:
            return _fault("Not a SOAP 1.1 envelope with a body")
        header = envelope.find(f"{{{SOAP}}}Header/{{{REQUEST_HEADER}}}RequestHeader")
        name = etree.QName(operation).localname
        if name not in OUTPUTS:
            return _fault(f"{name} is not an operation of SagDokumentIndeksService_6")
        if header is None or not header.findtext(f"{{{REQUEST_HEADER}}}TransactionUUID"):
            return _answer(header, name, [Retur(INVALID, "RequestHeader/TransactionUUID is required")])
        if not schema.validate(etree.ElementTree(copy.deepcopy(operation))):
            errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)[:2000]
            return _answer(header, name, [Retur(INVALID, f"The request breaks the contract's XSD: {errors}")])
        if name == "FremsoegSagDokumentIndeksInput":
            return _answer(header, name, [Retur(OK, "OK")], cases.fremsoeg(operation))
        handler = {"ImporterSagDokumentIndeksInput": cases.importer, "OpdaterSagDokumentIndeksInput": cases.opdater,
                   "FjernSagDokumentIndeksInput": cases.fjern}[name]
        return _answer(header, name, handler(operation))

    app = Starlette(routes=[Route("/sdi", soap, methods=["POST"])])
    app.state.index = cases
    return app


def _answer(header: etree._Element | None, operation: str, returs: list[Retur],
            found: list[tuple[str, etree._Element]] | None = None) -> Response:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP, "sd": NS["sd"], "sdi": NS["sdi"],
                                                           "sag": NS["sag"]})
    if header is not None:
        etree.SubElement(envelope, f"{{{SOAP}}}Header").append(copy.deepcopy(header))
    output = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP}}}Body"), f"{{{NS['sdi']}}}{OUTPUTS[operation]}")
    if found is not None:  # fremsoeg: a BasicOutput, then the snapshots
        _retur(output, "StandardRetur", returs[0])
        for uuid, registration in found:
            snapshot = etree.SubElement(output, f"{{{NS['sdi']}}}SagFiltreretOejebliksbillede")
            etree.SubElement(etree.SubElement(snapshot, f"{{{NS['sag']}}}ObjektType"),
                             f"{{{NS['sd']}}}UUIDIdentifikator").text = uuid
            registration.tag = f"{{{NS['sag']}}}Registrering"
            snapshot.append(registration)
    else:
        for retur in returs:
            _retur(output, "UnikRetur" if retur.uuid else "StandardRetur", retur)
    return Response(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"),
                    media_type="text/xml; charset=utf-8")


def _retur(parent: etree._Element, name: str, retur: Retur) -> None:
    """A StandardRetur (or a UnikRetur, about one case); the contract's schemas qualify every element, these in
    the sagdok namespace their types are declared in."""
    element = etree.SubElement(parent, f"{{{NS['sd']}}}{name}")
    etree.SubElement(element, f"{{{NS['sd']}}}StatusKode").text = str(retur.status)
    etree.SubElement(element, f"{{{NS['sd']}}}FejlbeskedTekst").text = retur.text
    if retur.uuid:
        etree.SubElement(element, f"{{{NS['sd']}}}Type").text = "Sag"
        etree.SubElement(element, f"{{{NS['sd']}}}UUIDIdentifikator").text = retur.uuid


def _fault(text: str) -> Response:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
    fault = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP}}}Body"), f"{{{SOAP}}}Fault")
    etree.SubElement(fault, "faultcode").text = "soap:Client"
    etree.SubElement(fault, "faultstring").text = text
    return Response(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), status_code=400,
                    media_type="text/xml; charset=utf-8")
