"""The OIOXML channel's edge step: `read` parses an Emessage's bytes, `check` validates it against the schema set
of its namespace (MedCom's XSDs from the standards store).

The letter flow (`hub.flows.letter`) calls them, keeps the bytes whatever they say, and answers with receipts;
both are pure, built once, and thread-safe.
"""

from __future__ import annotations

from hub.core.errors import InvalidInput
from hub.core.outcome import single
from hub.fhir import io
from hub.medcom.envelope import Emessage, NotAnEmessage, read_emessage
from hub.medcom.schemas import OioxmlSchemas, SchemaError


class LetterEdge:
    def __init__(self, schemas: OioxmlSchemas) -> None:
        self.schemas = schemas

    def read(self, raw: bytes) -> Emessage:
        """The Emessage; `InvalidInput` (400) for what is not well-formed XML or not an Emessage."""
        try:
            return read_emessage(io.parse_xml_root(raw))
        except NotAnEmessage as exc:
            raise InvalidInput(single("structure", str(exc))) from None

    def check(self, emessage: Emessage) -> list[SchemaError]:
        """The schema errors, by the schema set of the root namespace (`UnknownNamespace` when there is none)."""
        return self.schemas.validate(emessage.root)
