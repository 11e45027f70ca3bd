"""Receiving MedCom FHIR messages: validate, recognise a message sent again, store, route, acknowledge.

Guarantees (DESIGN.md, principles 2 to 4):
- The raw bytes of every message are stored, also when they cannot be read, with the verdict.
- A message is processed once: its identity (sender and MessageHeader id) is stored with the answer it got in
  the same transaction as the message, the answer and the deliveries; sent again, it gets that answer again.
  But for a `transient-error`, which asks the sender to send the message again later: that is processed anew.
- Nothing is answered `ok` before it is stored with one outbox delivery per receiver.
- The answer is a MedCom Acknowledgement (`hub.fhir.messaging`): `fatal-error` for a message that is invalid or
  cannot be routed (unknown receiver, an event the receiver does not take), `transient-error` when the
  receiver's route is closed for now or the hub cannot store it; it is validated like every outbound message,
  and its verdict stored with it.
- An acknowledgement is not acknowledged (MedCom's rule): a valid one is routed to its receiver like any
  message, and the sender is told so in an OperationOutcome.
- A receiver that reads OIOXML gets the message converted (`hub.flows.conversion`); what cannot be
  converted for it is a `fatal-error`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from hub.core.errors import HubError
from hub.core.outcome import Outcome, single
from hub.core.routing import Route, RoutingTable
from hub.delivery.http import message_delivery
from hub.fhir import io
from hub.fhir.edge import MessageEdge
from hub.fhir.encounter import encounter_event
from hub.fhir.messaging import (
    AckIssue,
    ErrorCodes,
    MessageInfo,
    ack_event,
    acknowledgement,
)
from hub.fhir.packages import PackageSet
from hub.fhir.validator import Validator
from hub.flows.conversion import ConversionFlow, Converted, NotConverted
from hub.store.encounters import event_row
from hub.store.inbox import Effect, Inbox
from hub.store.statements import ENCOUNTER_EVENTS

log = logging.getLogger("hub.messaging")

ACKNOWLEDGEMENT_EVENT = "acknowledgement-message"
MAX_ISSUES = 50  # a negative acknowledgement names at most this many findings (the stored verdict has all)


@dataclass
class Processed:
    """What the sender gets: an Acknowledgement (`ack`) or, for an acknowledgement it sent, an OperationOutcome
    (`outcome`) with the HTTP status; `duplicate` when the message had been received before."""

    status: int
    ack: dict[str, Any] | None = None
    outcome: Outcome | None = None
    duplicate: bool = False
    message_id: str | None = None


@dataclass
class _Verdict:
    code: str  # ok | transient-error | fatal-error
    issues: list[AckIssue] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)  # delivered as received
    converted: Converted = field(default_factory=Converted)  # what the receivers reading OIOXML get


@dataclass
class MessageFlow:
    """Process inbound MedCom FHIR messages. Thread-safe; one per process."""

    engine: Engine
    validator: Validator
    packages: PackageSet
    routes: RoutingTable
    conversions: ConversionFlow
    base_url: str = "http://localhost/fhir"  # where the acknowledgements' entries say they live
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    codes: ErrorCodes = field(default_factory=ErrorCodes.load)

    def __post_init__(self) -> None:
        self.inbox = Inbox(self.engine, self.now)
        self.edge = MessageEdge(self.validator)
        self.ack_event = ack_event(self.packages)

    # --- the edge ------------------------------------------------------------------------------------------

    def process(self, raw: bytes, content_type: str | None,
                operation: str = "POST /fhir/$process-message") -> Processed:
        message_id = str(uuid.uuid4())
        fields = {"id": message_id, "direction": "in", "channel": "fhir-messaging", "operation": operation,
                  "content_type": content_type, "raw": raw}
        try:
            info = self.edge.read(raw, content_type)
        except HubError as exc:
            self.inbox.store([self.inbox.row(fields, "unknown", exc.outcome.to_fhir(), "rejected", exc.status)])
            raise
        kind = io.format_of(raw)
        earlier = self._answer_to(info.key)
        if earlier is not None:
            self.inbox.store([self.inbox.row(fields, kind, None, "duplicate", earlier.status, info.key)])
            return earlier
        verdict_outcome = self.edge.check(info.bundle)
        if info.event_code == ACKNOWLEDGEMENT_EVENT:
            return self._acknowledgement_in(info, fields, kind, verdict_outcome)
        verdict = self._judge(info, verdict_outcome, message_id)
        ack = acknowledgement(info, verdict.code, verdict.issues[:MAX_ISSUES], self.codes, self.ack_event,
                              self.base_url, lambda: str(uuid.uuid4()), self.now())
        return self._commit(info, fields, kind, verdict_outcome, verdict, Processed(200, ack=ack))

    # --- judging -------------------------------------------------------------------------------------------

    def _judge(self, info: MessageInfo, outcome: Outcome, message_id: str) -> _Verdict:
        errors = [i for i in outcome.issues if i.severity in ("error", "fatal")]
        if errors:
            return _Verdict("fatal-error", [AckIssue(i.code, i.diagnostics or i.code, _reason(i.code, i.diagnostics),
                                                     i.expression) for i in errors])
        verdict = self._route(info)
        if verdict.code == "ok":
            self._convert(info, verdict, message_id)
        return verdict

    def _convert(self, info: MessageInfo, verdict: _Verdict, message_id: str) -> None:
        """The message converted for each receiver that reads OIOXML (`hub.flows.conversion`)."""
        for route in [r for r in verdict.routes if r.format == "oioxml"]:
            verdict.routes.remove(route)
            try:
                verdict.converted.add(self.conversions.from_fhir(info.bundle, info, route, message_id))
            except NotConverted as exc:
                verdict.issues.append(AckIssue(exc.issue_type, exc.text, exc.reason,
                                               "Bundle.entry[0].resource.destination"))
                verdict.code = "fatal-error"

    def _route(self, info: MessageInfo) -> _Verdict:
        """The route of every primary receiver, or why there is none."""
        verdict = _Verdict("ok")
        if not info.receivers:
            verdict.issues.append(AckIssue("required", "The message names no receiver", "receiver-missing",
                                           "Bundle.entry[0].resource.destination"))
        for party in info.receivers:
            where = "Bundle.entry[0].resource.destination"
            if not party.keys:
                verdict.issues.append(AckIssue("required", "The receiver has no SOR or GLN identifier",
                                               "receiver-missing", where))
                continue
            route = self.routes.find(party.keys)
            if route is None:
                verdict.issues.append(AckIssue("not-found", f"No route to the receiver {party.label}",
                                               "receiver-unknown", where))
            elif not route.takes(info.event_code):
                verdict.issues.append(AckIssue("not-supported", f"The receiver {route.name} does not take "
                                               f"{info.event_code} messages", "message-type-refused", where))
            elif not route.open:
                verdict.issues.append(AckIssue("transient", f"The receiver {route.name}'s mailbox is out of "
                                               "operation for now; send the message again later",
                                               "mailbox-closed", where))
            else:
                verdict.routes.append(route)
        if verdict.issues:
            transient = all(i.reason == "mailbox-closed" for i in verdict.issues)
            verdict.code = "transient-error" if transient else "fatal-error"
        return verdict

    def _acknowledgement_in(self, info: MessageInfo, fields: dict[str, Any], kind: str,
                            outcome: Outcome) -> Processed:
        """An acknowledgement from a receiver: routed on to its receiver when valid, never acknowledged."""
        verdict = self._judge(info, outcome, str(fields["id"]))
        response = info.response or {}
        answer = Outcome()
        if verdict.code == "ok":
            answer.add("information", "informational", f"Acknowledgement {info.header_id} ({response.get('code')}) "
                       f"of message {response.get('identifier')} accepted and routed; acknowledgements are not "
                       "acknowledged")
            status = 202
        else:
            for issue in verdict.issues:
                answer.error(issue.code, issue.text, issue.expression)
            status = 503 if verdict.code == "transient-error" else 422
        return self._commit(info, fields, kind, outcome, verdict, Processed(status, outcome=answer))

    # --- storing -------------------------------------------------------------------------------------------

    def _commit(self, info: MessageInfo, fields: dict[str, Any], kind: str, outcome: Outcome, verdict: _Verdict,
                processed: Processed) -> Processed:
        """The message, its answer (an Acknowledgement is stored as an outbound message), its identity, its
        deliveries and its canonical effect, in one transaction."""
        accepted = verdict.code == "ok"
        inbound = self.inbox.row(fields, kind, outcome.to_fhir(), "accepted" if accepted else "rejected",
                                 processed.status, info.key)
        rows = [inbound, *verdict.converted.rows] if accepted else [inbound]
        answer_id = None
        ack = processed.ack
        if ack is not None:
            ack_raw = json.dumps(ack, ensure_ascii=False).encode()
            ack_outcome = self.validator.validate(ack)
            if not ack_outcome.ok:  # the hub's own defect: the sender still gets its answer, the log says why
                log.error("acknowledgement %s does not validate: %s", ack["id"],
                          "; ".join(i.diagnostics or "" for i in ack_outcome.issues if i.severity == "error"))
            sent = {"direction": "out", "channel": "fhir-messaging", "content_type": "application/fhir+json",
                    "raw": ack_raw, "operation": f"acknowledgement {verdict.code}"}
            answer = self.inbox.row(sent, "fhir+json", ack_outcome.to_fhir(), "sent", 200, info.key)
            rows.append(answer)
            answer_id = answer["id"]
        processed.message_id = inbound["id"]
        content_type = fields["content_type"] or "application/fhir+json"
        deliveries = [*(message_delivery(route, inbound["id"], content_type, self.now()) for route in verdict.routes),
                      *verdict.converted.deliveries] if accepted else []
        # "send it again later": a transient error is not remembered, so the message is processed anew
        key = info.key if verdict.code != "transient-error" else None
        effects = [*self._effects(info, inbound["id"]), *verdict.converted.effects] if accepted else []
        try:
            if not self.inbox.commit(rows, key, answer_id, deliveries, effects):
                earlier = self._answer_to(info.key)  # the same message, received meanwhile on another connection
                assert earlier is not None
                self.inbox.store([self.inbox.row({**fields, "id": str(uuid.uuid4())}, kind, None, "duplicate",
                                                 earlier.status, info.key)])
                return earlier
        except OperationalError:
            log.exception("message %s could not be stored", info.header_id)
            return self._transient(info, "The hub cannot store the message now; send it again later")
        if accepted:
            self.conversions.after(verdict.converted)
        return processed

    def _effects(self, info: MessageInfo, message_id: str) -> list[Effect]:
        """The canonical effect of an accepted message, stored with it: a HospitalNotification's encounter
        event. (A CareCommunication's effect is its delivery.)"""
        event = encounter_event(info)
        if event is None:
            return []
        parties = (*info.sender.keys, *(key for receiver in info.receivers for key in receiver.keys))
        return [(ENCOUNTER_EVENTS.insert(), [event_row(event, message_id, self.now(), parties)])]

    def _transient(self, info: MessageInfo, text: str) -> Processed:
        if info.event_code == ACKNOWLEDGEMENT_EVENT:
            return Processed(503, outcome=single("transient", text))
        ack = acknowledgement(info, "transient-error", [AckIssue("transient", text)], self.codes, self.ack_event,
                              self.base_url, lambda: str(uuid.uuid4()), self.now())
        return Processed(200, ack=ack)

    def _answer_to(self, key: str) -> Processed | None:
        """The answer a message with this identity got when it was first received."""
        earlier = self.inbox.earlier(key)
        if earlier is None:
            return None
        if earlier.answer is None:  # an acknowledgement: it got an OperationOutcome, not a message
            note = single("informational", "This acknowledgement was received before; not processed again",
                          severity="information")
            return Processed(earlier.http_status or 200, outcome=note, duplicate=True, message_id=earlier.message_id)
        return Processed(200, ack=json.loads(earlier.answer), duplicate=True, message_id=earlier.message_id)


def _reason(code: str, diagnostics: str | None) -> str | None:
    """The hub's reason for a validation finding where it is more precise than its IssueType."""
    if code == "code-invalid" and (diagnostics or "").startswith("Unknown code"):
        return "code-unknown"
    return None
