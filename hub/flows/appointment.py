"""FHIR REST appointments: what an EOJ sends to `/fhir/Appointment`, taken from its bytes to a booking.

The channel's edge step is the FHIR adapter's (`hub.fhir.edge.AppointmentEdge`: parse, then
structure, FUT's profile and the hub's rules); this flow calls it, keeps every refused message with its verdict,
and hands what passes to the booking flow as a canonical meeting request, which stores the message in the same
transaction as its effect. The router only reads the body and writes the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jsonpatch
import orjson

from hub.core.errors import HubError, InvalidInput
from hub.core.model import BookingResult
from hub.core.outcome import Outcome, single
from hub.fhir import appointment as fa
from hub.fhir import io
from hub.fhir.edge import AppointmentEdge
from hub.flows.booking import BookingFlow, Inbound, Render

CHANNEL = "fhir-rest"
FORMATS = {"json": "fhir+json", "xml": "fhir+xml"}


def _renderer(appt: dict[str, Any]) -> Render:
    """How the booking flow turns a booking into the Appointment it stores and answers with."""
    return partial(fa.render, appt)


@dataclass
class AppointmentFlow:
    bookings: BookingFlow
    edge: AppointmentEdge

    def refused(self, operation: str, content_type: str | None, raw: bytes, outcome: Outcome, status: int,
                fmt: str = "unknown") -> None:
        """Keep a message refused before it was read (too large, a JSON Patch that does not apply)."""
        self.bookings.record_message(direction="in", channel=CHANNEL, format=fmt, operation=operation,
                                     content_type=content_type, raw=raw, verdict=outcome.to_fhir(),
                                     status="rejected", http_status=status)

    def create(self, body: bytes, content_type: str | None, operation: str,
               if_none_exist: str | None = None, owner: str | None = None) -> BookingResult:
        """Book: a new room, or the first answer again for the same source identifier (or `If-None-Exist`).
        `owner`: the booking organisation; the same identifier from another organisation is another booking."""
        appt, inbound = self._accept(body, content_type, operation)
        req = fa.to_meeting_request(appt, scoped(fa.source_key(appt, if_none_exist), owner))
        return self.bookings.book(req, _renderer(appt), inbound, fa.patient_search_keys(req), owner)

    def update(self, appointment_id: str, body: bytes, content_type: str | None, operation: str,
               if_match: str | None = None, viewer: str | None = None) -> BookingResult:
        """Move, change or cancel (`PUT`); `viewer`: the organisation asking, which must own it."""
        appt, inbound = self._accept(body, content_type, operation)
        return self._update(appointment_id, appt, inbound, if_match, viewer)

    def patch(self, appointment_id: str, body: bytes, content_type: str | None, operation: str,
              if_match: str | None = None, viewer: str | None = None) -> BookingResult:
        """A JSON Patch (RFC 6902) on the stored Appointment, then checked and applied as `PUT` is."""
        row = self.bookings.get(appointment_id, viewer)
        try:
            patched = jsonpatch.apply_patch(row.resource, orjson.loads(body))
        except (orjson.JSONDecodeError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException,
                TypeError) as exc:
            outcome = single("invalid", f"The JSON Patch cannot be applied: {exc}")
            self.refused(operation, (content_type or "").split(";")[0].strip(), body, outcome, 400, "json-patch")
            raise InvalidInput(outcome) from None
        appt, inbound = self._accept(body, content_type, operation, parsed=patched)
        return self._update(appointment_id, appt, inbound, if_match, viewer)

    def _accept(self, body: bytes, content_type: str | None, operation: str,
                parsed: dict[str, Any] | None = None) -> tuple[dict[str, Any], Inbound]:
        """The edge step. A refused message is stored here; an accepted one goes on with its columns, stored by
        the booking flow in the transaction of its effect."""
        kind = io.media_kind(content_type) or ("xml" if body.lstrip()[:1] == b"<" else "json")
        fields: Inbound = {"direction": "in", "channel": CHANNEL, "format": FORMATS.get(kind, "unknown"),
                           "operation": operation, "content_type": content_type, "raw": body}
        try:
            appt = parsed if parsed is not None else self.edge.read(body, content_type)
            outcome = self.edge.check(appt)
        except HubError as exc:
            self.bookings.record_message(**fields, verdict=exc.outcome.to_fhir(), status="rejected",
                                         http_status=exc.status)
            raise
        return appt, {**fields, "verdict": outcome.to_fhir(), "status": "accepted"}

    def _update(self, appointment_id: str, appt: dict[str, Any], inbound: Inbound,
                if_match: str | None, viewer: str | None = None) -> BookingResult:
        try:
            if appt.get("id") not in (None, appointment_id):
                raise InvalidInput(single("invalid", f"The body's id '{appt.get('id')}' is not {appointment_id}",
                                          "id"))
            row = self.bookings.get(appointment_id, viewer)
            if if_match and if_match.strip() not in (f'W/"{row.version}"', f'"{row.version}"'):
                raise HubError(single("conflict", f"Version {row.version} is current, not {if_match}"), status=412)
        except HubError as exc:
            self.bookings.record_message(**{**inbound, "verdict": exc.outcome.to_fhir(), "status": "rejected",
                                            "http_status": exc.status})
            raise
        req = fa.to_meeting_request(appt, row.source_key)
        return self.bookings.update(appointment_id, req, _renderer(appt), inbound, fa.patient_search_keys(req))


def scoped(source_key: str, owner: str | None) -> str:
    """A source key as one organisation's: the same identifier sent by two organisations is two bookings, and
    neither is answered with the other's."""
    return f"{owner} {source_key}" if owner else source_key
