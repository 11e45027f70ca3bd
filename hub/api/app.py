"""The FastAPI application: wiring of settings, store, standards, VDX client and routers.

Every error leaves as a FHIR OperationOutcome with a 4xx (or 502/503 when a service the hub depends on is
down); an unexpected exception is logged and answered with an OperationOutcome too, never a bare 500 page.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.api import balance
from hub.api.balance import ConnectionBalancer
from hub.api.deps import Services, outcome_response
from hub.api.routers import (
    appointment,
    booking_confirmation,
    encounter,
    messaging,
    metadata,
    oioxml,
    validate,
    vans,
)
from hub.convert.service import Converter, danish_display
from hub.core import standards
from hub.core.booking import BookingFlow
from hub.core.config import Settings
from hub.core.confirmation_flow import ConfirmationBookings
from hub.core.conversion_flow import Conversions
from hub.core.cpr import CPR_SYSTEM
from hub.core.errors import HubError
from hub.core.hl7_flow import APPLICATION_ACK_TOPIC
from hub.core.housekeeping import Housekeeping
from hub.core.letter_flow import LetterFlow
from hub.core.message_flow import MessageFlow
from hub.core.outbox import Handler, OutboxWorker
from hub.core.outcome import single
from hub.core.routing import DELIVER_TOPIC, RoutingTable
from hub.core.sdi_flow import IndexFollower
from hub.core.vans_flow import VansFlow, VansWrapper
from hub.fhir.delivery import HttpDelivery
from hub.fhir.messaging import ErrorCodes, ack_event
from hub.fhir.packages import PackageSet
from hub.fhir.structure import StructureValidator
from hub.fhir.validator import Validator
from hub.fhir.videoappointment import VideoAppointmentRules
from hub.hl7v2.application_ack import ApplicationAckDelivery, addresses
from hub.hl7v2.delivery import MllpDelivery
from hub.medcom.booking_confirmation import Xdis13Policy
from hub.medcom.schemas import OioxmlSchemas
from hub.medcom.vans import StatisticalCodes
from hub.store.commit import Committer, GroupCommit
from hub.store.db import WriterLock, make_engine, migrate, session_factory
from hub.store.writer import WriterClient
from hub.video.client import VdxClient

log = logging.getLogger("hub.api")


# An Appointment that goes through the paths a video appointment takes (types, profile, slices, bindings,
# invariants), so that start-up compiles them, not the first request. Its codes need not be valid.
_WARM_UP: dict[str, Any] = {
    "resourceType": "Appointment", "status": "booked", "start": "2030-01-01T10:00:00Z",
    "end": "2030-01-01T10:30:00Z", "description": "warm-up",
    "contained": [{"resourceType": "Patient", "id": "p", "identifier": [{"system": CPR_SYSTEM, "value": "x"}]}],
    "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0", "period": {"start": "2030-01-01"}}],
    "extension": [{"url": "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-responsible",
                   "valueReference": {"reference": "CareTeam/1"}}],
    "appointmentType": {"coding": [{"system": "urn:x", "code": "x"}]},
    "serviceType": [{"coding": [{"system": "urn:x", "code": "x"}]}],
    "reasonCode": [{"coding": [{"system": "urn:x", "code": "x"}]}],
    "participant": [{"actor": {"reference": "#p"}, "status": "accepted"},
                    {"actor": {"reference": "CareTeam/1"}, "status": "accepted",
                     "type": [{"coding": [{"system": "urn:x", "code": "x"}]}]}]}


def booking_flow(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> BookingFlow:
    """The booking flow on the configured VDX (HUB_VDX_URL), committing through the store writer process when
    `hub serve` gave one."""
    vdx = VdxClient(settings.vdx_url or "", timeout=settings.vdx_timeout_seconds, retries=settings.vdx_retries,
                    token_url=settings.vdx_token_url, client_id=settings.vdx_client_id,
                    client_secret=settings.vdx_client_secret, organizer_email=settings.vdx_organizer_email)
    committer: Committer | None = None
    if settings.store_writer and settings.store_writer_key:
        committer = WriterClient(settings.store_writer, bytes.fromhex(settings.store_writer_key),
                                 GroupCommit(engine, WriterLock(engine)))
    followers = (IndexFollower(),) if settings.sdi_enabled else ()
    return BookingFlow(sessions, vdx, committer=committer, followers=followers)


def build_services(settings: Settings) -> Services:
    """Everything the hub needs, built once: database (migrated), packages, rules, VDX client, flow."""
    if not settings.vdx_url:
        raise RuntimeError("HUB_VDX_URL is not set: `hub serve` starts the built-in VDX service and sets it")
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    sessions = session_factory(engine)
    packages = PackageSet(standards.package_dirs(settings.standards_store))
    flow = booking_flow(settings, engine, sessions)
    structure = StructureValidator(packages)
    validator = Validator(packages, structure)
    rules = VideoAppointmentRules(packages, validator)
    rules.check(_WARM_UP, structure.check(_WARM_UP))  # compile what a booking uses now, not in the first request
    routes = RoutingTable.load(settings.routes)
    fhir_base = f"{(settings.public_base_url or 'http://localhost').rstrip('/')}/fhir"
    schemas = OioxmlSchemas(settings.standards_store)
    conversions = Conversions(engine, lambda: Converter(schemas.root, routes.organisation, danish_display(packages),
                                                        fhir_base),
                              validator, schemas, routes, ErrorCodes.load(), ack_event(packages), fhir_base)
    messages = MessageFlow(engine, validator, packages, routes, conversions, base_url=fhir_base)
    policy = Xdis13Policy(re.compile(settings.xdis13_video_pattern), timedelta(minutes=settings.xdis13_minutes))
    letters = LetterFlow(engine, schemas, routes, conversions, ConfirmationBookings(flow, policy))
    vans = VansFlow(messages, StatisticalCodes.from_packages(packages), routes)
    return Services(settings, sessions, packages, structure, rules, flow, validator, messages, letters, vans)


def hl7v2_handlers(settings: Settings, engine: Engine) -> dict[str, Handler]:
    """The HL7 v2 deliveries the configuration asks for: enhanced mode's application acknowledgements to their
    senders; meetings booked through FHIR as SIU to the configured receiver."""
    handlers: dict[str, Handler] = {}
    if settings.hl7v2_ack_addresses:
        handlers[APPLICATION_ACK_TOPIC] = ApplicationAckDelivery(engine, addresses(settings.hl7v2_ack_addresses))
    if not settings.hl7v2_receiver:
        return handlers
    host, _, port = settings.hl7v2_receiver.rpartition(":")
    sending = tuple(settings.hl7v2_sending_application.split("^", 1) + [""])[:2]
    receiving = tuple(settings.hl7v2_receiver_application.split("^", 1) + [""])[:2]
    return handlers | MllpDelivery(engine, host, int(port), (sending[0], sending[1]),
                                   (receiving[0], receiving[1])).handlers()


def outbox_worker(settings: Settings, engine: Engine, handlers: dict[str, Handler]) -> OutboxWorker:
    return OutboxWorker(engine, handlers, settings.outbox_interval_seconds, settings.outbox_max_attempts,
                        settings.outbox_first_delay_seconds, settings.outbox_max_delay_seconds)


def sdi_handlers(settings: Settings, engine: Engine) -> dict[str, Handler]:
    """The case index's deliveries, when the index is on and has an address (`hub serve` starts the local one)."""
    if not (settings.sdi_enabled and settings.sdi_url):
        return {}
    from hub.core.sdi_flow import CaseIndexDelivery
    from hub.sdi.client import SdiClient
    from hub.sdi.config import index_config
    from hub.sdi.kle import KleList
    from hub.sdi.security import security

    client = SdiClient(settings.standards_store, settings.sdi_url, security=security(settings),
                       liberty=settings.sdi_liberty, timeout=settings.sdi_timeout_seconds)
    return CaseIndexDelivery(engine, client, KleList.load(settings.standards_store), index_config(settings),
                             settings.sdi_legal_basis).handlers()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = build_services(settings)
        # Few threads beat many: the flow is short CPU bursts between I/O waits, and under the GIL a large pool
        # spends its time handing the lock around.
        to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        # What start-up loaded (packages, models, rules: some 140,000 objects) lives as long as the process.
        # Freezing it keeps it out of the collector's sight: a full collection over it takes ~130 ms here, a
        # pause every request in flight would feel.
        gc.collect()
        gc.freeze()
        flow = app.state.services.flow
        conversions = app.state.services.messages.conversions

        def housekeeping() -> None:
            flow.settle_pending(timedelta(seconds=settings.pending_settle_after_seconds))
            conversions.housekeeping(timedelta(hours=settings.pending_letter_hours))

        keeper = Housekeeping(housekeeping, settings.housekeeping_interval_seconds)
        keeper.start()
        delivery = HttpDelivery(flow.engine, wrapper=VansWrapper(app.state.services.vans.codes))
        handlers: dict[str, Handler] = {DELIVER_TOPIC: delivery, **hl7v2_handlers(settings, flow.engine),
                                        **sdi_handlers(settings, flow.engine)}
        outbox = outbox_worker(settings, flow.engine, handlers)
        outbox.start()
        yield
        outbox.stop()
        delivery.close()
        keeper.stop()
        flow.close()

    app = FastAPI(title="hub", version="0.1.0", lifespan=lifespan,
                  description="FHIR R4 video appointments booked in VDX; MedCom, HL7 v2 and SF1470 to follow.")
    if balance.worker_slot is not None:
        app.add_middleware(ConnectionBalancer, counts=balance.worker_slot[0], index=balance.worker_slot[1])
    app.include_router(metadata.router)
    app.include_router(validate.router)
    app.include_router(booking_confirmation.router)  # before appointment: its path is more specific
    app.include_router(appointment.router)
    app.include_router(messaging.router)
    app.include_router(oioxml.router)
    app.include_router(vans.router)
    app.include_router(encounter.router)

    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> Response:
        return outcome_response(request, exc.outcome, exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return outcome_response(request, single("invalid", str(exc)), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return outcome_response(request, single(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return outcome_response(request, single("exception", "The hub failed to process the request; "
                                                "it has been logged"), 500)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
