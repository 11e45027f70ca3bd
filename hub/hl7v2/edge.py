"""The HL7 v2 channel's edge step: `read` splits a message as real senders write it, `check` says whether the hub
takes it at all (its control id, version, processing id, type and trigger), as the `Finding` an `AR` names.

The HL7 v2 flow (`hub.flows.hl7v2`) calls them and keeps the bytes whatever they say. The strict check of a
message's structure for its version (hl7apy, `hub.hl7v2.structure`) is `hub validate`'s, not the listener's: it
costs far more than a message's whole budget at the rates the listener takes.
"""

from __future__ import annotations

from hub.hl7v2 import adt, siu
from hub.hl7v2.ack import Finding
from hub.hl7v2.message import Hl7Message, read

MEDIA_TYPE = "application/hl7-v2"
VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2")
PROCESSING_IDS = ("P", "T", "D")
TRIGGERS = {"ADT": adt.TRIGGERS, "SIU": siu.TRIGGERS}

__all__ = ["MEDIA_TYPE", "check", "read"]


def check(message: Hl7Message) -> Finding | None:
    """Why the hub does not take the message (HL7 table 0357's code, at its MSH field), or None."""
    if not message.control_id:
        return Finding("101", "MSH-10 (message control id) is empty", "MSH", 1, 10)
    if message.version not in VERSIONS:
        return Finding("203", f"Version {message.version or '(none)'} is not taken; the hub takes "
                              f"{', '.join(VERSIONS)}", "MSH", 1, 12)
    if message.get("MSH.11.1")[:1] not in PROCESSING_IDS:
        return Finding("202", f"Processing id {message.get('MSH.11') or '(none)'} is not P, T or D", "MSH", 1, 11)
    triggers = TRIGGERS.get(message.message_type)
    if triggers is None:
        return Finding("200", f"Message type {message.message_type or '(none)'} is not taken; the hub takes "
                              f"{', '.join(TRIGGERS)}", "MSH", 1, 9)
    if message.trigger not in triggers:
        return Finding("201", f"{message.message_type}^{message.trigger} is not taken; the hub takes "
                              f"{', '.join(triggers)}", "MSH", 1, 9)
    return None
