"""Receiving OIOXML: an `Emessage` with one or more letters, validated, stored, routed, answered with receipts.

The answer is what MedCom defines for what the envelope asks (`hub.medcom.receipts`):
- the envelope cannot be used (its namespace has no schema set, or the schema refuses the Envelope itself):
  one negative VANS receipt (XCTL01) for the whole envelope;
- otherwise each letter the schema refuses, or whose receiver has no route (`ukendt_lokationsnummer`), gets a
  negative receipt (XCTL02), and when the envelope asks for positive receipts (`pluspositivkvitt`) the accepted
  letters get a positive receipt (XCTL03); both go in one Emessage;
- nothing at all when every letter is accepted and no positive receipt is asked for (HTTP 204).

As for FHIR messages: the raw bytes are always stored with the verdict; an envelope received again (same
sender EAN and envelope identifier) gets the answer it got the first time and is not processed again; an
envelope with accepted letters is delivered through the outbox to each receiver's route: unchanged to a
receiver that reads OIOXML, converted (`hub.flows.conversion`) to one that reads FHIR.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from hub.core.errors import HubError
from hub.core.outcome import Outcome
from hub.core.routing import Route, RoutingTable
from hub.delivery.http import message_delivery
from hub.flows.booking_confirmation import BookingConfirmationFlow
from hub.flows.conversion import ConversionFlow, Converted, NotConverted
from hub.medcom.booking_confirmation import confirmations
from hub.medcom.edge import LetterEdge
from hub.medcom.envelope import Emessage, Letter, letter_position
from hub.medcom.receipts import NEGATIVE, NEGATIVE_VANS, POSITIVE, Receipt, ReceiptWriter, Refusal
from hub.medcom.schemas import OioxmlSchemas, SchemaError, UnknownNamespace, schema_outcome
from hub.store.inbox import Inbox

RECEIPT_MEDIA_TYPE = "application/xml; charset=ISO-8859-1"


@dataclass
class Answered:
    """What the sender gets: the receipts (an Emessage) or nothing (204)."""

    status: int
    receipt: bytes | None
    duplicate: bool = False
    message_id: str | None = None


@dataclass
class _Judged:
    envelope: Refusal | None = None
    refused: dict[int, Refusal] = field(default_factory=dict)  # letter position → why
    routes: dict[str, Route] = field(default_factory=dict)  # route name → route, for letters delivered as received
    converted: Converted = field(default_factory=Converted)  # what the receivers reading FHIR get
    transient: bool = False  # a letter could not be processed now: the envelope is processed anew when resent
    outcome: Outcome = field(default_factory=Outcome)


@dataclass
class LetterFlow:
    """Process inbound OIOXML envelopes. Thread-safe; one per process."""

    engine: Engine
    schemas: OioxmlSchemas
    routes: RoutingTable
    conversions: ConversionFlow
    bookings: BookingConfirmationFlow | None = None  # XDIS13 video consultations booked in VDX
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.engine, self.now)
        self.edge = LetterEdge(self.schemas)
        self.writer = ReceiptWriter(self.schemas.root)

    def receive(self, raw: bytes, content_type: str | None, operation: str = "POST /medcom/oioxml") -> Answered:
        message_id = str(uuid.uuid4())
        fields = {"id": message_id, "direction": "in", "channel": "oioxml", "operation": operation,
                  "content_type": content_type, "raw": raw}
        try:
            emessage = self.edge.read(raw)
        except HubError as exc:
            self.inbox.store([self.inbox.row(fields, "oioxml", exc.outcome.to_fhir(), "rejected", 400)])
            raise
        key = f"oioxml:{emessage.sender_ean or ''}:{emessage.identifier or uuid.uuid4()}"
        earlier = self._answer_to(key)
        if earlier is not None:
            self.inbox.store([self.inbox.row(fields, "oioxml", None, "duplicate", earlier.status, key)])
            return earlier
        judged = self._judge(emessage, message_id)
        self._book(emessage, judged)
        receipt = self._receipts(emessage, judged)
        return self._commit(emessage, key, fields, judged, receipt)

    # --- judging -------------------------------------------------------------------------------------------

    def _judge(self, emessage: Emessage, message_id: str) -> _Judged:
        judged = _Judged()
        try:
            errors = self.edge.check(emessage)
        except UnknownNamespace as exc:
            judged.envelope = Refusal("problem_med_version", str(exc))
            judged.outcome.error("not-supported", str(exc), "Emessage")
            return judged
        judged.outcome.extend(schema_outcome(emessage.root, errors))
        by_letter: dict[int, list[SchemaError]] = {}
        for error in errors:
            by_letter.setdefault(letter_position(error.path) or 1, []).append(error)
        if 1 in by_letter or not emessage.letters:
            text = "; ".join(_short(e) for e in by_letter.get(1, [])) or "The envelope carries no letter"
            judged.envelope = Refusal("syntaksfejl", text)
            return judged
        for letter in emessage.letters:
            if letter.position in by_letter:
                judged.refused[letter.position] = Refusal("syntaksfejl", "; ".join(_short(e) for e in
                                                                                   by_letter[letter.position]))
                continue
            route = self.routes.find((f"gln:{letter.receiver_ean}",)) if letter.receiver_ean else None
            if route is None or not route.open:
                why = (f"No route to the receiver {letter.receiver_ean}" if route is None else
                       f"The receiver {route.name}'s mailbox is out of operation for now")
                judged.refused[letter.position] = Refusal("ukendt_lokationsnummer" if route is None
                                                          else "ikke_specificeret", why)
                judged.outcome.error("not-found" if route is None else "transient", why,
                                     f"Emessage/{letter.kind}/Receiver/EANIdentifier")
                continue
            if route.format == "fhir":
                self._convert(emessage, letter, route, message_id, judged)
                continue
            judged.routes[route.name] = route
        return judged

    def _book(self, emessage: Emessage, judged: _Judged) -> None:
        """Each accepted booking confirmation for a video consultation, booked (`hub.flows.booking_confirmation`)."""
        if self.bookings is None or judged.envelope is not None:
            return
        for letter in confirmations(emessage):
            if letter.position in judged.refused:
                continue
            booked = self.bookings.book(letter)
            if booked.refusal is not None:
                judged.refused[letter.position] = booked.refusal
                judged.outcome.error("transient" if booked.transient else "processing", booked.refusal.text,
                                     f"Emessage/{letter.kind}")
                judged.transient |= booked.transient

    def _convert(self, emessage: Emessage, letter: Letter, route: Route, message_id: str, judged: _Judged) -> None:
        """A letter for a receiver that reads FHIR, converted (`hub.flows.conversion`) or refused."""
        try:
            judged.converted.add(self.conversions.from_oioxml(emessage, letter, route, message_id))
        except NotConverted as exc:
            judged.refused[letter.position] = exc.refusal
            judged.outcome.error(exc.issue_type, exc.text, f"Emessage/{letter.kind}")

    def _receipts(self, emessage: Emessage, judged: _Judged) -> bytes | None:
        if judged.envelope is not None:
            return self.writer.receipts(emessage, [Receipt(NEGATIVE_VANS, [(letter, None) for letter in
                                                                          emessage.letters], judged.envelope)],
                                        self.now())
        parts = []
        refused = [(letter, judged.refused[letter.position]) for letter in emessage.letters
                   if letter.position in judged.refused]
        accepted: list[tuple[Letter, Refusal | None]] = [(letter, None) for letter in emessage.letters
                                                         if letter.position not in judged.refused]
        if refused:
            parts.append(Receipt(NEGATIVE, list(refused)))
        if accepted and emessage.acknowledgement_code == "pluspositivkvitt":
            parts.append(Receipt(POSITIVE, accepted))
        return self.writer.receipts(emessage, parts, self.now()) if parts else None

    # --- storing -------------------------------------------------------------------------------------------

    def _commit(self, emessage: Emessage, key: str, fields: dict[str, Any], judged: _Judged,
                receipt: bytes | None) -> Answered:
        accepted = judged.envelope is None and len(judged.refused) < len(emessage.letters)
        status = 200 if receipt is not None else 204
        inbound = self.inbox.row(fields, "oioxml", judged.outcome.to_fhir(), "accepted" if accepted else "rejected",
                                 status, key)
        rows = [inbound, *judged.converted.rows] if accepted else [inbound]
        answer_id = None
        if receipt is not None:
            answer = self.inbox.row({"direction": "out", "channel": "oioxml", "operation": "receipt",
                                     "content_type": RECEIPT_MEDIA_TYPE, "raw": receipt}, "oioxml", None, "sent", 200,
                                    key)
            rows.append(answer)
            answer_id = answer["id"]
        deliveries = [*(message_delivery(route, inbound["id"], "application/xml", self.now())
                        for route in judged.routes.values()), *judged.converted.deliveries] if accepted else []
        remembered = None if judged.transient else key
        if not self.inbox.commit(rows, remembered, answer_id, deliveries,
                                 judged.converted.effects if accepted else ()):
            earlier = self._answer_to(key)  # the same envelope, received meanwhile on another connection
            assert earlier is not None
            self.inbox.store([self.inbox.row({**fields, "id": str(uuid.uuid4())}, "oioxml", None, "duplicate",
                                             earlier.status, key)])
            return earlier
        if accepted:
            self.conversions.after(judged.converted)
        return Answered(status, receipt, message_id=inbound["id"])

    def _answer_to(self, key: str) -> Answered | None:
        earlier = self.inbox.earlier(key)
        if earlier is None:
            return None
        return Answered(200 if earlier.answer else 204, earlier.answer, duplicate=True, message_id=earlier.message_id)


def _short(error: SchemaError) -> str:
    """A schema error for the sender's staff: the element's name without its namespace."""
    text = error.message
    if text.startswith("Element '{"):
        text = "Element '" + text[text.index("}") + 1:]
    return f"line {error.line}: {text}"

