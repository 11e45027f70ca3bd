"""`GET /fhir/Appointment/{id}/$booking-confirmation?sender=GLN&receiver=GLN`: the MedCom booking confirmation
(XDIS13, ISO-8859-1) of a booked video meeting, for a receiver that reads OIOXML (`hub.medcom.booking_confirmation`).
Both parties are looked up by GLN in the routing table (the hub's directory); 422 when the meeting cannot be
written as an XDIS13 (its patient has no CPR number), 404 for an unknown appointment or party.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from hub.api.deps import services
from hub.core.errors import InvalidInput, NotFound
from hub.core.outcome import single
from hub.medcom.booking_confirmation import NotABooking, Party, confirmation_of
from hub.wiring import Services

router = APIRouter(prefix="/fhir/Appointment", tags=["Appointment"])


@router.get("/{appointment_id}/$booking-confirmation", summary="The XDIS13 booking confirmation of a meeting")
async def booking_confirmation(appointment_id: str, request: Request,
                               sender: str = Query(description="The sender's GLN"),
                               receiver: str = Query(description="The receiver's GLN"),
                               svc: Services = Depends(services)) -> Response:
    row = await run_in_threadpool(svc.flow.get, appointment_id, request.state.principal.organisation)
    room = await run_in_threadpool(svc.flow.room, appointment_id)
    parties = []
    for gln in (sender, receiver):
        found = svc.messages.routes.organisation((f"gln:{gln}",))
        if found is None:
            raise NotFound(f"The organisation with GLN {gln}")
        parties.append(Party(gln, found.name, found.sor))
    try:
        body = confirmation_of(row.resource, row.patient_identifier, row.start,
                               room.short_link or room.meeting_url if room else None, parties[0], parties[1],
                               datetime.now(UTC))
    except NotABooking as exc:
        raise InvalidInput(single("not-supported", str(exc)), status=422) from None
    return Response(body, media_type="application/xml; charset=ISO-8859-1")
