"""MedCom FHIR messages in the VANS envelope (`VANSEnvelope`): wrap, unwrap, the Document Name, VANS receipts.

Why: MedCom's FHIR messages cross the VANS network inside a VANSEnvelope, and the VANS providers count and
route them by what the envelope says (Format, Name, Version), not by the FHIR content. The hub must write the
envelope exactly as MedCom prescribes, read one strictly enough to refuse what is not a FHIR message, and
answer an envelope in VANS terms. Pure functions: bytes and parsed dicts in, bytes and values out.

Sources (the rules; the decisions below are where they are silent):

- MedCom, "MedCom FHIR Messages And Network Envelopes"
  (https://medcomdk.github.io/MedCom-FHIR-Communication/assets/documents/FHIRMessages_NetworkEnvelopes_EN.html),
  repeated in the acknowledgement IG's "Enclosing envelope for FHIR-messages"
  (http://medcomfhir.dk/ig/acknowledgement/2.0.1/Enclosing_envelope_for_FHIR-messages.html): the FHIR message is
  base64 in `VANSEnvelope/Message/Data`; `Message/MetaInformation/Document/Format` is `HL7` for every FHIR
  standard; `Name` is `MCM:` + the type number, optionally `#` + a statistical variant, and the whole Name must
  be a code of MedCom's statistical CodeSystem; `Version` is the standard's version; in
  `MetaInformation/Transport`, `TransformMessage` as usual and `ServiceTag name="MCM:MIME"` SHALL be
  `application/fhir+xml` or `application/fhir+json`.
- MedCom, "Reliable Messaging using VANSEnvelope"
  (https://medcomdk.github.io/MedCom-FHIR-Communication/assets/documents/032_Reliable_Messaging-VANSEnvelope.html):
  `EnvelopeIdentifier` is new for every sending, `Message/MetaInformation/Identifier` identifies the message
  across resendings; `Transport/Type` is `reliable` by default and MUST be `reliable` (or absent) for FHIR.
- MedCom, "Den Gode VANSEnvelope" (2010, https://9pdf.org/document/q0522973-den-gode-vansenvelope.html): the
  envelope carries arbitrary data between two location numbers with proof of receipt; its XML data list, type
  list and enumerations, with examples of a message and of the answers "Ukendt modtager", "Ukendt type" and
  "Modtaget korrekt". Only its opening (revision history, contents, introduction) could be read; the structure
  below is its schema as version 1.0.4 (namespace `urn:oio:medcom:vans-envelope:1.0.4`), taken from a copy of
  that XSD and an example envelope embedded in a public XSD-validation test, and it agrees with what the
  document and MedCom's pages name. No VANSEnvelope XSD is in the standards store, so nothing here is validated
  against one.
- The statistical codes: CodeSystem `medcom-messaging-statisticalCodes` and the type numbers, CodeSystem
  `medcom-messaging-sorEdiSystem` (terminology package), loaded at run time (`StatisticalCodes.from_packages`).

Structure (every element in the VANS namespace; `?` optional, `*` repeats):

    VANSEnvelope
      SenderID @EndPointType (EAN | CVR | VANS), ReceiverID @EndPointType   the location numbers
      EnvelopeIdentifier (UUID), SentDateTime (xs:dateTime)
      Message: MetaInformation, Data (base64)            | Receipt (an answer, below)
    MetaInformation
      Identifier (UUID), Processing?, Document (Format, Name, Version?, SizeInBytes),
      Transport? (Type? reliable|unreliable, TransformMessage (boolean), ServiceTag* @name, at most 5)
    Receipt: NegativeVans (Error, OriginalEnvelopeIdentifier, OriginalMessage?)
           | NegativeMessage (Error, OriginalEnvelopeIdentifier, OriginalMessage)
           | PositiveMessage (OriginalEnvelopeIdentifier, OriginalMessage)
      Error: Code? (positive integer), Description (1..512);  OriginalMessage: a MetaInformation

Decisions (the hub's, where the sources are silent or disagree):

1. Namespace: written as `urn:oio:medcom:vans-envelope:1.0.4`; read in any `urn:oio:medcom:vans-envelope:1.0.*`
   namespace (the 2010 document's revisions share the structure), with every child in the root's namespace.
2. `SizeInBytes` is the length of the decoded message, not of its base64 (the schema's own example: 6089 bytes
   decoded from 8120 base64 characters). On reading, a mismatch is an error: the Data was cut or changed.
3. `Transport` is always written (MedCom's MCM:MIME SHALL be there): `Type` `reliable`, `TransformMessage`
   `false` (a FHIR message must reach the receiver byte for byte). Reading refuses `unreliable`, a missing
   Transport and a missing MCM:MIME tag. Other ServiceTags (e.g. `MCM:STATISTIC`) are kept as they are.
4. The MCM:MIME value is compared case-insensitively without parameters (`; charset=…`; media types are
   case-insensitive, RFC 6838) and written bare. Only MedCom's two values count: the older `text/fhir+xml` of
   an early IG draft is refused. The Data must then start as that format does (`<` or `{`) and be UTF-8 (FHIR).
5. `Version` is optional in the schema and MedCom's pages disagree between revisions (CareCommunication
   2.0.0, 3.0.0, 5.0), so the hub does not guess it: the caller gives it (from its routing table), or none.
6. Location numbers: an `EAN` endpoint must be a GS1 location number (13 digits, GS1 check digit); CVR and VANS
   endpoints only the schema's 1..18 characters. Identifiers must be UUIDs in hex (the schema's character
   class `[aA-fF0-9]` is read as the hex it means). A `SentDateTime` without an offset is Danish time (VANS is
   Danish); the hub writes Danish time with its offset, to the second.
7. Statistical codes are matched case-insensitively (the CodeSystem says `caseSensitive: false`) and written
   as the CodeSystem spells them. A deprecated code is still written (it is in the CodeSystem; MedCom's rule is
   membership); a retired one is not. A code not in the CodeSystem is never written: the Name falls back to the
   bare type number (`MCM:FDIS91`), which MedCom's Name rule allows ("will be able to be postfixed").
8. Type numbers by MessageHeader event, as MedCom's ConceptMap `medcom-messaging-mapFhirToSorEdi` (terminology
   package, published only as an example, so not loadable as a package resource) maps them:
   care-communication-message FDIS91, hospital-notification-message FDIS20, acknowledgement-message FCTL.
   (One revision of MedCom's page writes `MCM:FCTL1#…`; the CodeSystems say FCTL, and they win.)
9. CareCommunication: the variant is the Communication's category code from MedCom's category CodeSystem
   (the MessageHeader focus). Acknowledgement: `MessageHeader.response.code`.
10. HospitalNotification 3.0: the MessageHeader event is always `hospital-notification-message`; what happened is
   the activity of the Provenance that targets this MessageHeader (as `hub.fhir.encounter` reads it). The five
   FDIS20 variants are the activities whose displays they repeat (table below); the Encounter adds nothing the
   activity does not say. Corrections and cancellations (`revise-*`, `cancel-*`) have no variant of their
   own and are named by the bare `MCM:FDIS20`: counting a correction as a second admission would falsify the
   statistics the variant exists for.
11. Answers: "Ukendt modtager" is a `NegativeVans` receipt (the network cannot deliver), "Ukendt type" a
   `NegativeMessage` (the receiving system does not take that document), "Modtaget korrekt" a
   `PositiveMessage`; each goes from the original's receiver to its sender with a new EnvelopeIdentifier and the
   original's MetaInformation. The Error/Code is left out (the schema makes it optional; no code list is
   published with it); the Description is the Danish phrase.
12. XML is parsed as `hub.fhir.io` does (DTDs, entities and network off, a DOCTYPE refused), but with lxml's
   `huge_tree`, because libxml2 refuses a text node over 10 MB and MedCom allows a 100 MB message: the Data of a
   large CareCommunication is one text node. Entities being off, this opens no expansion attack; the size is
   capped at 100 MiB (`MAX_ENVELOPE_BYTES`) before parsing. Nothing else is schema-validated: unknown extra
   elements are ignored, `Processing` is not kept.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from lxml import etree

from hub.core import xml
from hub.core.errors import InvalidInput
from hub.core.outcome import Outcome, single
from hub.fhir.fhirpath import resolve_reference
from hub.fhir.messaging import MessageInfo, NotAMessage, read_message

NAMESPACE = "urn:oio:medcom:vans-envelope:1.0.4"
NAMESPACE_FAMILY = "urn:oio:medcom:vans-envelope:1.0."
ROOT = "VANSEnvelope"
VANS_MEDIA_TYPE = "application/xml; charset=UTF-8"  # what the hub writes an envelope as
FORMAT_HL7 = "HL7"
NAME_PREFIX = "MCM:"
MIME_TAG = "MCM:MIME"
FHIR_XML = "application/fhir+xml"
FHIR_JSON = "application/fhir+json"
FHIR_MIME_TYPES = (FHIR_XML, FHIR_JSON)
ENDPOINT_TYPES = ("EAN", "CVR", "VANS")
MAX_SERVICE_TAGS = 5
MAX_ENVELOPE_BYTES = 100 * 1024 * 1024
COPENHAGEN = ZoneInfo("Europe/Copenhagen")

STATISTICAL_CODES = "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-statisticalCodes"
TYPE_NUMBER_CODES = "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-sorEdiSystem"
CATEGORY_CODES = "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-careCommunication-categoryCodes"

# Decision 8: MessageHeader event → type number ("Type nr." in MedCom's standards directory).
EVENT_TYPE_NUMBERS: Mapping[str, str] = {
    "care-communication-message": "FDIS91",
    "hospital-notification-message": "FDIS20",
    "acknowledgement-message": "FCTL",
}
# Decision 10: HospitalNotification activity → FDIS20 variant (the variant's display repeats the activity's).
HOSPITAL_NOTIFICATION_VARIANTS: Mapping[str, str] = {
    "admit-inpatient": "AdmissionInpatient",  # Start hospital stay - admission
    "admit-emergency": "AcuteAmbulant",  # Start hospital stay - acute ambulant
    "start-leave-inpatient": "OnLeave",  # Start leave
    "end-leave-inpatient": "EndOfLeave",  # End leave
    "discharge-inpatient-home": "EndHospitalStay",  # End hospital stay - … home/primary sector
    "discharge-emergency-home": "EndHospitalStay",
}

UNKNOWN_RECEIVER = "Ukendt modtager"
UNKNOWN_TYPE = "Ukendt type"

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NAME = re.compile(r"MCM:[A-Za-z0-9]+(#\S+)?")

# Element paths, as error messages and OperationOutcome expressions name them.
P_ROOT = ROOT
P_MESSAGE = f"{ROOT}/Message"
P_META = f"{P_MESSAGE}/MetaInformation"
P_DOCUMENT = f"{P_META}/Document"
P_TRANSPORT = f"{P_META}/Transport"
P_MIME = f"{P_TRANSPORT}/ServiceTag[@name='{MIME_TAG}']"
P_DATA = f"{P_MESSAGE}/Data"


class InvalidEnvelope(InvalidInput):
    """A VANSEnvelope the hub cannot read or write; each issue names the element path that is wrong."""


@dataclass(frozen=True)
class Endpoint:
    """A SenderID or ReceiverID: a location number (EAN/GLN), or a CVR or VANS id."""

    id: str
    kind: str = "EAN"


@dataclass(frozen=True)
class VansEnvelope:
    """A VANSEnvelope carrying one MedCom FHIR message (`data`, the message's own bytes)."""

    sender: Endpoint
    receiver: Endpoint
    envelope_id: str  # EnvelopeIdentifier: new for every sending
    message_id: str  # Message/MetaInformation/Identifier: the same across resendings of one message
    sent: datetime  # SentDateTime
    name: str  # Document/Name, e.g. MCM:FDIS91#carecoordination
    mime_type: str  # ServiceTag MCM:MIME
    data: bytes
    version: str | None = None  # Document/Version
    format: str = FORMAT_HL7  # Document/Format
    transform_message: bool = False  # Transport/TransformMessage
    transport_type: str | None = "reliable"  # Transport/Type
    service_tags: tuple[tuple[str, str], ...] = ()  # other ServiceTags, (name, value), in order

    @property
    def size_in_bytes(self) -> int:
        return len(self.data)


ReceiptKind = Literal["NegativeVans", "NegativeMessage", "PositiveMessage"]


@dataclass(frozen=True)
class VansReceipt:
    """A VANS answer to an envelope: from its receiver back to its sender, naming the original (decision 11)."""

    kind: ReceiptKind
    original: VansEnvelope
    envelope_id: str
    sent: datetime
    error: str | None = None  # Error/Description (negative receipts only)

    @property
    def sender(self) -> Endpoint:
        return self.original.receiver

    @property
    def receiver(self) -> Endpoint:
        return self.original.sender


# --- statistical codes and the Document Name ------------------------------------------------------------------


class _Packages(Protocol):
    def get(self, canonical: str, resource_type: str | None = None,
            context: str | None = None) -> dict[str, Any] | None: ...


def _concepts(concepts: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in concepts or []:
        if isinstance(c, dict):
            out.append(c)
            out.extend(_concepts(c.get("concept")))
    return out


def _status(concept: dict[str, Any]) -> str | None:
    return next((p.get("valueCode") for p in concept.get("property", []) or []
                 if isinstance(p, dict) and p.get("code") == "status"), None)


@dataclass(frozen=True)
class StatisticalCodes:
    """MedCom's VANS statistical codes (`MCM:<type>#<variant>`) and type numbers, as the CodeSystems give them."""

    codes: Mapping[str, str]  # casefolded code → the code as the CodeSystem writes it (retired ones left out)
    type_numbers: frozenset[str]

    @classmethod
    def from_codesystems(cls, statistical: Mapping[str, Any],
                         type_numbers: Mapping[str, Any] | None = None) -> StatisticalCodes:
        usable = [c["code"] for c in _concepts(statistical.get("concept"))
                  if isinstance(c.get("code"), str) and _status(c) != "retired"]
        numbers = {c["code"] for c in _concepts((type_numbers or {}).get("concept")) if isinstance(c.get("code"), str)}
        numbers |= {code[len(NAME_PREFIX):].partition("#")[0] for code in usable if code.startswith(NAME_PREFIX)}
        return cls({code.casefold(): code for code in usable}, frozenset(numbers))

    @classmethod
    def from_packages(cls, packages: _Packages) -> StatisticalCodes:
        """From the loaded FHIR packages (the newest version of each CodeSystem); LookupError when missing."""
        statistical = packages.get(STATISTICAL_CODES, "CodeSystem")
        if statistical is None:
            raise LookupError(f"CodeSystem {STATISTICAL_CODES} is not in the loaded packages")
        return cls.from_codesystems(statistical, packages.get(TYPE_NUMBER_CODES, "CodeSystem"))

    def get(self, code: str) -> str | None:
        """The code as the CodeSystem writes it, or None when it is not (usably) in it."""
        return self.codes.get(code.casefold())

    def name(self, type_number: str, variant: str | None) -> str:
        """`MCM:<type>#<variant>` when the CodeSystem has it, else the bare `MCM:<type>` (decision 7)."""
        bare = f"{NAME_PREFIX}{type_number}"
        return (self.get(f"{bare}#{variant}") or bare) if variant else bare

    def knows(self, name: str) -> bool:
        """Whether a Document Name is a statistical code, or a bare type number the CodeSystems know."""
        if self.get(name) is not None:
            return True
        return name.startswith(NAME_PREFIX) and "#" not in name and name[len(NAME_PREFIX):] in self.type_numbers


def document_name(bundle: Mapping[str, Any], codes: StatisticalCodes) -> str:
    """The VANSEnvelope Document Name of a MedCom message Bundle (decisions 7–10)."""
    try:
        info = read_message(bundle)
    except NotAMessage as exc:
        raise InvalidInput(single("structure", f"Bundle: {exc}", "Bundle")) from None
    type_number = EVENT_TYPE_NUMBERS.get(info.event_code or "")
    if type_number is None:
        raise InvalidInput(single(
            "not-supported", f"MessageHeader.eventCoding: the event '{info.event_code}' has no VANS type number "
            f"(known: {', '.join(sorted(EVENT_TYPE_NUMBERS))})", "MessageHeader.eventCoding"))
    return codes.name(type_number, _variant(type_number, info))


def _variant(type_number: str, info: MessageInfo) -> str | None:
    if type_number == "FDIS91":
        return _category(info)
    if type_number == "FDIS20":
        activity = _activity(info)
        return HOSPITAL_NOTIFICATION_VARIANTS.get(activity) if activity else None
    code = (info.response or {}).get("code")
    return code if isinstance(code, str) else None


def _category(info: MessageInfo) -> str | None:
    focus = [resolve_reference(info.bundle, f.get("reference", "")) for f in info.header.get("focus", []) or []
             if isinstance(f, dict) and isinstance(f.get("reference"), str)]
    communication = next((r for r in focus if r is not None and r.get("resourceType") == "Communication"), None)
    categories = (communication or {}).get("category") or []
    for concept in categories if isinstance(categories, list) else [categories]:
        for coding in (concept or {}).get("coding", []) or []:
            if isinstance(coding, dict) and coding.get("system") == CATEGORY_CODES and coding.get("code"):
                return str(coding["code"])
    return None


def _activity(info: MessageInfo) -> str | None:
    for entry in info.bundle.get("entry", []) or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or res.get("resourceType") != "Provenance":
            continue
        if any(isinstance(t, dict) and str(t.get("reference", "")).endswith(f"MessageHeader/{info.header_id}")
               for t in res.get("target", []) or []):
            codings = (res.get("activity") or {}).get("coding") or []
            return next((str(c["code"]) for c in codings if isinstance(c, dict) and c.get("code")), None)
    return None


def fhir_mime_type(data: bytes) -> str:
    """The MCM:MIME value for a FHIR message, by its first character: `<` XML, `{` JSON."""
    first = _first_byte(data)
    if first == b"<":
        return FHIR_XML
    if first == b"{":
        return FHIR_JSON
    raise InvalidEnvelope(single("value", f"{P_DATA}: the message is neither FHIR XML nor FHIR JSON", P_DATA))


def _first_byte(data: bytes) -> bytes:
    return data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1]


# --- checks shared by writing and reading ---------------------------------------------------------------------


def _gln_ok(value: str) -> bool:
    if not re.fullmatch(r"\d{13}", value):
        return False
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(value[:12]))
    return (10 - total % 10) % 10 == int(value[12])


def _check_endpoint(out: Outcome, endpoint: Endpoint, path: str) -> None:
    if endpoint.kind not in ENDPOINT_TYPES:
        out.error("value", f"{path}/@EndPointType: '{endpoint.kind}' is not one of {', '.join(ENDPOINT_TYPES)}",
                  f"{path}/@EndPointType")
    elif endpoint.kind == "EAN" and not _gln_ok(endpoint.id):
        out.error("value", f"{path}: '{endpoint.id}' is not a GS1 location number (13 digits with a valid "
                  "check digit)", path)
    elif not 1 <= len(endpoint.id) <= 18:
        out.error("value", f"{path}: an endpoint id has 1 to 18 characters", path)


def _check_uuid(out: Outcome, value: str, path: str) -> None:
    if not _UUID.fullmatch(value):
        out.error("value", f"{path}: '{value}' is not a UUID", path)


def _mime(value: str) -> str | None:
    """MedCom's MCM:MIME value for `value`, or None when it is not one (decision 4)."""
    bare = value.split(";")[0].strip().lower()
    return bare if bare in FHIR_MIME_TYPES else None


def _check(envelope: VansEnvelope, codes: StatisticalCodes | None) -> Outcome:
    out = Outcome()
    _check_endpoint(out, envelope.sender, f"{ROOT}/SenderID")
    _check_endpoint(out, envelope.receiver, f"{ROOT}/ReceiverID")
    _check_uuid(out, envelope.envelope_id, f"{ROOT}/EnvelopeIdentifier")
    _check_uuid(out, envelope.message_id, f"{P_META}/Identifier")
    if envelope.sent.tzinfo is None:
        out.error("value", f"{ROOT}/SentDateTime: the time needs a time zone", f"{ROOT}/SentDateTime")
    if envelope.format != FORMAT_HL7:
        out.error("value", f"{P_DOCUMENT}/Format: '{envelope.format}', but MedCom's FHIR messages are "
                  f"'{FORMAT_HL7}'", f"{P_DOCUMENT}/Format")
    if not _NAME.fullmatch(envelope.name) or len(envelope.name) > 255:
        out.error("value", f"{P_DOCUMENT}/Name: '{envelope.name}' is not MCM:<type number>[#<variant>]",
                  f"{P_DOCUMENT}/Name")
    elif codes is not None and not codes.knows(envelope.name):
        out.error("code-invalid", f"{P_DOCUMENT}/Name: '{envelope.name}' is not in MedCom's statistical codes "
                  f"({STATISTICAL_CODES})", f"{P_DOCUMENT}/Name")
    if envelope.version is not None and not 1 <= len(envelope.version) <= 255:
        out.error("value", f"{P_DOCUMENT}/Version: a Version has 1 to 255 characters", f"{P_DOCUMENT}/Version")
    if _mime(envelope.mime_type) is None:
        out.error("value", f"{P_MIME}: '{envelope.mime_type}' is not a FHIR MIME type "
                  f"({' or '.join(FHIR_MIME_TYPES)})", P_MIME)
    elif _first_byte(envelope.data) != (b"<" if _mime(envelope.mime_type) == FHIR_XML else b"{"):
        out.error("value", f"{P_DATA}: the message is not {_mime(envelope.mime_type)} as {MIME_TAG} says", P_DATA)
    if envelope.transport_type not in (None, "reliable"):
        out.error("value", f"{P_TRANSPORT}/Type: '{envelope.transport_type}'; FHIR messages travel 'reliable'",
                  f"{P_TRANSPORT}/Type")
    if len(envelope.service_tags) + 1 > MAX_SERVICE_TAGS:
        out.error("value", f"{P_TRANSPORT}/ServiceTag: at most {MAX_SERVICE_TAGS} ServiceTags", P_TRANSPORT)
    if any(name == MIME_TAG for name, _ in envelope.service_tags):
        out.error("value", f"{P_MIME}: given twice", P_MIME)
    if not envelope.data:
        out.error("required", f"{P_DATA}: the message is empty", P_DATA)
    else:
        try:
            envelope.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            out.error("value", f"{P_DATA}: the message is not UTF-8 ({exc.reason} at byte {exc.start})", P_DATA)
    return out


# --- writing --------------------------------------------------------------------------------------------------


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, etree.QName(NAMESPACE, name))
    if text is not None:
        el.text = text
    return el


def _xs_datetime(moment: datetime) -> str:
    return moment.astimezone(COPENHAGEN).isoformat(timespec="seconds")


def _head(root: etree._Element, sender: Endpoint, receiver: Endpoint, envelope_id: str, sent: datetime) -> None:
    _sub(root, "SenderID", sender.id).set("EndPointType", sender.kind)
    _sub(root, "ReceiverID", receiver.id).set("EndPointType", receiver.kind)
    _sub(root, "EnvelopeIdentifier", envelope_id)
    _sub(root, "SentDateTime", _xs_datetime(sent))


def _meta_information(parent: etree._Element, tag: str, envelope: VansEnvelope) -> None:
    meta = _sub(parent, tag)
    _sub(meta, "Identifier", envelope.message_id)
    document = _sub(meta, "Document")
    _sub(document, "Format", envelope.format)
    _sub(document, "Name", envelope.name)
    if envelope.version is not None:
        _sub(document, "Version", envelope.version)
    _sub(document, "SizeInBytes", str(envelope.size_in_bytes))
    transport = _sub(meta, "Transport")
    if envelope.transport_type is not None:
        _sub(transport, "Type", envelope.transport_type)
    _sub(transport, "TransformMessage", "true" if envelope.transform_message else "false")
    _sub(transport, "ServiceTag", _mime(envelope.mime_type) or envelope.mime_type).set("name", MIME_TAG)
    for name, value in envelope.service_tags:
        _sub(transport, "ServiceTag", value).set("name", name)


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")  # type: ignore[no-any-return]


def wrap(envelope: VansEnvelope, codes: StatisticalCodes | None = None) -> bytes:
    """The VANSEnvelope XML (UTF-8) for a FHIR message; `InvalidEnvelope` when the envelope breaks a rule
    (with `codes`, also a Name that is not a statistical code)."""
    outcome = _check(envelope, codes)
    if not outcome.ok:
        raise InvalidEnvelope(outcome)
    root = etree.Element(etree.QName(NAMESPACE, ROOT), nsmap={None: NAMESPACE})
    _head(root, envelope.sender, envelope.receiver, envelope.envelope_id, envelope.sent)
    message = _sub(root, "Message")
    _meta_information(message, "MetaInformation", envelope)
    _sub(message, "Data", base64.b64encode(envelope.data).decode("ascii"))
    return _serialise(root)


# --- reading --------------------------------------------------------------------------------------------------


def _parse(raw: bytes) -> etree._Element:
    """Parse safely (decision 12): size capped, DOCTYPE refused, no entities, DTDs or network."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise InvalidEnvelope(single("too-costly", f"{ROOT}: the envelope is {len(raw)} bytes, over the "
                                     f"{MAX_ENVELOPE_BYTES} the hub takes", ROOT))
    try:
        return xml.untrusted(raw, huge=True)
    except xml.XmlRefused as exc:
        what = exc.text if exc.code == "security" else f"the envelope is {exc.text}"
        raise InvalidEnvelope(single(exc.code, f"{ROOT}: {what}", ROOT)) from None


class _Reader:
    """Looks elements up by name in the envelope's namespace, noting what is missing or malformed."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.out = Outcome()

    def child(self, parent: etree._Element | None, name: str) -> etree._Element | None:
        return None if parent is None else parent.find(f"{{{self.ns}}}{name}")

    def text(self, parent: etree._Element | None, name: str, path: str, required: bool = True) -> str | None:
        el = self.child(parent, name)
        value = (el.text or "").strip() if el is not None else ""
        if not value and required and parent is not None:
            self.out.error("required", f"{path}: missing" if el is None else f"{path}: empty", path)
        return value or None

    def endpoint(self, root: etree._Element, name: str) -> Endpoint | None:
        path = f"{ROOT}/{name}"
        value = self.text(root, name, path)
        el = self.child(root, name)
        kind = el.get("EndPointType") if el is not None else None
        if el is not None and not kind:
            self.out.error("required", f"{path}/@EndPointType: missing", f"{path}/@EndPointType")
        return Endpoint(value, kind) if value and kind else None

    def moment(self, root: etree._Element, name: str) -> datetime | None:
        path = f"{ROOT}/{name}"
        value = self.text(root, name, path)
        if value is None:
            return None
        try:
            if "T" not in value:
                raise ValueError(value)
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.out.error("value", f"{path}: '{value}' is not an xs:dateTime", path)
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=COPENHAGEN)


def unwrap(raw: bytes, codes: StatisticalCodes | None = None) -> VansEnvelope:
    """The envelope and the FHIR message it carries; `InvalidEnvelope` saying what is wrong and where (with
    `codes`, a Name that is not a statistical code is wrong too)."""
    root = _parse(raw)
    qname = etree.QName(root)
    if qname.localname != ROOT or not (qname.namespace or "").startswith(NAMESPACE_FAMILY):
        raise InvalidEnvelope(single(
            "structure", f"/: the root element is {{{qname.namespace or ''}}}{qname.localname}, not {ROOT} in "
            f"{NAMESPACE_FAMILY}*", "/"))
    r = _Reader(qname.namespace or "")
    sender = r.endpoint(root, "SenderID")
    receiver = r.endpoint(root, "ReceiverID")
    envelope_id = r.text(root, "EnvelopeIdentifier", f"{ROOT}/EnvelopeIdentifier")
    sent = r.moment(root, "SentDateTime")
    message = r.child(root, "Message")
    if message is None:
        receipt = r.child(root, "Receipt")
        what = "a VANS receipt, not a message" if receipt is not None else "missing"
        r.out.error("structure" if receipt is not None else "required", f"{P_MESSAGE}: {what}", P_MESSAGE)
        raise InvalidEnvelope(r.out)
    meta = r.child(message, "MetaInformation")
    if meta is None:
        r.out.error("required", f"{P_META}: missing", P_META)
    message_id = r.text(meta, "Identifier", f"{P_META}/Identifier")
    document = r.child(meta, "Document")
    if meta is not None and document is None:
        r.out.error("required", f"{P_DOCUMENT}: missing", P_DOCUMENT)
    fmt = r.text(document, "Format", f"{P_DOCUMENT}/Format")
    name = r.text(document, "Name", f"{P_DOCUMENT}/Name")
    version = r.text(document, "Version", f"{P_DOCUMENT}/Version", required=False)
    size = r.text(document, "SizeInBytes", f"{P_DOCUMENT}/SizeInBytes")
    transport = r.child(meta, "Transport")
    if meta is not None and transport is None:
        r.out.error("required", f"{P_TRANSPORT}: missing (MedCom's {MIME_TAG} ServiceTag lives there)", P_TRANSPORT)
    transport_type = r.text(transport, "Type", f"{P_TRANSPORT}/Type", required=False)
    transform = r.text(transport, "TransformMessage", f"{P_TRANSPORT}/TransformMessage")
    if transform is not None and transform not in ("true", "false", "1", "0"):
        r.out.error("value", f"{P_TRANSPORT}/TransformMessage: '{transform}' is not a boolean",
                    f"{P_TRANSPORT}/TransformMessage")
    tags = [(el.get("name") or "", (el.text or "").strip()) for el in
            (transport.findall(f"{{{r.ns}}}ServiceTag") if transport is not None else [])]
    mime = [value for tag, value in tags if tag == MIME_TAG]
    if transport is not None and not mime:
        r.out.error("required", f"{P_MIME}: missing; MedCom requires it for FHIR messages", P_MIME)
    elif len(mime) > 1:
        r.out.error("value", f"{P_MIME}: given {len(mime)} times", P_MIME)
    data = _data(r, message)
    if data is not None and size is not None and size != str(len(data)):
        r.out.error("value", f"{P_DOCUMENT}/SizeInBytes: says {size}, but Data holds {len(data)} bytes",
                    f"{P_DOCUMENT}/SizeInBytes")
    if (not r.out.ok or sender is None or receiver is None or envelope_id is None or sent is None
            or message_id is None or fmt is None or name is None or data is None):
        raise InvalidEnvelope(r.out)  # every missing part has its issue
    envelope = VansEnvelope(
        sender=sender, receiver=receiver, envelope_id=envelope_id, message_id=message_id, sent=sent, name=name,
        mime_type=_mime(mime[0]) or mime[0], data=data, version=version, format=fmt,
        transform_message=transform in ("true", "1"), transport_type=transport_type,
        service_tags=tuple(t for t in tags if t[0] != MIME_TAG))
    outcome = _check(envelope, codes)
    if not outcome.ok:
        raise InvalidEnvelope(outcome)
    return envelope


def _data(r: _Reader, message: etree._Element) -> bytes | None:
    el = r.child(message, "Data")
    if el is None:
        r.out.error("required", f"{P_DATA}: missing", P_DATA)
        return None
    text = "".join((el.text or "").split())  # xs:base64Binary allows whitespace between characters
    if not text:
        r.out.error("required", f"{P_DATA}: empty", P_DATA)
        return None
    try:  # strict, as xs:base64Binary: whole quanta of four, at most two '=' and only at the end, the alphabet
        if len(text) % 4 or len(text) - len(text.rstrip("=")) > 2:
            raise ValueError(f"{len(text)} characters do not make whole base64 quanta")
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        r.out.error("value", f"{P_DATA}: not valid base64 ({exc})", P_DATA)
        return None


# --- VANS answers ---------------------------------------------------------------------------------------------


def unknown_receiver(original: VansEnvelope, envelope_id: str, sent: datetime) -> VansReceipt:
    """"Ukendt modtager": the receiver's location number is not served here (a NegativeVans receipt)."""
    return VansReceipt("NegativeVans", original, envelope_id, sent, UNKNOWN_RECEIVER)


def unknown_type(original: VansEnvelope, envelope_id: str, sent: datetime) -> VansReceipt:
    """"Ukendt type": the receiver does not take this document (a NegativeMessage receipt)."""
    return VansReceipt("NegativeMessage", original, envelope_id, sent, UNKNOWN_TYPE)


def received_correctly(original: VansEnvelope, envelope_id: str, sent: datetime) -> VansReceipt:
    """"Modtaget korrekt": the envelope reached its receiver (a PositiveMessage receipt)."""
    return VansReceipt("PositiveMessage", original, envelope_id, sent)


def write_receipt(receipt: VansReceipt) -> bytes:
    """The VANSEnvelope XML (UTF-8) of a receipt; `InvalidEnvelope` when it breaks a rule."""
    out = Outcome()
    _check_endpoint(out, receipt.sender, f"{ROOT}/SenderID")
    _check_endpoint(out, receipt.receiver, f"{ROOT}/ReceiverID")
    _check_uuid(out, receipt.envelope_id, f"{ROOT}/EnvelopeIdentifier")
    _check_uuid(out, receipt.original.envelope_id, f"{ROOT}/Receipt/{receipt.kind}/OriginalEnvelopeIdentifier")
    _check_uuid(out, receipt.original.message_id, f"{ROOT}/Receipt/{receipt.kind}/OriginalMessage/Identifier")
    if receipt.sent.tzinfo is None:
        out.error("value", f"{ROOT}/SentDateTime: the time needs a time zone", f"{ROOT}/SentDateTime")
    error_path = f"{ROOT}/Receipt/{receipt.kind}/Error/Description"
    if receipt.kind == "PositiveMessage" and receipt.error is not None:
        out.error("value", f"{error_path}: a positive receipt carries no error", error_path)
    if receipt.kind != "PositiveMessage" and not 1 <= len(receipt.error or "") <= 512:
        out.error("required", f"{error_path}: a negative receipt says why in 1 to 512 characters", error_path)
    if not out.ok:
        raise InvalidEnvelope(out)
    root = etree.Element(etree.QName(NAMESPACE, ROOT), nsmap={None: NAMESPACE})
    _head(root, receipt.sender, receipt.receiver, receipt.envelope_id, receipt.sent)
    body = _sub(_sub(root, "Receipt"), receipt.kind)
    if receipt.error is not None:
        _sub(_sub(body, "Error"), "Description", receipt.error)
    _sub(body, "OriginalEnvelopeIdentifier", receipt.original.envelope_id)
    _meta_information(body, "OriginalMessage", receipt.original)
    return _serialise(root)
