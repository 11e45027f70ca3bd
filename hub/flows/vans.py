"""MedCom FHIR messages in VANS envelopes (`hub.medcom.vans`): received, unwrapped and answered in VANS terms
(the envelope's edge step is `hub.medcom.vans.unwrap`, then the message's own); the delivery to a receiver whose
route says `"envelope": "vans"` wraps it again (`hub.delivery.http.VansWrapper`).

In: the envelope's raw bytes are kept (channel `vans`), its FHIR message goes through the message flow as if
posted to `$process-message`, and the answer goes back from the envelope's receiver to its sender:
- the message's Acknowledgement, wrapped in a VANSEnvelope of its own (Name `MCM:FCTL#<code>`), as MedCom's
  reliable messaging has it;
- for an acknowledgement (which is not acknowledged): the VANS receipt "Modtaget korrekt", or, when it cannot
  be routed, a negative one saying why;
- "Ukendt type" when the Data is not a MedCom message the hub can identify, "Ukendt modtager" when the
  envelope's receiver is no one the hub routes to;
- an envelope that cannot be read at all: 400 with an OperationOutcome naming the element that is wrong.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.core.errors import HubError
from hub.core.routing import RoutingTable
from hub.flows.message import MessageFlow, Processed
from hub.medcom.vans import (
    FHIR_JSON,
    UNKNOWN_TYPE,
    InvalidEnvelope,
    StatisticalCodes,
    VansEnvelope,
    VansReceipt,
    document_name,
    received_correctly,
    unknown_receiver,
    unknown_type,
    unwrap,
    wrap,
    write_receipt,
)


@dataclass(frozen=True)
class VansAnswer:
    status: int
    body: bytes  # a VANSEnvelope: the Acknowledgement wrapped, or a VANS receipt
    duplicate: bool = False


@dataclass
class VansFlow:
    messages: MessageFlow
    codes: StatisticalCodes
    routes: RoutingTable
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def receive(self, raw: bytes, content_type: str | None) -> VansAnswer:
        inbox = self.messages.inbox
        fields = {"direction": "in", "channel": "vans", "operation": "POST /medcom/vans",
                  "content_type": content_type, "raw": raw}
        try:
            envelope = unwrap(raw, self.codes)
        except InvalidEnvelope as exc:
            inbox.store([inbox.row(fields, "vans", exc.outcome.to_fhir(), "rejected", 400)])
            raise
        if envelope.receiver.kind != "EAN" or self.routes.organisation((f"gln:{envelope.receiver.id}",)) is None:
            return self._receipt(fields, unknown_receiver(envelope, str(uuid.uuid4()), self.now()), 200)
        inbox.store([inbox.row(fields, "vans", None, "received", None)])
        try:
            processed = self.messages.process(envelope.data, envelope.mime_type, "POST /medcom/vans")
        except HubError:  # the Data is no MedCom message: the message flow has kept it with its verdict
            return self._receipt(None, unknown_type(envelope, str(uuid.uuid4()), self.now()), 200)
        return self._answer(envelope, processed)

    def _answer(self, envelope: VansEnvelope, processed: Processed) -> VansAnswer:
        if processed.ack is not None:
            ack = processed.ack
            body = json.dumps(ack, ensure_ascii=False).encode()
            wrapped = wrap(VansEnvelope(envelope.receiver, envelope.sender, str(uuid.uuid4()), str(ack["id"]),
                                        self.now(), document_name(ack, self.codes), FHIR_JSON, body,
                                        version=None), self.codes)
            return VansAnswer(200, wrapped, processed.duplicate)
        if processed.status < 300:
            return VansAnswer(200, write_receipt(received_correctly(envelope, str(uuid.uuid4()), self.now())),
                              processed.duplicate)
        # an acknowledgement the hub cannot route: the receiving side refuses it, saying why
        why = "; ".join(i.diagnostics or i.code for i in (processed.outcome.issues if processed.outcome else []))
        refused = VansReceipt("NegativeMessage", envelope, str(uuid.uuid4()), self.now(), why[:512] or UNKNOWN_TYPE)
        return VansAnswer(200, write_receipt(refused))

    def _receipt(self, fields: dict[str, Any] | None, receipt: VansReceipt, status: int) -> VansAnswer:
        if fields is not None:
            inbox = self.messages.inbox
            inbox.store([inbox.row(fields, "vans", None, "rejected", status)])
        return VansAnswer(status, write_receipt(receipt))
