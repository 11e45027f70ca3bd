"""The hub's SF1470 v6 client: zeep builds each request from the official WSDL, the hub adds the headers KOMBIT's
service expects, and httpx posts it.

zeep renders the body and the `RequestHeader` (the WSDL's header part, a `TransactionUUID` per call) and checks
them against the contract's types as it does; the extension points (`LokalUdvidelseListe`, an `xsd:any` the XSD
checks strictly) are rendered as the elements their `Ext` names, through zeep's `AnyObject`. Then:
- WS-Addressing (mandatory in the OIOIDWS policy): `Action` (the operation's soapAction), `MessageID`, `To`,
  `ReplyTo` anonymous; zeep's own WS-Addressing plugin gives `ReplyTo` no place, so the hub writes them;
- the Liberty basic SOAP binding `Framework` header (profile basic, version 2.0), as KOMBIT's own clients send it
  (`HUB_SDI_LIBERTY`; the v6 policy does not name it);
- with OIOIDWS, the `Security` header: a signed request carrying the STS's token, and the signed answer checked
  (`hub.sdi.oioidws`), through the `Security` given.

An answer's `StatusKode` decides (the local index's policy, `hub.sdi.local.service`): 20 is done; 40 (the request
breaks a rule) and 44 (no such case) are the index refusing what was sent, which sending again will not change
(`SdiRefused`); anything else, a SOAP Fault, an HTTP error or no answer is worth trying again (`SdiUnavailable`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from lxml import etree
from zeep.xsd import AnyObject

from hub.core import xml
from hub.core.guard import Circuit, Guard, Rejected
from hub.sdi import contract
from hub.sdi.case import Ext
from hub.sdi.oioidws import ANONYMOUS, WSA
from hub.sdi.oioidws import SBF as LIBERTY
from hub.sdi.oioidws import SOAP11 as SOAP
from hub.sdi.rules import NS

LIBERTY_PROFILE = "urn:liberty:sb:profile"
OK = 20
REFUSED = (40, 44)


class SdiUnavailable(Exception):
    """The index did not take the request this time: no answer, an HTTP or SOAP error, or a failure it reported."""


class SdiRefused(Exception):
    """The index refused the request for what it says: sending it again will not help."""


class Security(Protocol):
    """What OIOIDWS does to a request and checks of its answer (`hub.sdi.oioidws`)."""

    def secure(self, envelope: etree._Element) -> etree._Element: ...

    def verify(self, envelope: etree._Element) -> None: ...


@dataclass(frozen=True)
class Retur:
    status: int
    text: str
    uuid: str | None


class SdiClient:
    def __init__(self, store: Path, url: str, *, security: Security | None = None, liberty: bool = True,
                 timeout: float = 10.0, http: httpx.Client | None = None, circuit: Circuit = Circuit(),
                 transaction: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.zeep = contract.client(store)
        self.url = url
        self.security = security
        self.liberty = liberty
        self.http = http or httpx.Client(timeout=timeout)
        self.transaction = transaction
        # Calls out at once bounded, a circuit opened after failures in a row (hub.core.guard).
        self.guard = Guard("case index", concurrency=4, circuit=circuit, harmless=(SdiRefused,))
        self._actions = {name: op.soapaction for name, op in contract.operations(self.zeep).items()}

    def close(self) -> None:
        self.http.close()

    def envelope(self, operation: str, body: dict[str, Any], transaction: str | None = None) -> etree._Element:
        """The request as it goes out, before security: zeep's envelope with the hub's headers."""
        header = {"TransactionUUID": transaction or self.transaction()}
        envelope: etree._Element = self.zeep.create_message(  # type: ignore[no-untyped-call]
            self.zeep.service, operation, _soapheaders={"header": header}, **self._render(body))
        headers = envelope.find(f"{{{SOAP}}}Header")
        if self.liberty:
            framework = etree.SubElement(headers, f"{{{LIBERTY}}}Framework",
                                         nsmap={"sbf": LIBERTY, "sbfprofile": LIBERTY_PROFILE})
            framework.set(f"{{{LIBERTY_PROFILE}}}profile", "urn:liberty:sb:profile:basic")
            framework.set("version", "2.0")
        for name, value in (("Action", self._actions[operation]), ("MessageID", f"urn:uuid:{uuid.uuid4()}"),
                            ("To", self.url)):
            etree.SubElement(headers, f"{{{WSA}}}{name}", nsmap={"wsa": WSA}).text = value
        etree.SubElement(etree.SubElement(headers, f"{{{WSA}}}ReplyTo", nsmap={"wsa": WSA}),
                         f"{{{WSA}}}Address").text = ANONYMOUS
        etree.cleanup_namespaces(envelope, top_nsmap={"soap": SOAP, **NS})
        return envelope

    def call(self, operation: str, body: dict[str, Any], transaction: str | None = None) -> list[Retur]:
        """Send one request; its returns when the index took it (StatusKode 20), else SdiRefused/SdiUnavailable."""
        envelope = self.envelope(operation, body, transaction)
        if self.security is not None:
            envelope = self.security.secure(envelope)
        content = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
        try:
            return self.guard.call(self._exchange, operation, content)
        except Rejected as exc:
            raise SdiUnavailable(f"The case index is not asked now: {exc}") from None

    def _exchange(self, operation: str, content: bytes) -> list[Retur]:
        try:
            answer = self.http.post(self.url, content=content,
                                    headers={"Content-Type": "text/xml; charset=utf-8",
                                             "SOAPAction": f'"{self._actions[operation]}"'})
        except httpx.HTTPError as exc:
            raise SdiUnavailable(f"The case index did not answer: {exc}") from None
        returs = self._read(answer)
        refused = [r for r in returs if r.status != OK]
        if not refused:
            return returs
        text = "; ".join(f"{r.status} {r.text}" for r in refused)
        if all(r.status in REFUSED for r in refused):
            raise SdiRefused(f"The case index refused {operation}: {text}")
        raise SdiUnavailable(f"The case index failed {operation}: {text}")

    def _read(self, answer: httpx.Response) -> list[Retur]:
        try:
            envelope = xml.untrusted(answer.content)
        except xml.XmlRefused:
            raise SdiUnavailable(f"The case index answered HTTP {answer.status_code} without SOAP") from None
        fault = envelope.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
        if fault is not None:
            raise SdiUnavailable(f"The case index answered a SOAP Fault (HTTP {answer.status_code}): "
                                 f"{fault.findtext('faultcode')} {fault.findtext('faultstring')}")
        if self.security is not None:
            self.security.verify(envelope)
        returs = [Retur(int(r.findtext(f"{{{NS['sd']}}}StatusKode") or 0), r.findtext(f"{{{NS['sd']}}}FejlbeskedTekst")
                        or "", r.findtext(f"{{{NS['sd']}}}UUIDIdentifikator"))
                  for r in envelope.iterfind(f"{{{SOAP}}}Body/*/*") if etree.QName(r).localname in
                  ("StandardRetur", "UnikRetur")]
        if not returs:
            raise SdiUnavailable(f"The case index answered HTTP {answer.status_code} with no StatusKode")
        return returs

    def _render(self, value: Any) -> Any:
        """zeep's keyword arguments, with each `Ext` as the element it names."""
        if isinstance(value, Ext):
            element = self.zeep.get_element(value.element)  # type: ignore[no-untyped-call]
            return AnyObject(element, element(**self._render(value.value)))  # type: ignore[no-untyped-call]
        if isinstance(value, dict):
            return {k: self._render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v) for v in value]
        return value
