"""MedCom's OIOXML receipts (kvitteringer): XCTL03 positive, XCTL02 negative (letter level), XCTL01 negative
(envelope/VANS level), in the 2005/08/07 namespace where their schemas live.

A receipt goes from the letters' receiver back to their sender and refers to the original envelope and
letters by their identifiers and version codes. Its own `VersionCode` is read from the receipt's schema
(each receipt's letter type restricts it to one pattern), not written here. The envelope of a receipt never
asks for a positive receipt (`minuspositivkvitt`): receipts are not receipted. Written in ISO-8859-1, as
MedCom's letters are; a character outside it becomes a character reference.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from lxml import etree

from hub.core import xml

RECEIPT_NAMESPACE = "http://rep.oio.dk/sundcom.dk/medcom.dk/xml/schemas/2005/08/07/"
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
XS = "{http://www.w3.org/2001/XMLSchema}"
UNKNOWN = "ukendt"  # what a receipt says for an identifier the original did not give (the schema needs one)


class OriginalLetter(Protocol):
    """What a receipt names of a letter (an `envelope.Letter`, or a converted letter's record)."""

    @property
    def identifier(self) -> str | None: ...
    @property
    def version_code(self) -> str | None: ...


class OriginalEnvelope(Protocol):
    """What a receipt names of the envelope it answers (an `envelope.Emessage`, or a conversion record)."""

    @property
    def identifier(self) -> str | None: ...
    @property
    def sender_ean(self) -> str | None: ...
    @property
    def receiver_ean(self) -> str | None: ...


@dataclass(frozen=True)
class ReceiptKind:
    element: str  # PositiveReceipt | NegativeReceipt | NegativeVansReceipt
    statistical_code: str  # XCTL03 | XCTL02 | XCTL01


POSITIVE = ReceiptKind("PositiveReceipt", "XCTL03")
NEGATIVE = ReceiptKind("NegativeReceipt", "XCTL02")
NEGATIVE_VANS = ReceiptKind("NegativeVansReceipt", "XCTL01")


@dataclass(frozen=True)
class Refusal:
    """Why a letter (or the envelope) is refused: one of MedCom's RefuseCodes, and the text for people."""

    code: str  # ikke_specificeret | ukendt_lokationsnummer | problem_med_modtagerID | problem_med_version | syntaksfejl
    text: str


@dataclass(frozen=True)
class Receipt:
    """One receipt of an answer: its kind, the letters it answers (each with its refusal, if refused) and, for
    an envelope refused as a whole, the envelope's refusal."""

    kind: ReceiptKind
    letters: Sequence[tuple[OriginalLetter, Refusal | None]]
    envelope_refusal: Refusal | None = None


class ReceiptWriter:
    """Builds receipts; the receipt version codes come from the schema files in the standards store."""

    def __init__(self, schema_root: Path) -> None:
        folder = schema_root / "2005" / "08" / "07"
        self.version_codes = {kind.element: version_code(folder / f"{kind.element}.xsd", kind.element)
                              for kind in (POSITIVE, NEGATIVE, NEGATIVE_VANS)}

    def receipts(self, original: OriginalEnvelope, parts: list[Receipt], now: datetime | None = None,
                 identifiers: Callable[[str], str] | None = None) -> bytes:
        """One Emessage carrying a receipt for each part (a negative and a positive one may go together).
        Its envelope and letter identifiers are fresh, or `identifiers("envelope")`, `identifiers("letter1")`, …
        (a receipt converted from an Acknowledgement gets ids derived from it, so the same answer gives the same
        receipt)."""
        new_id = identifiers or (lambda _: _new_identifier())
        when = (now or datetime.now(UTC)).astimezone(COPENHAGEN)
        root = etree.Element(f"{{{RECEIPT_NAMESPACE}}}Emessage", nsmap={None: RECEIPT_NAMESPACE})
        envelope = _sub(root, "Envelope")
        sent = _sub(envelope, "Sent")
        _sub(sent, "Date", when.strftime("%Y-%m-%d"))
        _sub(sent, "Time", when.strftime("%H:%M"))
        _sub(envelope, "Identifier", new_id("envelope"))
        _sub(envelope, "AcknowledgementCode", "minuspositivkvitt")
        for number, part in enumerate(parts, 1):
            self._receipt(root, original, part, new_id(f"letter{number}"))
        return etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1")  # type: ignore[no-any-return]

    def _receipt(self, root: etree._Element, original: OriginalEnvelope, part: Receipt, identifier: str) -> None:
        negative = part.kind is not POSITIVE
        receipt = _sub(root, part.kind.element)
        letter = _sub(receipt, "Letter")
        _sub(letter, "Identifier", identifier)
        _sub(letter, "VersionCode", self.version_codes[part.kind.element])
        _sub(letter, "StatisticalCode", part.kind.statistical_code)
        _ean(_sub(receipt, "Sender"), original.receiver_ean)
        _ean(_sub(receipt, "Receiver"), original.sender_ean)
        orig = _sub(receipt, "OriginalEmessage")
        _sub(orig, "OriginalEnvelopeIdentifier", _fit(original.identifier))
        _ean(_sub(orig, "OriginalSender"), original.sender_ean)
        _ean(_sub(orig, "OriginalReceiver"), original.receiver_ean)
        if part.envelope_refusal is not None and negative:
            _sub(orig, "RefuseCode", part.envelope_refusal.code)
            _breakable(_sub(orig, "RefuseText"), part.envelope_refusal.text)
        for one, refusal in part.letters[:99]:  # the schema's limit of letters a receipt names
            item = _sub(orig, "OriginalLetter")
            _sub(item, "OriginalLetterIdentifier", _fit(one.identifier))
            _sub(item, "OriginalVersionCode", _fit(one.version_code, 7))
            if refusal is not None and negative:
                _sub(item, "RefuseCode", refusal.code)
                _breakable(_sub(item, "RefuseText"), refusal.text)


def version_code(xsd: Path, element: str) -> str:
    """The one VersionCode a receipt's letter type allows, as its schema writes it (an `xs:pattern`)."""
    tree = xml.trusted_file(xsd)
    found = tree.xpath(f"//xs:complexType[@name='{element}LetterType']//xs:element[@name='VersionCode']"
                       "//xs:pattern/@value", namespaces={"xs": XS[1:-1]})
    if len(found) != 1:
        raise ValueError(f"{xsd} does not fix the VersionCode of {element}")
    return str(found[0])


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{RECEIPT_NAMESPACE}}}{name}")
    if text is not None:
        child.text = text
    return child


def _ean(parent: etree._Element, ean: str | None) -> None:
    _sub(parent, "EANIdentifier", ean or UNKNOWN)


def _breakable(parent: etree._Element, text: str) -> None:
    """Text in MedCom's BreakableText: lines separated by `<Break/>`, each at most what a line holds."""
    lines = [line for line in text.splitlines() if line.strip()] or [text]
    parent.text = lines[0]
    for line in lines[1:]:
        _sub(parent, "Break").tail = line


def _fit(value: str | None, limit: int = 14) -> str:
    return (value or UNKNOWN)[:limit]


def _new_identifier() -> str:
    """A fresh envelope or letter identifier: 14 characters, the most the schema allows."""
    return uuid.uuid4().hex[:14].upper()
