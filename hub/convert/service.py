"""The converter as one service: OIOXML Emessages ⇄ CareCommunication Bundles, with the record of what became
what (the conversion record) that receipts and acknowledgements are later converted by.

Pure apart from reading MedCom's schema files (letter version codes) and package CodeSystems (Danish
displays) once, at construction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree

from hub.convert.letter import CareLetter, read_letter, write_emessage
from hub.convert.receipts import KINDS, LetterRecord, MessageRecord, ack_to_receipts, read_receipt, receipt_to_ack
from hub.convert.tables import FieldTable, LetterKind, field_table, oioxml_codes
from hub.convert.to_fhir import ConversionError, Directory, FhirBuilder, derived_id, local_time
from hub.convert.to_oioxml import Display, OioxmlBuilder, oioxml_id
from hub.core import xml
from hub.core.mappings import CodeMaps
from hub.fhir.messaging import ErrorCodes, NotAMessage, read_message
from hub.fhir.packages import PackageSet
from hub.medcom.envelope import ENVELOPE, element_text, find
from hub.medcom.receipts import ReceiptWriter, version_code
from hub.medcom.schemas import NAMESPACE

FHIR_JSON = "application/fhir+json"
OIOXML_MEDIA = "application/xml"


@dataclass(frozen=True)
class Output:
    """One message a conversion produced."""

    name: str  # a file name: <kind>-<id>.<ext>
    media_type: str
    body: bytes


@dataclass
class Conversion:
    """One converted message: what it became, and the record linking the FHIR message and the letters."""

    outputs: list[Output]
    message: MessageRecord
    letters: list[LetterRecord] = field(default_factory=list)
    bundle: dict[str, Any] | None = None  # the FHIR side, parsed


def danish_display(packages: PackageSet) -> Display:
    """The Danish display of a code (its `da` designation, else its display) from the loaded CodeSystems."""
    def display(system: str, code: str) -> str | None:
        cs = packages.get(system, "CodeSystem")
        concept = next((c for c in (cs or {}).get("concept", []) if c.get("code") == code), None)
        if concept is None:
            return None
        danish = next((d.get("value") for d in concept.get("designation", []) if d.get("language", "da") == "da"),
                      None)
        found = danish or concept.get("display")
        return str(found) if found else None
    return display


class Converter:
    def __init__(self, schema_root: Path, directory: Directory, display: Display, base_url: str,
                 table: FieldTable | None = None, codes: CodeMaps | None = None) -> None:
        self.table, self.codes = table or field_table(), codes or oioxml_codes()
        self.schema_root = schema_root
        versions = {code: version_code(self._schema_file(kind.namespace, kind.element), kind.element)
                    for code, kind in self.table.kinds.items()}
        self.limits = {code: field_limits(self._schema_file(kind.namespace, "EMessage"), kind, self.table)
                       for code, kind in self.table.kinds.items()}
        self.fhir = FhirBuilder(self.table, self.codes, directory, base_url)
        self.oioxml = OioxmlBuilder(self.table, self.codes, directory, display, versions)

    def _schema_file(self, namespace: str, element: str) -> Path:
        match = NAMESPACE.fullmatch(namespace)
        if match is None:
            raise ValueError(f"{namespace} is not a MedCom namespace")
        return self.schema_root.joinpath(*match.groups(), f"{element}.xsd")

    def letters(self, roots: list[etree._Element]) -> list[CareLetter]:
        """The care letters of Emessages; `ConversionError` for a letter kind the converter does not take."""
        kinds = {(k.namespace, k.element): k for k in self.table.kinds.values()}
        found = []
        for root in roots:
            children = [c for c in root if isinstance(c.tag, str)]
            envelope = next((c for c in children if etree.QName(c).localname == ENVELOPE), None)
            for child in children:
                name = etree.QName(child)
                if name.localname in (ENVELOPE, "Local_Elements"):
                    continue
                kind = kinds.get((name.namespace or "", name.localname))
                if kind is None:
                    raise ConversionError(f"{name.localname} in {name.namespace} is not converted to FHIR "
                                          "(the converter takes XDIS91 ClinicalEmail and XBIN01 BinaryLetter)")
                found.append(read_letter(kind, envelope, child, self.table))
        return found

    def to_fhir(self, roots: list[etree._Element]) -> list[Conversion]:
        """Each XDIS91 letter with the XBIN01 letters its References name, as a CareCommunication."""
        return self.from_letters(self.letters(roots))

    def from_letters(self, letters: list[CareLetter]) -> list[Conversion]:
        """As `to_fhir`, from letters already read; an XBIN01 that belongs to no XDIS91 given is refused."""
        binaries = [b for b in letters if b.kind == "XBIN01"]
        used: set[int] = set()
        conversions = []
        for letter in (x for x in letters if x.kind == "XDIS91"):
            wanted = {(a.object_id or "").replace("-", "").lower() for a in letter.attachments if not a.url}
            mine = [b for b in binaries if any((a.object_id or "").replace("-", "").lower() in wanted
                                               for a in b.attachments)]
            used.update(id(b) for b in mine)
            bundle = self.fhir.bundle(letter, mine)
            conversions.append(Conversion([_json_output(bundle)], self._message(bundle),
                                          [_record(one) for one in [letter, *mine]], bundle))
        lone = [b for b in binaries if id(b) not in used]
        if lone:
            raise ConversionError(f"XBIN01 letter {lone[0].get('letter.id')} belongs to no XDIS91 letter given "
                                  "(convert it together with its XDIS91)")
        return conversions

    def to_oioxml(self, bundle: dict[str, Any]) -> Conversion:
        """A CareCommunication as its XDIS91 letter and the XBIN01 letters of its files, each in an Emessage."""
        letter, binaries = self.oioxml.letters(bundle)
        outputs = []
        for one in [letter, *binaries]:
            root = write_emessage(one, self.table.kinds[one.kind], self.table, self.limits[one.kind])
            body = etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1", pretty_print=True)
            outputs.append(Output(f"{one.kind}-{one.get('letter.id')}.xml", OIOXML_MEDIA, body))
        return Conversion(outputs, self._message(bundle), [_record(one) for one in [letter, *binaries]], bundle)

    def receipts(self, ack: dict[str, Any], originals: list[etree._Element]) -> tuple[list[Output], list[str]]:
        """The receipts (one per original envelope) of an Acknowledgement of the CareCommunication that the
        `originals` (an XDIS91 and its XBIN01s) became, and notes where the two do not seem to belong together."""
        conversions = self.to_fhir(originals)
        answered = str(((ack.get("entry") or [{}])[0].get("resource") or {}).get("response", {}).get("identifier"))
        notes = [f"the acknowledgement answers message {answered}; the letters given became {c.message.header_id}"
                 for c in conversions if c.message.header_id != answered]
        bodies = ack_to_receipts(ack, [one for c in conversions for one in c.letters], self.codes,
                                 ReceiptWriter(self.schema_root))
        return [Output(f"{_receipt_name(body)}.xml", OIOXML_MEDIA, body) for body in bodies], notes

    def acknowledgements(self, receipts: list[etree._Element], original: dict[str, Any], errors: ErrorCodes,
                         event: dict[str, Any], new_id: Callable[[], str]) -> tuple[list[Output], list[str]]:
        """The Acknowledgement of the CareCommunication `original` for each receipt of the letters it became,
        and notes where a receipt names an envelope the message did not become."""
        conversion = self.to_oioxml(original)
        envelopes = {one.envelope_id for one in conversion.letters}
        outputs, notes = [], []
        for root in receipts:
            envelope = find(root, ENVELOPE)
            for element in (c for c in root if isinstance(c.tag, str) and etree.QName(c).localname in KINDS):
                receipt = read_receipt(element, envelope)
                if receipt.original_envelope not in envelopes:
                    notes.append(f"the receipt answers envelope {receipt.original_envelope}; the message became "
                                 f"{', '.join(sorted(envelopes))}")
                ack = receipt_to_ack(receipt, conversion.message, self.codes, errors, event, self.fhir.base,
                                     new_id)
                outputs.append(_json_output(ack, "Acknowledgement"))
        if not outputs:
            raise ConversionError("no receipt (XCTL01, XCTL02, XCTL03) in the OIOXML given")
        return outputs, notes

    @staticmethod
    def _message(bundle: dict[str, Any]) -> MessageRecord:
        try:
            info = read_message(bundle)
        except NotAMessage as exc:
            raise ConversionError(str(exc)) from None
        receiver = info.receivers[0] if info.receivers else None
        return MessageRecord(info.bundle_id, info.header_id, info.sender.organization or {},
                             (receiver.organization if receiver else None) or {}, info.source_endpoint,
                             receiver.endpoint if receiver else None)


def field_limits(entry: Path, kind: LetterKind, table: FieldTable) -> dict[str, int]:
    """The most characters each field's element takes (its type's maxLength), read with xmlschema from the
    letter's schema set, offline: a longer value is cut to fit (the FHIR side keeps it whole)."""
    schema = xmlschema.XMLSchema(str(entry.resolve()), allow="sandbox", defuse="always")
    ns = f"{{{kind.namespace}}}"
    limits = {}
    for f in table.fields:
        if f.repeats or not f.applies(kind.code):
            continue
        steps = ["Emessage", "Envelope" if f.envelope else kind.element, *f.path]
        element = schema.find("/".join(ns + step for step in steps))
        limit = getattr(getattr(element, "type", None), "max_length", None)
        if isinstance(limit, int):
            limits[f.name] = limit
    return limits


def _record(letter: CareLetter) -> LetterRecord:
    v = letter.values
    return LetterRecord(letter.kind, v.get("envelope.id", ""), v.get("letter.id", ""), v.get("letter.version", ""),
                        v.get("sender.ean", ""), v.get("receiver.ean", ""),
                        v.get("envelope.ack") == "pluspositivkvitt")


def _json_output(bundle: dict[str, Any], kind: str = "CareCommunication") -> Output:
    body = json.dumps(bundle, ensure_ascii=False, indent=2).encode("utf-8")
    return Output(f"{kind}-{bundle['id']}.json", FHIR_JSON, body)


def _receipt_name(body: bytes) -> str:
    """<XCTL0n>-<letter id> of a receipt Emessage the hub wrote."""
    root = xml.untrusted(body)
    letter = next(c for c in root if etree.QName(c).localname in KINDS)
    return f"{KINDS[etree.QName(letter).localname].statistical_code}-{element_text(letter, 'Letter', 'Identifier')}"


# Where each rule the field table names is carried out (the test suite checks every rule it names is here).
RULES: dict[str, tuple[Any, ...]] = {
    "timestamp": (local_time, OioxmlBuilder.letters),
    "fhir-ids": (derived_id,),
    "oioxml-ids": (oioxml_id,),
    "bundle-type": (FhirBuilder.bundle,),
    "receipt-on-ack": (ack_to_receipts,),
    "destination": (FhirBuilder._header,),
    "message-definition": (FhirBuilder._header,),
    "event": (FhirBuilder._header,),
    "payload-date": (FhirBuilder._payload_extensions,),
    "activity": (FhirBuilder._provenance, OioxmlBuilder._texts),
    "episode": (FhirBuilder._encounter, OioxmlBuilder._episode),
    "episode-status": (FhirBuilder._encounter, FhirBuilder._patient, OioxmlBuilder._episode),
    "sor-lookup": (FhirBuilder._organisation,),
    "sor-id": (OioxmlBuilder._party,),
    "organisation-name": (FhirBuilder._organisation,),
    "author-contact": (FhirBuilder._text_payload, OioxmlBuilder.letters),
    "replacement-cpr": (FhirBuilder._patient,),
    "patient-ids": (OioxmlBuilder._patient,),
    "patient-name": (FhirBuilder._patient, OioxmlBuilder._patient),
    "communication-status": (FhirBuilder._communication,),
    "category": (FhirBuilder._communication,),
    "priority": (FhirBuilder._text_payload, OioxmlBuilder._subject, OioxmlBuilder._unprioritised),
    "topic": (FhirBuilder._communication,),
    "subject": (OioxmlBuilder._subject,),
    "text": (FhirBuilder._text_payload, OioxmlBuilder._texts),
    "payload-provenance": (FhirBuilder._provenance,),
    "author": (FhirBuilder._role, FhirBuilder._practitioner),
    "author-line": (OioxmlBuilder._author,),
    "recipient-line": (OioxmlBuilder._texts,),
    "attachment": (FhirBuilder._attachment_payload, OioxmlBuilder._attachment, OioxmlBuilder._binary_letter),
    "provenance-time": (FhirBuilder._provenance,),
    "version-code": (version_code,),
    "letter-kind": (OioxmlBuilder.letters,),
    "conversion-record": (Converter._message,),
    "retraction": (OioxmlBuilder.letters,),
    "authorisation": (OioxmlBuilder.letters,),
}
