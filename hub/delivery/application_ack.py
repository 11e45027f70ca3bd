"""Enhanced mode's application acknowledgements, sent to the system that sent the message: the outbox handler of
`hl7v2.application-ack` rows (`hub.flows.hl7v2`).

The ACK was stored with the message; it goes out over an MLLP connection the hub opens to the sender's address,
found by the sender's MSH-3^MSH-4 in `HUB_HL7V2_ACK_ADDRESSES` (`EPJ^OUH=host:port;…`). An ACK is not
acknowledged (HL7's rule, and the ACK asks for nothing in MSH-15/16), so it is delivered once it is written; a
sender with no address is a permanent failure (the row goes dead, visible, replayable once configured); a
connection that fails is retried by the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from hub.delivery.outbox import outbox_row
from hub.delivery.worker import PermanentFailure
from hub.hl7v2.mllp import MllpClient, frame
from hub.store.db import WriterLock
from hub.store.statements import MESSAGES

TOPIC = "hl7v2.application-ack"


def application_ack_row(message_id: str, sender: str, now: datetime) -> dict[str, Any]:
    """The outbox row that sends a stored application acknowledgement to its sender, in order per sender."""
    return outbox_row(TOPIC, f"hl7v2:{sender}", {"message_id": message_id, "sender": sender}, now)


@dataclass
class ApplicationAckDelivery:
    engine: Engine
    addresses: dict[str, tuple[str, int]]
    timeout: float = 10.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self._lock = WriterLock(self.engine)

    def __call__(self, payload: dict[str, Any]) -> None:
        address = self.addresses.get(str(payload["sender"]))
        if address is None:
            raise PermanentFailure(f"no address for the sender {payload['sender']} (HUB_HL7V2_ACK_ADDRESSES)")
        with self.engine.connect() as conn:
            raw = conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.id == payload["message_id"])).scalar_one()
        with MllpClient(*address, timeout=self.timeout) as client:
            client.write(frame(raw))
        with self._lock, self.engine.begin() as conn:
            conn.execute(MESSAGES.update().where(MESSAGES.c.id == payload["message_id"]).values(
                status="sent", operation=f"application ACK to {address[0]}:{address[1]}"))


