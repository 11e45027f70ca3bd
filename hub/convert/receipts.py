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
from hub.convert.tables import OIOXML, CodeMaps
from hub.fhir.messaging import AckIssue, ErrorCodes, MessageInfo, Party, acknowledgement, party_keys
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
    return [writer.receipts(EnvelopeRecord(eid, group[0].sender_ean, group[0].receiver_ean),
                            [Receipt(kind, [(one, refusal) for one in group])], now=when)
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


def read_receipt(element: etree._Element) -> ReadReceipt:
    original = find(element, "OriginalEmessage")
    letters = children(original, "OriginalLetter")
    refusals = [(code, formatted_text(text) if (text := find(node, "RefuseText")) is not None else "")
                for node in [original, *letters] if (code := element_text(node, "RefuseCode"))]
    return ReadReceipt(KINDS[etree.QName(element).localname], element_text(original, "OriginalEnvelopeIdentifier"),
                       element_text(original, "OriginalSender", "EANIdentifier"),
                       [i for node in letters if (i := element_text(node, "OriginalLetterIdentifier"))], refusals)


def receipt_to_ack(receipt: ReadReceipt, message: MessageRecord, codes: CodeMaps, errors: ErrorCodes,
                   event: dict[str, Any], base_url: str, new_id: Callable[[], str],
                   now: datetime | None = None) -> dict[str, Any]:
    """The Acknowledgement of the FHIR message a receipt's letter was converted from."""
    code = codes.get(OIOXML + "ReceiptKind", RESPONSE_CODES, receipt.kind.element) or "fatal-error"
    issues = [] if code == "ok" else [
        AckIssue(codes.get(OIOXML + "RefuseCode", ISSUE_TYPES, refuse) or "processing",
                 text or refuse, reason=None, coding=_coding(codes, refuse))
        for refuse, text in receipt.refusals] or [AckIssue("processing", "The receiver refused the letter")]
    return acknowledgement(message.info(), code, issues, errors, event, base_url, new_id, now)


def _coding(codes: CodeMaps, refuse: str) -> dict[str, str] | None:
    medcom = codes.get(OIOXML + "RefuseCode", ERROR_CODES, refuse)
    return {"system": ERROR_CODES, "code": medcom} if medcom else None
