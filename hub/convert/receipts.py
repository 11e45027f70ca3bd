"""Receipts across the formats, by MedCom's XCTL ⇄ Acknowledgement table (`Mapning-XCTL-Acknowledgement.xlsx`);
the codes by `mappings/oioxml-codes.json`.

A receipt answers a letter by its envelope and letter ids; an Acknowledgement answers a message by its
MessageHeader id. The conversion record (what a message became) links the two, so these functions take it:
an Acknowledgement of a converted message becomes one receipt per original envelope (MedCom's flow 2 sends
one for the XDIS91 and one for the XBIN01), and a receipt of a converted letter becomes the Acknowledgement
of the FHIR message it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from hub.convert.letter import formatted_text
from hub.convert.tables import OIOXML
from hub.convert.to_fhir import ConversionError, derived_id, local_time
from hub.convert.to_oioxml import oioxml_id
from hub.core.mappings import CodeMaps
from hub.fhir.messaging import ACK_ROLES, AckIssue, ErrorCodes, MessageInfo, Party, acknowledgement, party_keys
from hub.medcom.envelope import children, element_text, find
from hub.medcom.receipts import NEGATIVE, NEGATIVE_VANS, POSITIVE, Receipt, ReceiptKind, ReceiptWriter, Refusal

RESPONSE_CODES = "http://hl7.org/fhir/response-code"
ERROR_CODES = "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-acknowledgement-error-codes"
ISSUE_TYPES = "http://hl7.org/fhir/issue-type"
KINDS = {kind.element: kind for kind in (POSITIVE, NEGATIVE, NEGATIVE_VANS)}


@dataclass(frozen=True)
class LetterRecord:
    """One OIOXML letter of a conversion: what a receipt names it by."""

    kind: str  # XDIS91 | XBIN01
    envelope_id: str
    identifier: str
    version_code: str
    sender_ean: str
    receiver_ean: str
    asks_positive: bool = True  # its envelope said pluspositivkvitt: a positive receipt is to be expected


@dataclass(frozen=True)
class EnvelopeRecord:
    """An original envelope as a receipt names it (the `OriginalEnvelope` of hub.medcom.receipts)."""

    identifier: str
    sender_ean: str
    receiver_ean: str


@dataclass(frozen=True)
class MessageRecord:
    """The FHIR side of a conversion: the message, its parties (Organizations as the message wrote them) and
    endpoints, enough to acknowledge it without the message itself."""

    bundle_id: str
    header_id: str
    sender: dict[str, Any]
    receiver: dict[str, Any]
    source_endpoint: str | None
    destination_endpoint: str | None

    def info(self) -> MessageInfo:
        return MessageInfo(bundle={}, bundle_id=self.bundle_id, header={}, header_id=self.header_id,
                           event=(None, None),
                           sender=Party(self.sender, self.source_endpoint, party_keys(self.sender)),
                           receivers=(Party(self.receiver, self.destination_endpoint, party_keys(self.receiver)),),
                           source_endpoint=self.source_endpoint)


def ack_to_receipts(ack: dict[str, Any], letters: list[LetterRecord], codes: CodeMaps,
                    writer: ReceiptWriter) -> list[bytes]:
    """The receipts (one Emessage per original envelope) of a FHIR Acknowledgement of a converted message."""
    header = ((ack.get("entry") or [{}])[0]).get("resource") or {}
    response = header.get("response") or {}
    kind = KINDS[codes.get(RESPONSE_CODES, OIOXML + "ReceiptKind", response.get("code")) or "NegativeReceipt"]
    refusal = None if kind is POSITIVE else _refusal(ack, response, codes)
    when = datetime.fromisoformat(str(ack.get("timestamp"))) if ack.get("timestamp") else None
    envelopes: dict[str, list[LetterRecord]] = {}
    for letter in letters:
        envelopes.setdefault(letter.envelope_id, []).append(letter)
    bundle_id, header_id = str(ack.get("id") or ""), str(header.get("id") or "")

    def identifiers(eid: str) -> Callable[[str], str]:
        """The receipt's ids, derived from the Acknowledgement's (envelope: Bundle.id; letter: MessageHeader.id)."""
        return lambda role: oioxml_id(bundle_id if role == "envelope" else header_id, eid, role)

    # the refusal goes on the original envelope, as MedCom's table says
    return [writer.receipts(EnvelopeRecord(eid, group[0].sender_ean, group[0].receiver_ean),
                            [Receipt(kind, [(one, None) for one in group], refusal)], now=when,
                            identifiers=identifiers(eid))
            for eid, group in envelopes.items()]


def _refusal(ack: dict[str, Any], response: dict[str, Any], codes: CodeMaps) -> Refusal:
    """The receipt's RefuseCode and text from the Acknowledgement's OperationOutcome."""
    details = (response.get("details") or {}).get("reference", "")
    outcome = next((e.get("resource") for e in ack.get("entry", [])
                    if (e.get("resource") or {}).get("resourceType") == "OperationOutcome"
                    and f"OperationOutcome/{e['resource'].get('id')}" == details), None) or {}
    issues = outcome.get("issue") or [{}]
    first = issues[0]
    medcom = next((c.get("code") for c in (first.get("details") or {}).get("coding", [])
                   if c.get("system") == ERROR_CODES), None)
    code = (codes.get(ERROR_CODES, OIOXML + "RefuseCode", medcom) if medcom else None) or codes.get(
        ISSUE_TYPES, OIOXML + "RefuseCode", first.get("code")) or "ikke_specificeret"
    texts = [str((i.get("details") or {}).get("text") or i.get("diagnostics") or "") for i in issues]
    text = "\n".join(t for t in texts if t) or f"Modtageren svarede {response.get('code')}"
    if response.get("code") == "transient-error":
        text = f"Midlertidig fejl, send igen senere.\n{text}"
    return Refusal(code, text)


@dataclass(frozen=True)
class ReadReceipt:
    """One receipt letter: its kind, the envelope and letters it answers, and the refusals it gives."""

    kind: ReceiptKind
    original_envelope: str | None
    original_sender_ean: str | None
    original_letters: list[str]
    refusals: list[tuple[str, str]]  # (RefuseCode, RefuseText), envelope level first
    # the receipt's own identity, when its envelope is known: what its Acknowledgement's ids and time come from
    sender_ean: str | None = None
    envelope_id: str | None = None
    letter_id: str | None = None
    sent: str | None = None  # the envelope's Sent, as a FHIR dateTime


def read_receipt(element: etree._Element, envelope: etree._Element | None = None) -> ReadReceipt:
    """A receipt letter, with the identity and time of its `envelope` when given."""
    original = find(element, "OriginalEmessage")
    letters = children(original, "OriginalLetter")
    refusals = [(code, formatted_text(text) if (text := find(node, "RefuseText")) is not None else "")
                for node in [original, *letters] if (code := element_text(node, "RefuseCode"))]
    date, time = element_text(envelope, "Sent", "Date"), element_text(envelope, "Sent", "Time")
    try:
        sent = local_time(date, time) if envelope is not None else None
    except ConversionError:
        sent = None  # the schema has refused such an envelope before it gets here
    return ReadReceipt(KINDS[etree.QName(element).localname], element_text(original, "OriginalEnvelopeIdentifier"),
                       element_text(original, "OriginalSender", "EANIdentifier"),
                       [i for node in letters if (i := element_text(node, "OriginalLetterIdentifier"))], refusals,
                       element_text(element, "Sender", "EANIdentifier"), element_text(envelope, "Identifier"),
                       element_text(element, "Letter", "Identifier"), sent)


def receipt_to_ack(receipt: ReadReceipt, message: MessageRecord, codes: CodeMaps, errors: ErrorCodes,
                   event: dict[str, Any], base_url: str, new_id: Callable[[], str],
                   now: datetime | None = None) -> dict[str, Any]:
    """The Acknowledgement of the FHIR message a receipt's letter was converted from. A receipt read with its
    envelope gives the Acknowledgement's time (its Sent) and ids (derived from its sender EAN, envelope id and
    letter id: the same receipt, the same Acknowledgement); otherwise `now` and `new_id` do."""
    code = codes.get(OIOXML + "ReceiptKind", RESPONSE_CODES, receipt.kind.element) or "fatal-error"
    issues = [] if code == "ok" else [
        AckIssue(codes.get(OIOXML + "RefuseCode", ISSUE_TYPES, refuse) or "processing",
                 text or refuse, reason=None, coding=_coding(codes, refuse))
        for refuse, text in receipt.refusals] or [AckIssue("processing", "The receiver refused the letter")]
    ids = None
    if receipt.sender_ean and receipt.envelope_id and receipt.letter_id:
        sender, envelope, letter = receipt.sender_ean, receipt.envelope_id, receipt.letter_id
        ids = {"bundle": derived_id(sender, envelope), "header": derived_id(sender, letter),
               **{role: derived_id(sender, letter, role) for role in ACK_ROLES[2:]}}
    when = datetime.fromisoformat(receipt.sent) if receipt.sent else now
    return acknowledgement(message.info(), code, issues, errors, event, base_url, new_id, when, ids)


def _coding(codes: CodeMaps, refuse: str) -> dict[str, str] | None:
    medcom = codes.get(OIOXML + "RefuseCode", ERROR_CODES, refuse)
    return {"system": ERROR_CODES, "code": medcom} if medcom else None


# Where each rule of MedCom's XCTL ⇄ Acknowledgement table (`mappings/medcom-xctl-acknowledgement.json`) is
# carried out: rule name → the functions that implement it (the test suite checks every rule the table names is here).
RECEIPT_RULES: dict[str, tuple[Callable[..., Any], ...]] = {
    # XCTL → Acknowledgement
    "response-code": (read_receipt, receipt_to_ack),
    "ack-bundle": (acknowledgement,),
    "ack-event": (receipt_to_ack, acknowledgement),
    "ack-time": (acknowledgement,),
    "ack-destination": (MessageRecord.info, acknowledgement),
    "ack-provenance": (acknowledgement,),
    "parties-from-record": (MessageRecord.info, acknowledgement),
    "refuse-code": (read_receipt, receipt_to_ack, _coding, _refusal),
    "refuse-text": (read_receipt, formatted_text, receipt_to_ack, _refusal),
    "issue-severity": (acknowledgement,),
    # both directions: the record of a conversion links envelope and letter ids to the FHIR message's ids
    "conversion-record": (MessageRecord.info, receipt_to_ack, ack_to_receipts),
    "letter-refusal": (read_receipt, receipt_to_ack, ack_to_receipts, _refusal),
    "receipt-identity": (read_receipt, receipt_to_ack, derived_id, local_time),
    # Acknowledgement → XCTL
    "receipt-ids": (ack_to_receipts, ReceiptWriter.receipts, oioxml_id),
    "receipt-kind": (ack_to_receipts, ReceiptWriter.receipts),
    "receipt-sent": (ack_to_receipts, ReceiptWriter.receipts),
    "receipt-envelope": (ReceiptWriter.receipts,),
    "receipt-version-code": (ReceiptWriter.__init__,),
    "receipt-parties": (ack_to_receipts, ReceiptWriter.receipts),
    "receipt-per-envelope": (ack_to_receipts,),
}
