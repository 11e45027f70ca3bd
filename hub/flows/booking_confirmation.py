"""Booking confirmations (XDIS13) for video consultations, booked through the booking flow.

A confirmation the letter flow has accepted is read (`hub.medcom.booking_confirmation`); when the policy says it
is a video consultation, its meeting is booked in VDX exactly as a FHIR Appointment is (`hub.flows.booking`:
one room per booking, kept before anyone is answered), the letter stored with the booking. A corrected letter
(`rettetbrev`) moves the meeting its first letter booked; the same letter again finds the booking it made. A
confirmation that cannot be a meeting (no time, no patient) is refused; one that cannot be booked now (VDX
unavailable) is refused with a text asking to send it again, and is processed anew when it comes again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from lxml import etree

from hub.core.errors import HubError
from hub.fhir import appointment as fa
from hub.flows.booking import BookingFlow
from hub.medcom.booking_confirmation import (
    KEY_PREFIX,
    NotABooking,
    Xdis13Policy,
    is_video,
    read_confirmation,
    to_meeting_request,
)
from hub.medcom.envelope import Letter
from hub.medcom.receipts import Refusal


@dataclass(frozen=True)
class Booked:
    """What booking a confirmation came to: nothing to say (booked, or not a video consultation), or why not."""

    refusal: Refusal | None = None
    transient: bool = False  # try again later: the envelope is not remembered as received
    appointment_id: str | None = None


@dataclass
class BookingConfirmationFlow:
    flow: BookingFlow
    policy: Xdis13Policy

    def book(self, letter: Letter) -> Booked:
        confirmation = read_confirmation(letter)
        if not is_video(confirmation, self.policy):
            return Booked()
        try:
            request = to_meeting_request(confirmation, self.policy)
        except NotABooking as exc:
            return Booked(Refusal("ikke_specificeret", str(exc)))
        render = partial(fa.render, fa.core_appointment(request, f"urn:hub:{KEY_PREFIX}"), profile=None)
        inbound = {"direction": "in", "channel": "oioxml", "format": "oioxml", "operation": "XDIS13 booking",
                   "content_type": "application/xml", "raw": etree.tostring(letter.element), "verdict": None,
                   "status": "accepted"}
        patient = (None, request.patient.identifier.key if request.patient and request.patient.identifier else None)
        try:
            earlier = self.flow.booked_by(request.source_key) if confirmation.status == "rettetbrev" else None
            result = (self.flow.update(earlier, request, render, inbound, patient) if earlier is not None
                      else self.flow.book(request, render, inbound, patient))
        except HubError as exc:
            why = "; ".join(i.diagnostics or i.code for i in exc.outcome.issues)
            return Booked(Refusal("ikke_specificeret", f"The video room cannot be booked now ({why}); send the "
                                                       "letter again later"), transient=exc.status >= 500)
        return Booked(appointment_id=result.appointment_id)
