"""The hub's local case index: SF1470 v6 over SOAP 1.1 on HTTP, for tests and for `hub serve` without a real
index (`hub sdi serve --port N`). This module is its SOAP edge; what it holds and its policies are
`hub.sdi.local.index`.

Every request is checked as KOMBIT's index would check it, and more strictly: its body against the contract's
XSDs (`hub.sdi.contract`), each imported case and document against the anvisning rules (`hub.sdi.rules`), and the
rules that need what the index holds (a Master never changes; the documents a case or document names are in
the index; opdater and fjern name what it has). It keeps cases and documents and which cases each document belongs
to, so `fremsoeg` finds them by `SagUuid`, `DokumentUuid` or a search expression. The answer echoes the
`RequestHeader` and carries a `StandardRetur` per case or document (`UnikRetur`), or one for the whole request.

The hub's policies where KOMBIT documents none (in full in `hub.sdi.local.index`):
- opdater merges by Virkning: each entry of the update (attribute, state, relation) replaces the stored entry of the
  same kind (element, and for a relation role and Indeks) with the same Virkning start, closes the one in effect
  when it starts and drops those starting within its period; so a case imported Opstaaet and updated Afsluttet keeps
  both states, and a new Titel replaces the current one from its start. The merged case or document must keep the
  rules an import keeps, else the update is refused with 40 and nothing changes.
- search: SoegSag, SoegDokument and SoegSagsloeseDokumenter by BrugervendtNoegle, Sagsnummer, Dokumentnummer,
  Titel, FremdriftStatusKode and a relation's ReferenceID (and Rolle), combined by AND, OR and NOT; any other
  criterion is refused with 40, naming it.
- fjern: what SagUuid and SoegUdtryk match goes; a case with the documents it leaves without a case (unless
  EfterladSagsloeseDokumenter), a document matched by a document search by itself.

StatusKode: the contract defines the element, not its values. The hub's policy, after the service platform's
HTTP-like convention: 20 OK, 40 the request breaks the contract or a rule, 44 no such case or document, 50 the
service failed. A request that is not SOAP at all gets a SOAP 1.1 Fault (Client) with HTTP 400.

Security: by default this service runs with `HUB_SDI_SECURITY=none` (unsigned calls, as KOMBIT's validation endpoint
is said to take them). `check_security` is where OIOIDWS verification plugs in: it sees the parsed envelope before
anything else, and the reason it gives to refuse a call is answered with a WS-Security `wsse:FailedAuthentication`
Fault (HTTP 500, as SOAP 1.1 answers a fault).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.core import xml
from hub.sdi.contract import request_schema
from hub.sdi.local.index import FAILED, INVALID, NOT_FOUND, OK, CaseIndex, Found, Retur, content_order
from hub.sdi.oioidws import SOAP11 as SOAP
from hub.sdi.oioidws import WSSE
from hub.sdi.rules import NS

__all__ = ["FAILED", "INVALID", "NOT_FOUND", "NS", "OK", "REQUEST_HEADER", "SOAP", "WSSE", "CaseIndex", "Retur",
           "create_sdi_app"]

REQUEST_HEADER = "http://kombit.dk/xml/schemas/RequestHeader/1/"
OUTPUTS = {"ImporterSagDokumentIndeksInput": "ImporterSagDokumentIndeksOutput",
           "OpdaterSagDokumentIndeksInput": "OpdaterSagDokumentIndeksOutput",
           "FremsoegSagDokumentIndeksInput": "FremsoegSagDokumentIndeksOutput",
           "FjernSagDokumentIndeksInput": "FjernSagDokumentIndeksOutput"}

SecurityCheck = Callable[[etree._Element], str | None]


def create_sdi_app(store: Path, index: CaseIndex | None = None, *, check_security: SecurityCheck | None = None,
                   sign_answer: Callable[[etree._Element], etree._Element] | None = None) -> Starlette:
    """The index as a Starlette app (POST /sdi). `check_security` gets each parsed envelope first; a text it returns
    refuses the call with that reason. `sign_answer` signs each answer (OIOIDWS: hub.sdi.local.app)."""
    sign = sign_answer or (lambda envelope: envelope)
    schema = request_schema(store)
    cases = index or CaseIndex()
    if not cases.order:
        cases.order.update(content_order(store))

    async def soap(request: Request) -> Response:
        try:
            envelope = xml.untrusted(await request.body())
        except xml.XmlRefused as exc:
            return _fault(f"Not XML: {exc.text.removeprefix('not well-formed XML: ')}")
        refusal = check_security(envelope) if check_security is not None else None
        if refusal is not None:
            return _fault(refusal, "wsse:FailedAuthentication", 500, {"wsse": WSSE})
        body = envelope.find(f"{{{SOAP}}}Body")
        operation = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        if etree.QName(envelope).namespace != SOAP or operation is None:
            return _fault("Not a SOAP 1.1 envelope with a body")
        name = etree.QName(operation).localname
        if name not in OUTPUTS:
            return _fault(f"{name} is not an operation of SagDokumentIndeksService_6")
        header = envelope.find(f"{{{SOAP}}}Header/{{{REQUEST_HEADER}}}RequestHeader")
        return _response(sign(_answer_to(header, name, operation)))

    def _answer_to(header: etree._Element | None, name: str, operation: etree._Element) -> etree._Element:
        if header is None or not header.findtext(f"{{{REQUEST_HEADER}}}TransactionUUID"):
            return _answer(header, name, [Retur(INVALID, "RequestHeader/TransactionUUID is required")])
        if not schema.validate(etree.ElementTree(copy.deepcopy(operation))):
            errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)[:2000]
            return _answer(header, name, [Retur(INVALID, f"The request breaks the contract's XSD: {errors}")])
        try:
            if name == "FremsoegSagDokumentIndeksInput":
                return _found(header, cases.fremsoeg(operation))
            handler = {"ImporterSagDokumentIndeksInput": cases.importer,
                       "OpdaterSagDokumentIndeksInput": cases.opdater,
                       "FjernSagDokumentIndeksInput": cases.fjern}[name]
            return _answer(header, name, handler(operation))
        except Exception as exc:  # the index failed: 50, not a bare HTTP 500
            return _answer(header, name, [Retur(FAILED, f"The local index failed: {type(exc).__name__}: {exc}")])

    app = Starlette(routes=[Route("/sdi", soap, methods=["POST"])])
    app.state.index = cases
    return app


def _envelope(header: etree._Element | None, output: str) -> tuple[etree._Element, etree._Element]:
    """An answer's envelope, echoing the RequestHeader, and its empty output element."""
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP, "sd": NS["sd"], "sdi": NS["sdi"],
                                                           "sag": NS["sag"], "di": NS["di"]})
    if header is not None:
        etree.SubElement(envelope, f"{{{SOAP}}}Header").append(copy.deepcopy(header))
    return envelope, etree.SubElement(etree.SubElement(envelope, f"{{{SOAP}}}Body"), f"{{{NS['sdi']}}}{output}")


def _answer(header: etree._Element | None, operation: str, returs: list[Retur]) -> etree._Element:
    """A MultipleOutput (or, for fremsoeg, a BasicOutput): UnikReturs when each is about one object, else
    StandardReturs — the contract lets an answer hold one sort only."""
    envelope, output = _envelope(header, OUTPUTS[operation])
    if operation == "FremsoegSagDokumentIndeksInput":
        returs = returs[:1]
    unique = all(r.uuid for r in returs)
    for retur in returs:
        _retur(output, retur, unique)
    return envelope


def _found(header: etree._Element | None, found: Found) -> etree._Element:
    """fremsoeg's answer: a BasicOutput, then the snapshots of the cases and of the documents."""
    envelope, output = _envelope(header, OUTPUTS["FremsoegSagDokumentIndeksInput"])
    _retur(output, found.retur, unique=False)
    for element, prefix, snapshots in (("SagFiltreretOejebliksbillede", "sag", found.cases),
                                       ("DokumentFiltreretOejebliksbillede", "di", found.documents)):
        for uuid, registration in snapshots:
            snapshot = etree.SubElement(output, f"{{{NS['sdi']}}}{element}")
            etree.SubElement(etree.SubElement(snapshot, f"{{{NS[prefix]}}}ObjektType"),
                             f"{{{NS['sd']}}}UUIDIdentifikator").text = uuid
            snapshot.append(registration)
    return envelope


def _retur(parent: etree._Element, retur: Retur, unique: bool) -> None:
    """A StandardRetur, or a UnikRetur about one case or document; the contract's schemas qualify every element,
    these in the sagdok namespace their types are declared in."""
    element = etree.SubElement(parent, f"{{{NS['sd']}}}{'UnikRetur' if unique else 'StandardRetur'}")
    etree.SubElement(element, f"{{{NS['sd']}}}StatusKode").text = str(retur.status)
    etree.SubElement(element, f"{{{NS['sd']}}}FejlbeskedTekst").text = retur.text
    if unique:
        etree.SubElement(element, f"{{{NS['sd']}}}Type").text = retur.kind
        etree.SubElement(element, f"{{{NS['sd']}}}UUIDIdentifikator").text = retur.uuid


def _response(envelope: etree._Element, status: int = 200) -> Response:
    return Response(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"), status_code=status,
                    media_type="text/xml; charset=utf-8")


def _fault(text: str, code: str = "soap:Client", status: int = 400,
           namespaces: dict[str, str] | None = None) -> Response:
    """A SOAP 1.1 Fault; `namespaces` declares the prefix of a faultcode from another namespace."""
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP, **(namespaces or {})})
    fault = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP}}}Body"), f"{{{SOAP}}}Fault")
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = text
    return _response(envelope, status)
