"""Telling an HL7 v2 scheduling system about the hub's video meetings: the outbox handler of `meeting.booked`,
`meeting.updated` and `meeting.cancelled` that sends each as an SIU (`hub.hl7v2.siu_out`) over MLLP.

- **What is not sent.** An appointment booked from an HL7 v2 SIU (source key `hl7v2:…`) is not echoed back to
  the HL7 v2 side: the handler returns, and the outbox counts the row delivered.
- **Which outbox row.** The worker hands a handler only the payload, which names neither topic nor row; the
  handler finds its row as the oldest undelivered `meeting.*` row of the appointment (the rows of one
  appointment are delivered in order) with that payload.
- **Control id (MSH-10).** Derived from the appointment and the outbox row's id, so every attempt at one row
  carries the same MSH-10 and a receiver that got the message but whose ACK was lost recognises the resend as a
  duplicate, while two rows with the same content (moved away and back) stay two messages. A replayed dead row
  keeps its control id too; MSH-7 is the time of each attempt.
- **S13 or S14.** `previous` for `meeting.updated` is the time in the last SIU this receiver accepted for the
  appointment (the hub's own record of what it sent); see `siu_out.trigger_event`.
- **Validated before sending.** The SIU must pass hl7apy's strict check for its version; one that does not is
  not sent: it is stored with its verdict and the row is dead (`PermanentFailure`).
- **The answer.** An ACK whose MSA-2 is the SIU's MSH-10: `AA`/`CA` is a delivery; `AE`/`AR`/`CE`/`CR` a
  `PermanentFailure` carrying the ERR text (the receiver refuses the content: sending it again will not help).
  No connection, a timeout, a closed connection, an answer that is not an ACK or acknowledges another message
  raise `DeliveryFailed`, and the outbox tries again with backoff.
- **Records.** Every attempt is an outbound message row (channel `hl7v2`, operation `MLLP host:port`, the SIU,
  `sent` when accepted, else `failed`), and every answer an inbound one, both keyed by the control id and
  linked to the appointment. Logs and errors name the appointment, never the patient (CPR numbers masked).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from hub.core.cpr import mask_text
from hub.delivery.worker import Handler, PermanentFailure
from hub.hl7v2 import siu_out
from hub.hl7v2.edge import MEDIA_TYPE
from hub.hl7v2.message import Hl7Message, NotHl7, read
from hub.hl7v2.mllp import MllpError, send
from hub.hl7v2.structure import structure_findings
from hub.store.db import WriterLock
from hub.store.statements import APPOINTMENTS, INSERT_MESSAGE, MESSAGES, OUTBOX

log = logging.getLogger("hub.delivery.mllp")

SKIPPED_PREFIX = "hl7v2:"  # source keys of appointments booked by an HL7 v2 SIU
ACCEPTED = ("AA", "CA")
REFUSED = ("AE", "AR", "CE", "CR")
# Namespace of the control ids (uuid5): stable across restarts and hub instances.
CONTROL_NAMESPACE = uuid.UUID("0d6c2b8e-4f55-4d7e-9a0e-3b1f6f2a9c41")


class DeliveryFailed(Exception):
    """The receiver could not be reached, or did not answer with an ACK of this message: try again later."""


def control_id(appointment_id: str, outbox_id: int) -> str:
    """MSH-10 of every attempt at one outbox row: 20 characters (MSH-10's length), the same on each retry."""
    return uuid.uuid5(CONTROL_NAMESPACE, f"{appointment_id}#{outbox_id}").hex[:20].upper()


@dataclass
class MllpDelivery:
    engine: Engine
    host: str
    port: int
    sending: tuple[str, str]  # MSH-3, MSH-4: the hub as application and facility
    receiving: tuple[str, str]  # MSH-5, MSH-6
    timeout: float = 10.0  # connecting, and each read and write
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    version: str = "2.5.1"
    processing_id: str = "P"
    statuses: Path = siu_out.STATUS_MAP

    def __post_init__(self) -> None:
        if self.version not in siu_out.VERSIONS:
            raise ValueError(f"the hub writes SIU in HL7 v2 {', '.join(siu_out.VERSIONS)}, not {self.version}")
        self._lock = WriterLock(self.engine)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def operation(self) -> str:
        return f"MLLP {self.target}"

    def handlers(self) -> dict[str, Handler]:
        """The outbox handlers: this delivery for each meeting topic."""
        return dict.fromkeys(siu_out.TOPICS, self)

    def __call__(self, payload: dict[str, Any]) -> None:
        appointment_id = str(payload["appointment"])
        with self.engine.connect() as conn:
            appointment = conn.execute(select(APPOINTMENTS.c.source_key, APPOINTMENTS.c.resource)
                                       .where(APPOINTMENTS.c.id == appointment_id)).first()
        if appointment is None:
            raise PermanentFailure(f"no appointment {appointment_id} to send as SIU")
        if appointment.source_key.startswith(SKIPPED_PREFIX):
            log.debug("appointment %s came from HL7 v2: not sent back", appointment_id)
            return
        outbox_id, topic = self._outbox_row(appointment_id, payload)
        control = control_id(appointment_id, outbox_id)
        previous = self._accepted_times(appointment_id) if topic == siu_out.UPDATED else None
        raw = siu_out.siu_message(topic, appointment.resource, payload, previous, control_id=control,
                                  now=self.now(), sending=self.sending, receiving=self.receiving,
                                  version=self.version, processing_id=self.processing_id, statuses=self.statuses)
        trigger = read(raw).trigger
        self._check(raw, appointment_id, control)
        try:
            answer = send(self.host, self.port, raw, self.timeout)
        except (OSError, MllpError) as exc:  # refused, timed out, closed before the answer
            self._record(appointment_id, control, raw, "failed")
            raise DeliveryFailed(f"SIU^{trigger} to {self.target}: {type(exc).__name__}: {exc}") from exc
        code, text = self._judge(answer, control)
        self._record(appointment_id, control, raw, "sent" if code in ACCEPTED else "failed", answer)
        log.info("SIU^%s for appointment %s to %s: %s", trigger, appointment_id, self.target, code or "no ACK")
        if code in ACCEPTED:
            return
        if code in REFUSED:
            raise PermanentFailure(mask_text(f"{self.target} answered SIU^{trigger} with {code}: {text}"))
        raise DeliveryFailed(mask_text(f"{self.target} answered SIU^{trigger} with {text}"))

    # --- steps ---------------------------------------------------------------------------------------------

    def _outbox_row(self, appointment_id: str, payload: dict[str, Any]) -> tuple[int, str]:
        """(id, topic) of the outbox row this payload is being delivered for."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(OUTBOX.c.id, OUTBOX.c.topic, OUTBOX.c.payload)
                                .where(OUTBOX.c.ordering_key == appointment_id,
                                       OUTBOX.c.status.in_(("pending", "sending")),
                                       OUTBOX.c.topic.in_(siu_out.TOPICS))
                                .order_by(OUTBOX.c.id)).all()
        for row in rows:
            if row.payload == payload:
                return int(row.id), str(row.topic)
        raise LookupError(f"no undelivered meeting outbox row for appointment {appointment_id} with this payload")

    def _accepted_times(self, appointment_id: str) -> tuple[datetime, datetime] | None:
        """Start and end in the last SIU this receiver accepted for the appointment, if any."""
        with self.engine.connect() as conn:
            raw = conn.execute(select(MESSAGES.c.raw).where(
                MESSAGES.c.appointment_id == appointment_id, MESSAGES.c.channel == "hl7v2",
                MESSAGES.c.direction == "out", MESSAGES.c.status == "sent", MESSAGES.c.operation == self.operation)
                .order_by(MESSAGES.c.received_at.desc()).limit(1)).scalar()
        if raw is None:
            return None
        sent = read(raw)
        start, end = _dtm(sent.get("SCH.11.4")), _dtm(sent.get("SCH.11.5"))
        return (start, end) if start is not None and end is not None else None

    def _check(self, raw: bytes, appointment_id: str, control: str) -> None:
        """hl7apy's strict verdict; a message that fails it is kept with the verdict and never sent."""
        findings = structure_findings(read(raw))
        if not findings:
            return
        verdict = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "structure", "diagnostics": f"{f.code}: {f.text}",
             **({"expression": [f"{f.segment}-{f.field}" if f.field else f.segment]} if f.segment else {})}
            for f in findings]}
        self._record(appointment_id, control, raw, "failed", verdict=verdict)
        raise PermanentFailure(mask_text(f"the SIU for appointment {appointment_id} fails HL7 v2 validation, "
                                         f"not sent: {findings[0].text}"))

    def _judge(self, answer: bytes, control: str) -> tuple[str, str]:
        """(MSA-1, the receiver's words) of an ACK of this message; ('', why) for anything else."""
        try:
            ack = read(answer)
        except NotHl7 as exc:
            return "", f"an answer that is not HL7 v2 ({exc.text})"
        if ack.message_type != "ACK" or not ack.segments("MSA"):
            return "", f"a {ack.message_type or 'message'} without MSA, not an ACK"
        if ack.get("MSA.2") != control:
            return "", f"an ACK of {ack.get('MSA.2') or 'no message'}, not of {control}"
        code = ack.get("MSA.1")
        if code not in ACCEPTED + REFUSED:
            return "", f"an ACK with the unknown MSA-1 {code!r}"
        return code, _error_text(ack)

    def _record(self, appointment_id: str, control: str, raw: bytes, status: str, answer: bytes | None = None,
                verdict: dict[str, Any] | None = None) -> None:
        common = {"received_at": self.now(), "channel": "hl7v2", "format": "hl7v2", "content_type": MEDIA_TYPE,
                  "http_status": None, "appointment_id": appointment_id, "idempotency_key": control}
        rows = [{**common, "id": str(uuid.uuid4()), "direction": "out", "operation": self.operation, "raw": raw,
                 "verdict": verdict, "status": status}]
        if answer is not None:
            rows.append({**common, "id": str(uuid.uuid4()), "direction": "in", "raw": answer, "verdict": None,
                         "operation": f"ACK from {self.operation}", "status": "received"})
        with self._lock, self.engine.begin() as conn:
            conn.execute(INSERT_MESSAGE, rows)


def _error_text(ack: Hl7Message) -> str:
    """What the receiver says is wrong: each ERR's user message (ERR-8) or its code's text (ERR-3.2; before
    v2.5 ERR-1.4.2), else MSA-3."""
    texts: list[str] = []
    for n in range(1, len(ack.segments("ERR")) + 1):
        text = next((found for path in ("ERR.8", "ERR.3.2", "ERR.1.4.2") if (found := ack.get(path, n))), "")
        if text:
            texts.append(text)
    return "; ".join(texts) or ack.get("MSA.3") or "no reason given"



def _dtm(value: str) -> datetime | None:
    """A DTM as the hub writes it (to the second, with its offset)."""
    try:
        return datetime.strptime(value.split("&")[0][:19], "%Y%m%d%H%M%S%z")
    except ValueError:
        return None
