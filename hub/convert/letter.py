"""A MedCom care letter (XDIS91 with the XBIN01 letters carrying its attachments) as flat data, read from and
written to OIOXML by the element paths of the field table. The FHIR side of the conversion works on this
form only, so no OIOXML element name is known outside the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from hub.convert.tables import FieldTable, LetterKind
from hub.medcom.envelope import children, element_text, find

FORMATTING = ("Right", "Center", "Bold", "Italic", "Underline", "FixedFont")  # their text is kept, not their look


@dataclass
class Attachment:
    """One attachment: a Reference of the XDIS91 and, for a binary, the XBIN01 BinaryObject with its data."""

    description: str | None = None  # RefDescription
    url: str | None = None
    object_id: str | None = None  # ObjectIdentifier, as the letter writes it
    object_code: str | None = None  # the kvalifikator: billede, vektor_grafik, …
    extension_code: str | None = None  # pdf, jpeg, …
    size: int | None = None
    data: str | None = None  # base64, from the XBIN01


@dataclass
class CareLetter:
    """One letter of an envelope: its scalar fields by the table's names, its texts (one per
    ClinicalInformation, lines separated by line feeds) and its attachments (References or BinaryObjects)."""

    kind: str  # XDIS91 | XBIN01
    values: dict[str, str] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def formatted_text(element: etree._Element) -> str:
    """MedCom's FormattedText as plain text: `<Break/>` and line ends become line feeds, `<Space/>` a space,
    formatting keeps its words; empty lines are dropped (as MedCom's conversion example does)."""
    parts: list[str] = []

    def walk(node: etree._Element) -> None:
        parts.append(node.text or "")
        for child in node:
            if isinstance(child.tag, str):
                name = etree.QName(child).localname
                if name == "Break":
                    parts.append("\n")
                elif name == "Space":
                    parts.append(" ")
                else:
                    walk(child)
            parts.append(child.tail or "")

    walk(element)
    return "\n".join(line.strip() for line in "".join(parts).splitlines() if line.strip())


def read_letter(kind: LetterKind, envelope: etree._Element | None, element: etree._Element,
                table: FieldTable) -> CareLetter:
    letter = CareLetter(kind.code)
    for f in table.fields:
        if not f.applies(kind.code):
            continue
        if f.name == "text":
            letter.texts = [formatted_text(t) for info in children(element, "ClinicalInformation")
                            for t in children(info, "Text01")]
        elif f.name in ("references", "binaries"):
            letter.attachments += [_attachment(node) for node in children(element, f.path[0])]
        else:
            value = element_text(envelope if f.envelope else element, *f.path)
            if value is not None:
                letter.values[f.name] = value
    return letter


def _attachment(node: etree._Element) -> Attachment:
    binary = find(node, "BIN") if etree.QName(node).localname == "Reference" else node
    size = element_text(binary, "OriginalObjectSize")
    data = element_text(binary, "Object_Base64Encoded")
    return Attachment(description=element_text(node, "RefDescription"), url=element_text(node, "URL"),
                      object_id=element_text(binary, "ObjectIdentifier"),
                      object_code=element_text(binary, "ObjectCode"),
                      extension_code=element_text(binary, "ObjectExtensionCode"),
                      size=int(size) if size and size.isdigit() else None,
                      data="".join(data.split()) if data else None)


class _Writer:
    """Creates elements in the table's order, below one parent, reusing the last child of the same name so
    that a group (Sender, Patient, …) stays one element."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace

    def sub(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        child = etree.SubElement(parent, f"{{{self.ns}}}{name}")
        if text is not None:
            child.text = text
        return child

    def path(self, parent: etree._Element, path: tuple[str, ...], text: str) -> None:
        for name in path[:-1]:
            last = parent[-1] if len(parent) else None
            parent = last if last is not None and etree.QName(last).localname == name else self.sub(parent, name)
        self.sub(parent, path[-1], text)

    def formatted(self, parent: etree._Element, text: str) -> None:
        lines = text.split("\n")
        parent.text = lines[0]
        for line in lines[1:]:
            self.sub(parent, "Break").tail = line


def write_emessage(letter: CareLetter, kind: LetterKind, table: FieldTable,
                   limits: dict[str, int] | None = None) -> etree._Element:
    """The letter in its own Emessage (an envelope holds letters of one namespace); a value longer than
    `limits` gives its field is cut to fit."""
    limits = limits or {}
    w = _Writer(kind.namespace)
    root = etree.Element(f"{{{kind.namespace}}}Emessage", nsmap={None: kind.namespace})
    envelope = w.sub(root, "Envelope")
    element = w.sub(root, kind.element)
    for f in table.fields:
        if not f.applies(kind.code):
            continue
        if f.name == "text":
            for text in letter.texts:
                w.formatted(w.sub(w.sub(element, "ClinicalInformation"), "Text01"), text)
        elif f.name == "references":
            for a in letter.attachments:
                _reference(w, element, a)
        elif f.name == "binaries":
            for a in letter.attachments:
                _binary_object(w, w.sub(element, "BinaryObject"), a, data=True)
        elif (value := letter.values.get(f.name)) is not None:
            w.path(envelope if f.envelope else element, f.path, value[:limits.get(f.name, len(value))])
    return root


def _reference(w: _Writer, element: etree._Element, a: Attachment) -> None:
    ref = w.sub(element, "Reference")
    w.sub(ref, "RefDescription", a.description or ("URL" if a.url else "BIN"))
    if a.url:
        w.sub(ref, "URL", a.url)
    else:
        _binary_object(w, w.sub(ref, "BIN"), a, data=False)


def _binary_object(w: _Writer, parent: etree._Element, a: Attachment, data: bool) -> None:
    for name, value in (("ObjectIdentifier", a.object_id), ("ObjectCode", a.object_code),
                        ("ObjectExtensionCode", a.extension_code), ("OriginalObjectSize", str(a.size or 0))):
        w.sub(parent, name, value or "")
    if data:
        w.sub(parent, "Object_Base64Encoded", a.data or "")
