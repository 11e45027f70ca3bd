"""MedCom's OIOXML schemas, chosen by a message's root namespace and loaded from the standards store.

Each namespace `http://rep.oio.dk/[sundcom.dk/]medcom.dk/xml/schemas/<yyyy>/<mm>/<dd>/` has its schema set in
the folder `medcom/xml/schemas/<yyyy>/<mm>/<dd>/` with `EMessage.xsd` as entry point (medcom/README.md). A set
is compiled with lxml on first use and kept; includes are read from the store, never from the network. A set
that does not compile (MedCom's 2015/02/16 lacks `FormattedText.xsd`) is reported as such, not guessed at.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from hub.core import xml
from hub.core.outcome import Outcome
from hub.medcom.envelope import readable_path

NAMESPACE = re.compile(r"http://rep\.oio\.dk/(?:sundcom\.dk/)?medcom\.dk/xml/schemas/(\d{4})/(\d{2})/(\d{2})/")


@dataclass(frozen=True)
class SchemaError:
    """One schema finding: the message line, the element's path (XPath with positions) and the text."""

    line: int
    path: str
    message: str


class UnknownNamespace(LookupError):
    """No MedCom schema set for this namespace (or it does not compile)."""


class OioxmlSchemas:
    """The compiled schema sets; thread-safe."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.root = store / "files" / "medcom" / "xml" / "schemas"
        self._compiled: dict[str, etree.XMLSchema | str] = {}
        self._lock = threading.Lock()

    def folder(self, namespace: str) -> Path | None:
        match = NAMESPACE.fullmatch(namespace)
        return self.root.joinpath(*match.groups()) if match else None

    def schema(self, namespace: str) -> etree.XMLSchema:
        with self._lock:
            found = self._compiled.get(namespace)
            if found is None:
                found = self._compiled[namespace] = self._compile(namespace)
        if isinstance(found, str):
            raise UnknownNamespace(found)
        return found

    def _compile(self, namespace: str) -> etree.XMLSchema | str:
        folder = self.folder(namespace)
        if folder is None:
            return f"{namespace} is not a MedCom OIOXML namespace"
        entry = folder / "EMessage.xsd"
        if not entry.exists():
            return f"No MedCom schema set for {namespace} (run `hub schemas sync`)"
        try:
            return xml.schema(entry)
        except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
            return f"MedCom's schema set for {namespace} does not compile: {exc}"

    def validate(self, document: etree._ElementTree | etree._Element) -> list[SchemaError]:
        """The schema findings on a parsed message, by the schema set of its root namespace."""
        root = document.getroot() if isinstance(document, etree._ElementTree) else document
        schema = self.schema(etree.QName(root).namespace or "")
        if schema.validate(root):
            return []
        return [SchemaError(e.line, e.path or "", e.message) for e in schema.error_log]


def schema_outcome(root: etree._Element, errors: list[SchemaError]) -> Outcome:
    """Schema findings as an OperationOutcome: each at its element's path with names, rule `xsd`."""
    out = Outcome()
    for error in errors:
        out.error("structure", f"line {error.line}: {error.message}", readable_path(root, error.path), rule="xsd")
    return out
