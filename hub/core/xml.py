"""The one way the hub reads XML: DTDs, entity expansion and network access off, the flags chosen once here.

Every message, envelope, SOAP request and answer arrives from outside, and even the official schemas are files
someone else wrote, so nothing in the hub builds an lxml parser of its own. `untrusted` is for what arrives: a
document that declares a DOCTYPE is refused outright (it is how entity attacks come; a byte search alone misses
one in UTF-16, so the parsed tree is asked too). `trusted_file` and `schema` read the official XSDs from the
standards store with the same flags. lxml's parsers are not to be shared between threads, so each thread gets its
own.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from lxml import etree

_ELEMENT_START = re.compile(rb"<[A-Za-z_]")
DOCTYPE_REFUSED = "XML with a DOCTYPE (DTD or entities) is not accepted"
_local = threading.local()


class XmlRefused(ValueError):
    """XML the hub will not read: `code` is the FHIR issue type, `security` (a DOCTYPE) or `structure` (not
    well-formed)."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def parser(*, huge: bool = False) -> etree.XMLParser:
    """This thread's safe parser; `huge` lifts libxml2's limits on text size and depth (a VANS envelope carries
    a whole message as one text node)."""
    key = "huge" if huge else "normal"
    found: etree.XMLParser | None = getattr(_local, key, None)
    if found is None:
        found = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                                huge_tree=huge)
        setattr(_local, key, found)
    return found


def untrusted(data: bytes, *, huge: bool = False) -> etree._Element:
    """The root element of XML bytes from outside; `XmlRefused` for a DOCTYPE or what is not well-formed XML."""
    first = _ELEMENT_START.search(data)
    prolog = data[: first.start()] if first else data
    if b"<!DOCTYPE" in prolog.upper():
        raise XmlRefused("security", DOCTYPE_REFUSED)
    try:
        root = etree.fromstring(data, parser(huge=huge))
    except etree.XMLSyntaxError as exc:
        raise XmlRefused("structure", f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise XmlRefused("security", DOCTYPE_REFUSED)
    return root


def trusted_file(path: Path) -> etree._ElementTree:
    """A file of the standards store (an XSD, a WSDL), read with the same flags: no DTD, entities or network."""
    return etree.parse(str(path), parser())


def schema(source: Path | bytes) -> etree.XMLSchema:
    """An XSD compiled from the store: a file, or a small wrapper document (bytes) that imports several."""
    document = trusted_file(source) if isinstance(source, Path) else etree.fromstring(source, parser()).getroottree()
    return etree.XMLSchema(document)
