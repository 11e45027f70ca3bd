"""The FHIR channels' edge step, one class per channel: `read` parses the bytes, `check` validates what was read.

The flows call them (`hub.flows.appointment`, `hub.flows.message`) and keep the bytes and the verdict whatever
they say; both are pure, built once, and thread-safe.
"""

from __future__ import annotations

from typing import Any

from hub.core.errors import InvalidInput
from hub.core.outcome import Outcome, single
from hub.fhir import io
from hub.fhir.messaging import MessageInfo, NotAMessage, read_message
from hub.fhir.structure import StructureValidator
from hub.fhir.validator import Validator
from hub.fhir.videoappointment import VideoAppointmentRules


class AppointmentEdge:
    """The edge step of a video appointment sent to the hub: parse the bytes, then check them. Structure first
    (400 when broken), then FUT's profile and the hub's business rules (422 when broken); the warnings stay in
    the verdict, which is stored with the message. Pure: the flow (`hub.flows.appointment`) calls it and keeps
    the bytes whatever it says."""

    def __init__(self, structure: StructureValidator, rules: VideoAppointmentRules) -> None:
        self.structure = structure
        self.rules = rules
        self.reader = rules.validator.reader  # the validator's own: XML is read one way

    def read(self, body: bytes, content_type: str | None) -> dict[str, Any]:
        return io.parse(body, content_type, self.reader)

    def check(self, appt: dict[str, Any]) -> Outcome:
        """The verdict, raised when it refuses: 400 for structure, 422 for the profile and the rules."""
        outcome, structure_ok = self.verdict(appt)
        if not outcome.ok:
            raise InvalidInput(outcome, status=422 if structure_ok else 400)
        return outcome

    def verdict(self, appt: dict[str, Any]) -> tuple[Outcome, bool]:
        """What booking would say of the Appointment (and whether its structure holds), without refusing:
        `$validate` answers with it, so validating and booking never disagree."""
        structure = self.structure.check(appt, "Appointment")
        if not structure.ok:
            return structure, False
        return self.rules.check(appt, structure), True


class MessageEdge:
    """The edge step of a MedCom FHIR message (`$process-message`, and what a VANS envelope carries): a Bundle
    whose first entry is a MessageHeader (400 when it is not), then validated against the profiles its
    MessageHeader and entries claim. The flow reads first and validates after its duplicate check: a message
    received again is answered without being validated again."""

    def __init__(self, validator: Validator) -> None:
        self.validator = validator

    def read(self, raw: bytes, content_type: str | None) -> MessageInfo:
        try:
            return read_message(self.validator.parse(raw, content_type))
        except NotAMessage as exc:
            raise InvalidInput(single("invalid", str(exc))) from None

    def check(self, bundle: dict[str, Any]) -> Outcome:
        return self.validator.validate(bundle)


