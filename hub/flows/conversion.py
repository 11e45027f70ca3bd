"""Messages between a FHIR party and an OIOXML party, converted on the way, and their answers converted back.

A route's `format` says what its receiver reads. When a message reaches a receiver that reads the other format,
the receiving flow (`hub.flows.message`, `hub.flows.letter`) asks this module for the conversion
(`hub.convert`, as MedCom's conversion service does it) and commits what comes out with the message itself:

- a CareCommunication for an OIOXML receiver → its XDIS91 and one XBIN01 per attached file, each Emessage
  checked against its XSD, stored as an outbound message and delivered through the outbox; the conversion
  record (FHIR MessageHeader ⇄ OIOXML envelopes and letters) is stored with them;
- an XDIS91 or XBIN01 for a FHIR receiver → waits (`pending_letters`) until its message is whole: an XDIS91
  for the XBIN01 letters of the attachments it refers to, an XBIN01 for its XDIS91; they come in envelopes of
  their own, in any order. The whole message becomes a CareCommunication, validated against MedCom's profiles
  and delivered. A message that cannot be converted or validated then, or whose parts do not all arrive within
  `HUB_PENDING_LETTER_HOURS`, gets negative receipts (XCTL02), sent to the sender through the outbox;
- an Acknowledgement of a converted CareCommunication (from the FHIR receiver) → one receipt per original
  envelope for the OIOXML sender;
- a receipt of a converted letter (from the OIOXML receiver) → the Acknowledgement of the FHIR message, once
  the message is answered: at the first negative receipt (`fatal-error`), or when every letter whose envelope
  asked for a positive receipt has one (`ok`). Later receipts of an answered message are kept, not converted.

What cannot be converted is refused to its sender in the sender's terms (`NotConverted`): an Acknowledgement
issue for a FHIR sender, a negative receipt for an OIOXML one. A receipt or Acknowledgement answering nothing
the hub converted is refused the same way (there is no message to answer).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine

from hub.convert.letter import CareLetter, read_letter
from hub.convert.receipts import (
    KINDS,
    LetterRecord,
    MessageRecord,
    ReadReceipt,
    ack_to_receipts,
    read_receipt,
    receipt_to_ack,
)
from hub.convert.service import FHIR_JSON, OIOXML_MEDIA, Converter
from hub.convert.tables import LetterKind
from hub.convert.to_fhir import ConversionError
from hub.core.outcome import Outcome
from hub.core.routing import Route, RoutingTable
from hub.delivery.http import message_delivery
from hub.fhir import io
from hub.fhir.messaging import ErrorCodes, MessageInfo
from hub.fhir.validator import Validator
from hub.medcom.envelope import Emessage, Letter, find, read_emessage
from hub.medcom.receipts import NEGATIVE, POSITIVE, Receipt, ReceiptWriter, Refusal
from hub.medcom.schemas import OioxmlSchemas, UnknownNamespace
from hub.store.conversions import ConversionStore, PendingLetter, StoredConversion
from hub.store.db import WriterLock
from hub.store.inbox import Effect, Inbox

log = logging.getLogger("hub.conversion")

CARE_COMMUNICATION_EVENT = "care-communication-message"
ACKNOWLEDGEMENT_EVENT = "acknowledgement-message"


class NotConverted(Exception):
    """Why a message cannot go to its receiver converted: as an Acknowledgement issue (IssueType, the hub's
    reason) for a FHIR sender, as a RefuseCode for an OIOXML sender."""

    def __init__(self, text: str, issue_type: str = "processing", reason: str | None = None,
                 refuse_code: str = "ikke_specificeret") -> None:
        super().__init__(text)
        self.text, self.issue_type, self.reason, self.refuse_code = text, issue_type, reason, refuse_code

    @property
    def refusal(self) -> Refusal:
        return Refusal(self.refuse_code, self.text)


@dataclass
class Converted:
    """What a conversion adds to the commit of the message it came from, and what to settle after it."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # outbound messages
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    settle: set[str] = field(default_factory=set)  # conversions whose answer may now be due
    assemble: set[str] = field(default_factory=set)  # senders with letters now waiting

    def add(self, other: Converted) -> None:
        self.rows += other.rows
        self.deliveries += other.deliveries
        self.effects += other.effects
        self.settle |= other.settle
        self.assemble |= other.assemble


@dataclass(frozen=True)
class _Conversion:
    """A stored conversion (`hub.store.conversions`) with its records read back as the converter's own."""

    id: str
    direction: str
    message: MessageRecord
    letters: list[tuple[LetterRecord, ReadReceipt | None]]  # each with the receipt that answered it
    answered: bool

    @classmethod
    def read(cls, stored: StoredConversion) -> _Conversion:
        return cls(stored.id, stored.direction, MessageRecord(**stored.message),
                   [(LetterRecord(**letter), _receipt(receipt) if receipt else None)
                    for letter, receipt in stored.letters], stored.answered)

    @classmethod
    def of(cls, stored: StoredConversion | None) -> _Conversion | None:
        return None if stored is None else cls.read(stored)


def _receipt(stored: dict[str, Any]) -> ReadReceipt:
    return ReadReceipt(**{**stored, "kind": KINDS[stored["kind"]],
                          "refusals": [tuple(one) for one in stored.get("refusals", [])]})


class _Taken(Exception):
    """Another worker converted these waiting letters first."""


@dataclass
class ConversionFlow:
    """Thread-safe; one per process, shared by the receiving flows."""

    engine: Engine
    make_converter: Callable[[], Converter]  # built on first use: it reads MedCom's schemas (most of a second)
    validator: Validator
    schemas: OioxmlSchemas
    routes: RoutingTable
    errors: ErrorCodes
    ack_event: dict[str, Any]
    base_url: str
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.engine, self.now)
        self.store = ConversionStore(self.engine)
        self.writer = ReceiptWriter(self.schemas.root)
        self._lock = WriterLock(self.engine)
        self._made: Converter | None = None
        self._making = threading.Lock()

    @property
    def converter(self) -> Converter:
        with self._making:
            if self._made is None:
                self._made = self.make_converter()
            return self._made

    def _kind(self, namespace: str, element: str) -> LetterKind | None:
        """The care letter kind (XDIS91, XBIN01) of an element in a namespace, if the converter takes it."""
        return next((k for k in self.converter.table.kinds.values()
                     if (k.namespace, k.element) == (namespace, element)), None)

    # --- FHIR in, OIOXML out ---------------------------------------------------------------------------

    def from_fhir(self, bundle: dict[str, Any], info: MessageInfo, route: Route, source_id: str) -> Converted:
        """A FHIR message for an OIOXML receiver, as the letters to deliver (and the record to keep)."""
        if info.event_code == ACKNOWLEDGEMENT_EVENT:
            return self._ack_to_receipts(bundle, info, route)
        if info.event_code != CARE_COMMUNICATION_EVENT:
            raise NotConverted(f"The receiver {route.name} reads OIOXML; the hub converts CareCommunication and "
                               f"Acknowledgement messages for it, not {info.event_code}", "not-supported",
                               "message-type-refused", "problem_med_version")
        try:
            conversion = self.converter.to_oioxml(bundle)
        except ConversionError as exc:
            raise NotConverted(f"The message cannot be converted to OIOXML for {route.name}: {exc}") from None
        converted = Converted()
        for output in conversion.outputs:
            self._out(converted, output.body, "oioxml", OIOXML_MEDIA, route, f"converted from {info.header_id}")
        converted.effects += self.store.record("to-oioxml", asdict(conversion.message),
                                               [asdict(one) for one in conversion.letters], source_id, self.now())
        return converted

    def _ack_to_receipts(self, ack: dict[str, Any], info: MessageInfo, route: Route) -> Converted:
        answered = str((info.response or {}).get("identifier") or "")
        stored = _Conversion.of(self.store.by_header(answered, "to-fhir"))
        if stored is None:
            raise NotConverted(f"The acknowledgement answers message {answered or '(none)'}, which the hub has not "
                               f"converted from OIOXML; the receiver {route.name} reads OIOXML", "not-found")
        converted = Converted()
        for body in ack_to_receipts(ack, [letter for letter, _ in stored.letters], self.converter.codes,
                                    self.writer):
            self._out(converted, body, "oioxml", OIOXML_MEDIA, route, f"receipt converted from {info.header_id}")
        converted.effects.append((self.store.mark_answered(stored.id, self.now()), None))
        return converted

    # --- OIOXML in, FHIR out ---------------------------------------------------------------------------

    def from_oioxml(self, emessage: Emessage, letter: Letter, route: Route, source_id: str) -> Converted:
        """An OIOXML letter for a FHIR receiver: a care letter waits for the rest of its message; a receipt
        is recorded against the letter it answers."""
        kind = self._kind(emessage.namespace, letter.kind)
        if kind is not None:
            return self._letter_waits(emessage, letter, kind, source_id)
        if letter.kind in KINDS:
            return self._receipt_in(emessage, letter, route)
        raise NotConverted(f"The receiver {route.name} reads FHIR; the hub converts XDIS91 and XBIN01 letters and "
                           f"receipts for it, not {letter.kind} in {emessage.namespace}", "not-supported",
                           "message-type-refused", "problem_med_version")

    def _letter_waits(self, emessage: Emessage, letter: Letter, kind: LetterKind, source_id: str) -> Converted:
        care = read_letter(kind, find(emessage.root, "Envelope"), letter.element, self.converter.table)
        sender = care.get("sender.ean") or ""
        known = self.routes.organisation((f"gln:{sender}",))
        if known is None or known.sor is None:
            raise NotConverted(f"The sender's EAN {sender} has no SOR id in the hub's directory; the receiver "
                               "reads FHIR, which names organisations by SOR id")
        if care.kind == "XBIN01":
            for attachment in care.attachments:
                try:
                    base64.b64decode(attachment.data or "", validate=True)
                except binascii.Error:
                    raise NotConverted(f"The attachment {attachment.object_id} is not base64", "structure",
                                       refuse_code="syntaksfejl") from None
        ids = [a.object_id or "" for a in care.attachments if not a.url]
        return Converted(effects=[self.store.pending(sender, care.kind, ids, source_id, letter.position, self.now())],
                         assemble={sender})

    def _receipt_in(self, emessage: Emessage, letter: Letter, route: Route) -> Converted:
        receipt = read_receipt(letter.element, find(emessage.root, "Envelope"))
        stored = _Conversion.of(self.store.by_envelope(receipt.original_sender_ean or "",
                                                       receipt.original_envelope or ""))
        if stored is None or stored.direction != "to-oioxml":
            raise NotConverted(f"The receipt answers envelope {receipt.original_envelope} from "
                               f"{receipt.original_sender_ean}, which the hub has not sent; the receiver "
                               f"{route.name} reads FHIR", "not-found")
        record = {**asdict(receipt), "kind": receipt.kind.element}
        return Converted(effects=[self.store.answer(stored.id, receipt.original_envelope or "",
                                                    receipt.original_letters, record)], settle={stored.id})

    # --- after the commit: answers and whole messages ----------------------------------------------------

    def after(self, converted: Converted) -> None:
        """What a committed message made due: answers to convert, waiting letters to put together. A failure
        here loses nothing (the housekeeping round tries again); the sender already has its answer."""
        try:
            for conversion_id in converted.settle:
                self.settle(conversion_id)
            for sender in converted.assemble:
                self.assemble(sender)
        except Exception:
            log.exception("converting after the commit failed; the housekeeping round tries again")

    def settle(self, conversion_id: str) -> bool:
        """The Acknowledgement of a converted FHIR message, when its receipts say it is answered."""
        stored = _Conversion.read(self.store.by_id(conversion_id))
        if stored.answered:
            return False
        receipts = [receipt for _, receipt in stored.letters if receipt is not None]
        refused = next((receipt for receipt in receipts if receipt.kind is not POSITIVE), None)
        if refused is None and any(receipt is None and letter.asks_positive for letter, receipt in stored.letters):
            return False
        if refused is None and not receipts:
            return False  # nothing asked for a receipt, and none came
        # the Acknowledgement is the receipt that decided: the negative one, else the last positive one
        receipt = refused or max(receipts, key=lambda r: r.sent or "")
        ack = receipt_to_ack(receipt, stored.message, self.converter.codes, self.errors, self.ack_event,
                             self.base_url, lambda: str(uuid.uuid4()), self.now())
        verdict = self.validator.validate(ack)
        if not verdict.ok:  # the hub's own defect: sent all the same, the log says why
            log.error("converted acknowledgement %s does not validate: %s", ack["id"], _errors(verdict))
        route = self.routes.find(stored.message.info().sender.keys)
        converted = Converted()
        self._out(converted, json.dumps(ack, ensure_ascii=False).encode(), "fhir+json", FHIR_JSON, route,
                  f"acknowledgement converted from receipt {receipt.envelope_id}", verdict)
        with self._lock, self.engine.begin() as conn:
            if conn.execute(self.store.mark_answered(conversion_id, self.now())).rowcount != 1:
                return False  # answered meanwhile by another worker
            self._write(conn, converted)
        return True

    def assemble(self, sender_ean: str) -> int:
        """Convert each message of the sender whose letters are all here; the number converted."""
        waiting = [letter for _, letter in self.store.waiting(sender_ean)]
        binaries = [one for one in waiting if one.kind == "XBIN01"]
        done = 0
        for letter in (one for one in waiting if one.kind == "XDIS91"):
            mine = [b for b in binaries if b.object_ids & letter.object_ids]
            if not letter.object_ids <= frozenset().union(*(b.object_ids for b in mine)):
                continue
            try:
                self._convert([letter, *mine])
                done += 1
            except _Taken:
                pass
            binaries = [b for b in binaries if b not in mine]
        return done

    def expire(self, older_than: timedelta) -> int:
        """Refuse the letters that have waited longer than `older_than` for the rest of their message."""
        cutoff = self.now() - older_than
        hours = older_than.total_seconds() / 3600
        expired = 0
        for _, letter in self.store.waiting():
            if letter.received_at >= cutoff:
                continue
            missing = ("The XBIN01 letters with its attachments" if letter.kind == "XDIS91"
                       else "The XDIS91 letter the attachment belongs to")
            try:
                self._refuse([letter], Refusal("ikke_specificeret", f"{missing} did not arrive within {hours:g} "
                                                                    "hours; the letter is not delivered"))
                expired += 1
            except _Taken:
                pass
        return expired

    def housekeeping(self, older_than: timedelta) -> None:
        """What a stopped process left: answers due, whole messages not yet converted, letters waiting too long."""
        for conversion_id in self.store.unanswered("to-oioxml"):
            self.settle(conversion_id)
        for sender in {sender for sender, _ in self.store.waiting()}:
            self.assemble(sender)
        self.expire(older_than)

    def _convert(self, group: list[PendingLetter]) -> None:
        """A whole message: the CareCommunication to its receiver, or negative receipts to its sender."""
        letters = [self._read(one) for one in group]
        first = letters[0][1]
        receiver = first.get("receiver.ean") or ""
        route = self.routes.find((f"gln:{receiver}",))
        try:
            if route is None or route.format != "fhir":
                raise ConversionError(f"No FHIR route to the receiver {receiver} any more")
            conversion = self.converter.from_letters([care for _, care in letters])[0]
        except ConversionError as exc:
            return self._refuse(group, Refusal("ikke_specificeret", f"The letter cannot be converted to FHIR: {exc}"))
        assert conversion.bundle is not None
        verdict = self.validator.validate(conversion.bundle)
        if not verdict.ok:
            return self._refuse(group, Refusal("ikke_specificeret", "The letter converted to FHIR does not "
                                                                    f"validate: {_errors(verdict)}"))
        converted = Converted()
        self._out(converted, conversion.outputs[0].body, "fhir+json", FHIR_JSON, route,
                  f"converted from envelope {first.get('envelope.id')}", verdict)
        converted.effects += self.store.record("to-fhir", asdict(conversion.message),
                                               [asdict(one) for one in conversion.letters], group[0].message_id,
                                               self.now())
        self._commit_taking(group, converted)

    def _refuse(self, group: list[PendingLetter], refusal: Refusal) -> None:
        """Negative receipts for waiting letters, one Emessage per original envelope, to the sender's route."""
        by_message: dict[str, list[PendingLetter]] = {}
        for one in group:
            by_message.setdefault(one.message_id, []).append(one)
        converted = Converted()
        for message_id, ones in by_message.items():
            emessage = read_emessage(io.parse_xml_root(self.store.raw(message_id)))
            letters = [letter for letter in emessage.letters if letter.position in {o.position for o in ones}]
            body = self.writer.receipts(emessage, [Receipt(NEGATIVE, [(letter, refusal) for letter in letters])],
                                        self.now())
            route = self.routes.find((f"gln:{emessage.sender_ean}",))
            self._out(converted, body, "oioxml", OIOXML_MEDIA, route, f"receipt for waiting letters: {refusal.text}")
        log.warning("letters %s refused after waiting: %s", [one.id for one in group], refusal.text)
        self._commit_taking(group, converted)

    def _commit_taking(self, group: list[PendingLetter], converted: Converted) -> None:
        with self._lock, self.engine.begin() as conn:
            if conn.execute(self.store.take(group)).rowcount != len(group):
                raise _Taken()  # rolls back: another worker has them
            self._write(conn, converted)

    def _read(self, pending: PendingLetter) -> tuple[Letter, CareLetter]:
        emessage = read_emessage(io.parse_xml_root(self.store.raw(pending.message_id)))
        letter = next(one for one in emessage.letters if one.position == pending.position)
        kind = self._kind(emessage.namespace, letter.kind)
        assert kind is not None  # it waited as one
        return letter, read_letter(kind, find(emessage.root, "Envelope"), letter.element, self.converter.table)

    # --- shared ------------------------------------------------------------------------------------------

    def _out(self, converted: Converted, body: bytes, fmt: str, media_type: str, route: Route | None,
             operation: str, verdict: Outcome | None = None) -> None:
        """An outbound message made by a conversion, with its delivery to `route` (none: kept, not sent)."""
        if fmt == "oioxml":
            verdict = self._check_oioxml(body)
        channel = "oioxml" if fmt == "oioxml" else "fhir-messaging"
        row = self.inbox.row({"direction": "out", "channel": channel, "operation": operation[:200],
                              "content_type": media_type, "raw": body},
                             fmt, verdict.to_fhir() if verdict else None,
                             "converted" if route is not None else "undeliverable", None)
        converted.rows.append(row)
        if route is not None:
            converted.deliveries.append(message_delivery(route, row["id"], media_type, self.now()))
        else:
            log.warning("no route for the converted message %s (%s); it is kept, not delivered", row["id"], operation)

    def _check_oioxml(self, body: bytes) -> Outcome:
        """The XSD's verdict on a letter the hub wrote: anything but valid is the hub's own defect, logged."""
        root = io.parse_xml_root(body)
        try:
            errors = self.schemas.validate(root)
        except UnknownNamespace as exc:
            errors = []
            log.error("converted letter has no schema: %s", exc)
        outcome = Outcome()
        for error in errors:
            outcome.error("structure", f"line {error.line}: {error.message}")
        if errors:
            log.error("converted letter does not validate: %s", _errors(outcome))
        return outcome

    @staticmethod
    def _write(conn: Connection, converted: Converted) -> None:
        Inbox.write(conn, converted.rows, converted.deliveries, converted.effects)


def _errors(outcome: Outcome) -> str:
    return "; ".join(i.diagnostics or i.code for i in outcome.issues if i.severity in ("error", "fatal"))[:2000]
