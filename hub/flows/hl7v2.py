"""Receiving HL7 v2 (over MLLP): read, check, store, act, acknowledge; one ACK per message.

Guarantees, as for MedCom messages (DESIGN.md):
- The raw bytes of every message are stored with the verdict and the ACK it got, also when they cannot be read.
- A message is persisted (with its effect and its ACK) before the ACK is sent; a message sent again (same MSH-10
  from the same sending application and facility) gets its first ACK again and is not processed twice.
- What cannot be understood at all (no MSH, broken separators, bytes that are not framed) is answered `AR`;
  a type, trigger, version or processing id the hub does not take `AR` (HL7 table 0357: 200, 201, 203, 202);
  a message that lacks what its mapping needs, or whose value there cannot be read, `AE`, with an ERR segment
  naming segment and field; otherwise `AA`. The listener is lenient where the hub can still act, as real
  senders need (they leave out fields their version calls required, such as SCH-6 or SCH-16): the strict check
  of a message's structure for its version (hl7apy) is `hub validate`'s, where a tester asks for it, not the
  listener's (it costs some 16 ms a message here, eight times the 2 ms a message that 500 messages/s leave).
- In enhanced mode (MSH-15/16 given) the answer on the connection is the accept acknowledgement, sent as MSH-15
  asks (`AL` always, `NE` never, `ER` on errors, `SU` on success): `CA` once the message is stored, `CR` when
  its MSH is refused (type, version, processing id). The verdict (`AA`/`AE`/`AR`) is the application
  acknowledgement, a message of its own, as MSH-16 asks: stored with the message and sent through the outbox to
  the sender's address (`HUB_HL7V2_ACK_ADDRESSES`, `hub.delivery.application_ack`).

What a message does: ADT A01–A13 and A17 become encounter events (`hub.hl7v2.adt`; A17 one for each of its
patients), stored with the message and shown by `GET /fhir/Encounter` as a HospitalNotification's are; A40 moves
a merged patient's stays to the patient kept; A28 and A31 are taken and kept. SIU S12/S13/S14/S15/S17/S26 for a video
consultation (`hub.hl7v2.siu`) book, move, change or cancel its VDX room through the booking flow, exactly as a
FHIR Appointment does (the message is kept with the booking too); a change to an appointment the hub has not
booked is `AE` 204; VDX unavailable is `AE` 207, and the message is processed anew when it is sent again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import Engine, Executable
from sqlalchemy.exc import IntegrityError, OperationalError

from hub.core.config import Settings
from hub.core.errors import HubError
from hub.delivery.application_ack import application_ack_row
from hub.fhir import appointment as fa
from hub.flows.booking import BookingFlow
from hub.hl7v2 import adt, edge, siu
from hub.hl7v2.ack import Finding, acknowledgement
from hub.hl7v2.ig_tables import IgTables
from hub.hl7v2.message import Hl7Message, NotHl7, Unmappable
from hub.hl7v2.mllp import Peer, Problem
from hub.hl7v2.siu import VideoPolicy
from hub.store.commit import Committer, Write
from hub.store.encounters import event_row
from hub.store.inbox import Effect, Inbox
from hub.store.statements import (
    INSERT_ENCOUNTER_EVENT,
    INSERT_MESSAGE,
    INSERT_OUTBOX,
    INSERT_RECEIVED,
    MERGE_PATIENT,
)

log = logging.getLogger("hub.hl7v2")



@dataclass
class _Verdict:
    code: str  # AA | AE | AR
    findings: list[Finding]
    effects: list[Effect]
    remember: bool = True  # False: the sender is asked to send it again, so a resend is processed anew


@dataclass
class Hl7v2Flow:
    """Thread-safe; one per process."""

    engine: Engine
    bookings: BookingFlow | None = None  # SIU video consultations booked in VDX
    # Group commit (`hub.store.commit`): many connections' messages stored in one transaction. None: each alone.
    committer: Committer | None = None
    video: VideoPolicy = VideoPolicy()
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # the V2-to-FHIR IG's tables: by default those of the standards store the settings name
    tables: IgTables = field(default_factory=lambda: IgTables.in_store(Settings().standards_store))
    # over TLS with client certificates: each certificate (`sha256:…` or `CN=…`) → the senders (MSH-3^MSH-4) it
    # may send as; None: no such check (plain MLLP on loopback, or TLS without client certificates)
    senders: dict[str, frozenset[str]] | None = None

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.engine, self.now)

    def close(self) -> None:
        """Commit what the group commit holds, and let the booking flow go."""
        if self.committer is not None:
            self.committer.close()
        if self.bookings is not None:
            self.bookings.close()

    def receive(self, raw: bytes, problem: str | None = None, peer: str = "",
                certificate: tuple[str, ...] | None = None) -> bytes | None:
        """The ACK for one framed message (`problem`: what the transport could not frame), or None when the
        sender asked for no answer (enhanced mode). `certificate`: the names of the client certificate the
        connection showed, when senders are checked against it."""
        message_id = str(uuid.uuid4())
        fields = {"id": message_id, "direction": "in", "channel": "hl7v2", "operation": f"MLLP {peer}".strip(),
                  "content_type": edge.MEDIA_TYPE, "raw": raw}
        if problem is not None:
            try:  # enough of it may be readable to answer MSH-10 (a message cut at the size limit)
                partial: Hl7Message | None = edge.read(raw)
            except NotHl7 as exc:
                partial = exc.header
            return self._refuse(fields, partial, Finding("100", f"Not taken: {problem}"))
        try:
            message = edge.read(raw)
        except NotHl7 as exc:
            return self._refuse(fields, exc.header, Finding(exc.code, exc.text, "MSH" if exc.field else None, 1,
                                                            exc.field))
        if certificate is not None and not self._may_send(certificate, message.sender):
            shown = certificate[0] if certificate else "no certificate"
            return self._refuse(fields, message, Finding("207", f"The sender {message.sender} may not send on this "
                                                                f"connection ({shown})", "MSH", 1, 3))
        key = f"hl7v2:{message.sender}:{message.control_id}"
        earlier = self.inbox.earlier(key) if message.control_id else None
        if earlier is not None:
            self.inbox.store([self.inbox.row(fields, "hl7v2", None, "duplicate", None, key)])
            return earlier.answer
        verdict = self._judge(message, message_id)
        # Enhanced mode's accept acknowledgement says only that it is stored (CA) or that its MSH is refused (CR)
        accept = ("AR" if verdict.code == "AR" else "AA") if message.enhanced else verdict.code
        ack = acknowledgement(message, accept, [*(verdict.findings if accept == verdict.code else []),
                                                *_unknown_ack_types(message)], self.now())
        inbound = self.inbox.row(fields, "hl7v2", _outcome(verdict), "accepted" if verdict.code == "AA" else
                                 "rejected", None, key)
        answer = self.inbox.row({"direction": "out", "channel": "hl7v2", "operation": f"ACK {verdict.code}",
                                 "content_type": edge.MEDIA_TYPE, "raw": ack}, "hl7v2", None, "sent", None, key)
        rows, effects = [inbound, answer], list(verdict.effects)
        if _application_ack_asked(message, verdict.code):
            application = self.inbox.row(
                {"direction": "out", "channel": "hl7v2", "operation": f"application ACK {verdict.code}",
                 "content_type": edge.MEDIA_TYPE, "raw": acknowledgement(message, verdict.code, verdict.findings,
                                                                     self.now(), application=True)},
                "hl7v2", None, "pending", None, key)
            rows.append(application)
            effects.append((INSERT_OUTBOX, [application_ack_row(application["id"], message.sender, self.now())]))
        try:
            remembered = key if message.control_id and verdict.remember else None
            committed = self._commit(rows, remembered, effects)
        except OperationalError:
            log.exception("HL7 v2 message could not be stored")
            return acknowledgement(message, "AE", [Finding("207", "The hub cannot store the message now; send it "
                                                                  "again")], self.now())
        if not committed:  # the same message, received meanwhile on another connection: kept as the duplicate
            self.inbox.store([self.inbox.row({**fields, "id": str(uuid.uuid4())}, "hl7v2", None, "duplicate", None,
                                             key)])
            earlier = self.inbox.earlier(key)
            return earlier.answer if earlier is not None else ack
        return ack if _answered(message, accept) else None

    def _commit(self, rows: list[dict[str, Any]], key: str | None, effects: list[Effect]) -> bool:
        """The message, its ACK, its identity and its effect in one transaction; False when a message with this
        identity was stored meanwhile."""
        if self.committer is None:
            return self.inbox.commit(rows, key, rows[1]["id"], [], effects)
        steps: list[tuple[Executable, list[dict[str, Any]]]] = [(INSERT_MESSAGE, rows)]
        if key is not None:
            steps.append((INSERT_RECEIVED, [self.inbox.received(key, rows[0]["id"], rows[1]["id"])]))
        steps += [(statement, effect_rows or []) for statement, effect_rows in effects]
        try:
            self.committer.submit(Write(steps))
        except IntegrityError:
            if key is not None and self.inbox.earlier(key) is not None:
                return False
            raise
        return True

    def handle(self, raw: bytes, problem: Problem | None, peer: Peer) -> bytes | None:
        """The MLLP server's handler (`hub.hl7v2.mllp`)."""
        if problem is Problem.HANDLER_FAILED:  # receive() itself failed on these bytes: answer without the store
            try:
                message: Hl7Message | None = edge.read(raw)
            except NotHl7 as exc:
                message = exc.header
            return acknowledgement(message, "AE", [Finding("207", "The hub could not process the message; send it "
                                                                  "again")], self.now())
        return self.receive(raw, str(problem) if problem is not None else None, str(peer),
                            _names(peer) if self.senders is not None else None)

    def _may_send(self, certificate: tuple[str, ...], sender: str) -> bool:
        """Whether a certificate (any of its names) may send as `sender` (before anything is looked up: a sender
        spoken for falsely must not even get another's earlier answer)."""
        assert self.senders is not None
        return any(sender in self.senders.get(name, frozenset()) for name in certificate)

    def _judge(self, message: Hl7Message, message_id: str) -> _Verdict:
        refused = edge.check(message)
        if refused is not None:
            return _Verdict("AR", [refused], [])
        try:
            if message.message_type == "SIU":
                return self._schedule(message)
            if message.trigger == "A40":
                gone, kept = adt.merge(message)
                return _Verdict("AA", [], [(MERGE_PATIENT, [{"m_gone": gone.key, "m_kept": kept.key}])])
            if message.trigger in adt.PATIENT_TRIGGERS:
                return _Verdict("AA", [], [])  # the person added or updated: no stay changes
            events = adt.encounter_events(message, self.tables)
        except Unmappable as exc:
            return _Verdict("AE", [Finding(exc.code, exc.text, exc.segment, 1, exc.field)], [])
        return _Verdict("AA", [], [(INSERT_ENCOUNTER_EVENT, [event_row(e, message_id, self.now()) for e in events])])

    def _schedule(self, message: Hl7Message) -> _Verdict:
        """An SIU for a video consultation: booked, changed or cancelled through the booking flow."""
        request = siu.meeting_request(message)
        if not self.video.matches(message):
            return _Verdict("AA", [], [])  # not a video consultation: kept, nothing to book
        if self.bookings is None:
            return _Verdict("AE", [Finding("207", "The hub has no video service here to book the room in; send the "
                                                  "message again")], [], remember=False)
        render = partial(fa.render, fa.core_appointment(request, f"urn:hub:{siu.KEY_PREFIX}"), profile=None)
        inbound = {"direction": "in", "channel": "hl7v2", "format": "hl7v2", "content_type": edge.MEDIA_TYPE,
                   "operation": f"SIU^{message.trigger} booking", "raw": message.raw, "verdict": None,
                   "status": "accepted"}
        patient = (None, request.patient.identifier.key if request.patient and request.patient.identifier else None)
        try:
            if message.trigger == "S12":
                self.bookings.book(request, render, inbound, patient)
            else:
                booked = self.bookings.booked_by(request.source_key)
                if booked is None:
                    return _Verdict("AE", [Finding("204", f"No appointment {request.source_key.split(':')[-1]} from "
                                                          "this sender is booked here", "SCH", 1, 1)], [])
                self.bookings.update(booked, request, render, inbound, patient)
        except HubError as exc:
            why = "; ".join(i.diagnostics or i.code for i in exc.outcome.issues)
            return _Verdict("AE", [Finding("207", f"The video room cannot be booked now ({why}); send the message "
                                                  "again")], [], remember=exc.status < 500)
        return _Verdict("AA", [], [])

    def _refuse(self, fields: dict[str, Any], message: Hl7Message | None, finding: Finding) -> bytes:
        ack = acknowledgement(message, "AR", [finding], self.now())
        verdict = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "structure",
                                                                  "diagnostics": finding.text}]}
        inbound = self.inbox.row(fields, "unknown", verdict, "rejected", None)
        answer = self.inbox.row({"direction": "out", "channel": "hl7v2", "operation": "ACK AR",
                                 "content_type": edge.MEDIA_TYPE, "raw": ack}, "hl7v2", None, "sent", None)
        self.inbox.store([inbound, answer])
        return ack


def _names(peer: Peer) -> tuple[str, ...]:
    """A connection's certificate by the names the senders table may use."""
    return tuple(name for name in (peer.certificate, f"CN={peer.common_name}" if peer.common_name else None)
                 if name)


def _unknown_ack_types(message: Hl7Message) -> list[Finding]:
    """A warning for each MSH-15/16 value outside HL7 table 0155: the message is answered in original mode."""
    return [Finding("103", f"MSH-{n} {message.get(f'MSH.{n}')!r} is not an acknowledgement type of HL7 table "
                           "0155 (AL, NE, ER, SU); answered in original mode", "MSH", 1, n, "W")
            for n in message.unknown_ack_types]


def _asks(asked: str, code: str) -> bool:
    """An acknowledgement type (MSH-15, MSH-16): `AL` always, `NE` never, `ER` on an error, `SU` on success."""
    return asked == "AL" or (asked == "ER" and code != "AA") or (asked == "SU" and code == "AA")


def _application_ack_asked(message: Hl7Message, code: str) -> bool:
    """Enhanced mode: MSH-16 (application acknowledgement type) asks for the verdict as a message of its own."""
    return message.enhanced and _asks(message.get("MSH.16"), code)


def _answered(message: Hl7Message, code: str) -> bool:
    """Original mode: always. Enhanced mode: as MSH-15 (accept acknowledgement type) asks."""
    return not message.enhanced or _asks(message.get("MSH.15") or "AL", code)


def _outcome(verdict: _Verdict) -> dict[str, Any] | None:
    if not verdict.findings:
        return None
    return {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing", "diagnostics": f"{f.code}: {f.text}",
         **({"expression": [f"{f.segment}-{f.field}" if f.field else f.segment]} if f.segment else {})}
        for f in verdict.findings]}
