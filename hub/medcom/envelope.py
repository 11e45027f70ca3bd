"""The OIOXML `Emessage`: its envelope and its letters, as far as receipts and routing need them.

Read without trusting the schema (a receipt must also answer a letter the schema refuses): each value is
looked up by element name and may be missing. Pure functions over a parsed tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

ENVELOPE = "Envelope"


@dataclass(frozen=True)
class Letter:
    """One letter of an envelope: its element (ClinicalEmail, BinaryLetter, …), where it is, and its ids."""

    kind: str  # the element's local name
    position: int  # its place among the Emessage's children, 1-based (the Envelope is 1)
    identifier: str | None  # Letter/Identifier (BrevNr)
    version_code: str | None  # Letter/VersionCode, e.g. XD9134L
    statistical_code: str | None  # Letter/StatisticalCode, e.g. XDIS91
    sender_ean: str | None
    receiver_ean: str | None
    element: etree._Element


@dataclass(frozen=True)
class Emessage:
    namespace: str
    identifier: str | None  # Envelope/Identifier (KuvertNr)
    acknowledgement_code: str | None  # minuspositivkvitt | pluspositivkvitt
    sent_date: str | None
    sent_time: str | None
    letters: tuple[Letter, ...]
    root: etree._Element

    @property
    def sender_ean(self) -> str | None:
        return next((letter.sender_ean for letter in self.letters if letter.sender_ean), None)

    @property
    def receiver_ean(self) -> str | None:
        return next((letter.receiver_ean for letter in self.letters if letter.receiver_ean), None)


class NotAnEmessage(ValueError):
    """The document is not a MedCom Emessage."""


def children(parent: etree._Element | None, name: str) -> list[etree._Element]:
    """The child elements of `parent` with local name `name` (none when there is no parent)."""
    if parent is None:
        return []
    return [c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == name]


def find(parent: etree._Element | None, *path: str) -> etree._Element | None:
    """The first element down `path` (local names), or None."""
    for name in path:
        found = children(parent, name)
        parent = found[0] if found else None
    return parent


def element_text(parent: etree._Element | None, *path: str) -> str | None:
    """The stripped text of the first element down `path`; None when it is missing or empty."""
    node = find(parent, *path)
    if node is None or node.text is None:
        return None
    return node.text.strip() or None


def read_emessage(root: etree._Element) -> Emessage:
    if not isinstance(root.tag, str) or etree.QName(root).localname != "Emessage":
        raise NotAnEmessage("The root element is not an Emessage")
    elements = [c for c in root if isinstance(c.tag, str)]
    envelope = next((c for c in elements if etree.QName(c).localname == ENVELOPE), None)
    letters = []
    for position, child in enumerate(elements, 1):
        kind = etree.QName(child).localname
        if kind in (ENVELOPE, "Local_Elements"):
            continue
        letters.append(Letter(kind, position, element_text(child, "Letter", "Identifier"),
                              element_text(child, "Letter", "VersionCode"),
                              element_text(child, "Letter", "StatisticalCode"),
                              element_text(child, "Sender", "EANIdentifier"),
                              element_text(child, "Receiver", "EANIdentifier"), child))
    return Emessage(etree.QName(root).namespace or "", element_text(envelope, "Identifier"),
                    element_text(envelope, "AcknowledgementCode"), element_text(envelope, "Sent", "Date"),
                    element_text(envelope, "Sent", "Time"), tuple(letters), root)


def readable_path(root: etree._Element, xpath: str) -> str:
    """An lxml error path (`/*/*[2]/*[5]`) with element names: `Emessage/ClinicalEmail/AdditionalInformation`."""
    try:
        found = root.getroottree().xpath(xpath)
    except etree.XPathError:
        return xpath
    if not found or not isinstance(found[0], etree._Element):
        return xpath
    names = [etree.QName(e).localname for e in reversed([found[0], *found[0].iterancestors()])]
    return "/".join(names)


def letter_position(xpath: str) -> int | None:
    """Which child of the Emessage an error path is in (1 is the Envelope); None for the Emessage itself."""
    steps = xpath.strip("/").split("/")
    if len(steps) < 2:
        return None
    step = steps[1]
    return int(step[step.index("[") + 1:-1]) if "[" in step else 1
