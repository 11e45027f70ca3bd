"""The composition root: what the settings ask for, built once — store, packages, clients, flows, deliveries.

`hub serve`'s API workers (`hub.api.app`), `hub mllp` and the CLI's commands build their services, flows and
deliveries here, so each is made one way wherever it runs; the flows and deliveries take what they need as
arguments, never the settings.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub.auth.tokens import OwnIssuer, TrustedIssuer, Verifier, from_jwks_uri, new_signing_key
from hub.convert.service import Converter, danish_display
from hub.core.config import Settings
from hub.core.cpr import CPR_SYSTEM
from hub.core.guard import Guard
from hub.core.routing import DELIVER_TOPIC
from hub.delivery.application_ack import TOPIC as APPLICATION_ACK
from hub.delivery.application_ack import ApplicationAckDelivery
from hub.delivery.case_index import CaseIndexDelivery
from hub.delivery.http import HttpDelivery, VansWrapper
from hub.delivery.mllp import MllpDelivery
from hub.delivery.worker import Handler, OutboxWorker
from hub.fhir.edge import AppointmentEdge
from hub.fhir.messaging import ErrorCodes, ack_event
from hub.fhir.packages import PackageSet, load_store
from hub.fhir.structure import StructureValidator
from hub.fhir.validator import Validator
from hub.fhir.videoappointment import VideoAppointmentRules
from hub.flows.appointment import AppointmentFlow
from hub.flows.booking import BookingFlow
from hub.flows.booking_confirmation import BookingConfirmationFlow
from hub.flows.case_index import CaseIndexFlow
from hub.flows.conversion import ConversionFlow
from hub.flows.hl7v2 import Hl7v2Flow
from hub.flows.housekeeping import HousekeepingFlow
from hub.flows.letter import LetterFlow
from hub.flows.message import MessageFlow
from hub.flows.vans import VansFlow
from hub.hl7v2.ig_tables import IgTables
from hub.hl7v2.mllp import tls_context
from hub.hl7v2.siu import VideoPolicy
from hub.medcom.booking_confirmation import Xdis13Policy
from hub.medcom.schemas import OioxmlSchemas
from hub.medcom.vans import StatisticalCodes
from hub.sdi.client import SdiClient
from hub.sdi.config import index_config
from hub.sdi.kle import KleList
from hub.sdi.security import security
from hub.store.clients import ClientStore
from hub.store.commit import Committer, GroupCommit
from hub.store.db import WriterLock, make_engine, migrate, only_one, session_factory
from hub.store.writer import WriterClient
from hub.video.client import VdxClient

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


@dataclass
class Auth:
    """Tokens: the hub's own issuer (None when switched off), the verifier of every trusted issuer's, the clients."""

    issuer: OwnIssuer | None
    verifier: Verifier
    clients: ClientStore


def auth(settings: Settings, engine: Engine) -> Auth:
    """The own issuer (its key shared through the database) and the issuers of `HUB_AUTH_ISSUERS`."""
    clients = ClientStore(engine)
    base = (settings.public_base_url or "http://localhost").rstrip("/")
    trusted: list[TrustedIssuer] = []
    own = None
    if settings.auth_own_issuer:
        own = OwnIssuer(clients.signing_key(new_signing_key), f"{base}/auth", fhir_base(settings))
        trusted.append(TrustedIssuer(own.issuer, own.audience, own.key))
    for other in settings.auth_issuers:
        trusted.append(from_jwks_uri(other["issuer"], other.get("audience", fhir_base(settings)), other["jwks_uri"],
                                     other.get("organisation_claim", "organisation")))
    return Auth(own, Verifier(trusted), clients)


@dataclass
class Services:
    """Everything a request handler needs, built once at start-up (app.state.services)."""

    settings: Settings
    sessions: sessionmaker[Session]
    packages: PackageSet
    flow: BookingFlow
    appointments: AppointmentFlow
    validator: Validator
    messages: MessageFlow
    letters: LetterFlow
    vans: VansFlow
    auth: Auth


def fhir_base(settings: Settings) -> str:
    """The base of the FHIR links the hub writes into what it sends."""
    return f"{(settings.public_base_url or 'http://localhost').rstrip('/')}/fhir"


def load_packages(settings: Settings) -> PackageSet:
    """The official FHIR packages of the standards store, indexed (`hub schemas sync` fills the store)."""
    return load_store(settings.standards_store)


def converter_factory(settings: Settings, packages: PackageSet, schemas: OioxmlSchemas) -> Callable[[], Converter]:
    """MedCom's OIOXML ⇄ FHIR converter as the settings' directory (`HUB_ROUTES`) and packages see it."""
    display = danish_display(packages)
    return lambda: Converter(schemas.root, settings.routing.organisation, display, fhir_base(settings))


def booking_flow(settings: Settings, engine: Engine, sessions: sessionmaker[Session]) -> BookingFlow:
    """The booking flow on the configured VDX (HUB_VDX_URL), committing through the store writer process when
    `hub serve` gave one."""
    vdx = VdxClient(settings.vdx_url or "", timeout=settings.vdx_timeout_seconds, retries=settings.vdx_retries,
                    token_url=settings.vdx_token_url, client_id=settings.vdx_client_id,
                    client_secret=settings.vdx_client_secret, organizer_email=settings.vdx_organizer_email,
                    concurrency=settings.vdx_concurrency, circuit=settings.circuit)
    committer: Committer | None = None
    if settings.store_writer and settings.store_writer_key:
        committer = WriterClient(settings.store_writer, bytes.fromhex(settings.store_writer_key),
                                 GroupCommit(engine, WriterLock(engine)))
    followers = (CaseIndexFlow(),) if settings.sdi_enabled else ()
    return BookingFlow(sessions, vdx, committer=committer, followers=followers,
                       announced=settings.hl7v2_receiver is not None)  # `meeting.*` is SIU out's (hub.delivery.mllp)


def build_services(settings: Settings) -> Services:
    """Everything the API needs, built once: database (migrated), packages, rules, VDX client, flows."""
    if not settings.vdx_url:
        raise RuntimeError("HUB_VDX_URL is not set: `hub serve` starts the built-in VDX service and sets it")
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    sessions = session_factory(engine)
    package_set = load_packages(settings)
    flow = booking_flow(settings, engine, sessions)
    structure = StructureValidator(package_set)
    validator = Validator(package_set, structure)
    rules = VideoAppointmentRules(package_set, validator)
    rules.check(_WARM_UP, structure.check(_WARM_UP))  # compile what a booking uses now, not in the first request
    routes = settings.routing
    schemas = OioxmlSchemas(settings.standards_store)
    conversions = ConversionFlow(engine, converter_factory(settings, package_set, schemas), validator, schemas,
                                 routes, ErrorCodes.load(), ack_event(package_set), fhir_base(settings))
    messages = MessageFlow(engine, validator, package_set, routes, conversions, base_url=fhir_base(settings))
    policy = Xdis13Policy(re.compile(settings.xdis13_video_pattern), timedelta(minutes=settings.xdis13_minutes))
    letters = LetterFlow(engine, schemas, routes, conversions, BookingConfirmationFlow(flow, policy))
    vans = VansFlow(messages, StatisticalCodes.from_packages(package_set), routes)
    appointments = AppointmentFlow(flow, AppointmentEdge(structure, rules))
    return Services(settings, sessions, package_set, flow, appointments, validator, messages, letters, vans,
                    auth(settings, engine))


def hl7v2_flow(settings: Settings, engine: Engine) -> Hl7v2Flow:
    """The HL7 v2 flow of `hub mllp`: SIU video consultations booked when a video service is configured (without
    one they are answered AE: there is nowhere to book), messages group-committed."""
    bookings = booking_flow(settings, engine, session_factory(engine)) if settings.vdx_url else None
    committer = GroupCommit(engine, WriterLock(engine))
    senders = ({name: frozenset(allowed) for name, allowed in settings.mllp_tls_senders.items()}
               if settings.mllp_tls_ca else None)  # client certificates required: each may send as its senders
    return Hl7v2Flow(engine, bookings, committer=committer, video=VideoPolicy(settings.hl7v2_video_codes),
                     tables=IgTables.in_store(settings.standards_store), senders=senders)


def mllp_tls(settings: Settings) -> ssl.SSLContext | None:
    """The MLLP listener's TLS, when configured (HUB_MLLP_TLS_*)."""
    if settings.mllp_tls_cert is None or settings.mllp_tls_key is None:
        return None
    return tls_context(settings.mllp_tls_cert, settings.mllp_tls_key, settings.mllp_tls_ca)


# --- deliveries -------------------------------------------------------------------------------------------


def hl7v2_handlers(settings: Settings, engine: Engine) -> dict[str, Handler]:
    """The HL7 v2 deliveries the configuration asks for: enhanced mode's application acknowledgements to their
    senders; meetings booked through FHIR as SIU to the configured receiver."""
    handlers: dict[str, Handler] = {}
    if settings.hl7v2_ack_addresses:
        handlers[APPLICATION_ACK] = ApplicationAckDelivery(engine, settings.hl7v2_ack_addresses)
    if settings.hl7v2_receiver is None:
        return handlers
    host, port = settings.hl7v2_receiver
    return handlers | MllpDelivery(engine, host, port, settings.hl7v2_sending_application,
                                   settings.hl7v2_receiver_application).handlers()


def preflight(settings: Settings, mllp_host: str | None = None) -> list[str]:
    """What is wrong with the configuration, each as one line, found before any part starts (a part finds it only
    at its own start, in a worker, where it is a traceback in the log). `mllp_host`: where MLLP is to listen."""
    problems = []
    if (settings.https_cert is None) != (settings.https_key is None):
        problems.append("HUB_HTTPS_CERT and HUB_HTTPS_KEY go together")
    if (settings.mllp_tls_cert is None) != (settings.mllp_tls_key is None):
        problems.append("HUB_MLLP_TLS_CERT and HUB_MLLP_TLS_KEY go together")
    elif settings.mllp_tls_cert is not None:
        try:
            mllp_tls(settings)
        except (OSError, ssl.SSLError) as exc:
            problems.append(f"HUB_MLLP_TLS_*: the certificate, key or CA cannot be used: {exc}")
    if settings.mllp_tls_ca is not None and not settings.mllp_tls_senders:
        problems.append("HUB_MLLP_TLS_SENDERS is required with HUB_MLLP_TLS_CA: whom each client certificate may "
                        "send as")
    if (mllp_host is not None and settings.mllp_tls_cert is None and not settings.mllp_allow_plain
            and not _loopback(mllp_host)):
        problems.append(f"MLLP on {mllp_host} without TLS: set HUB_MLLP_TLS_CERT and HUB_MLLP_TLS_KEY (and "
                        "HUB_MLLP_TLS_CA for client certificates), or HUB_MLLP_ALLOW_PLAIN=true behind a network "
                        "that protects it")
    if not (settings.standards_store / "files").is_dir():
        problems.append(f"the standards store {settings.standards_store} is empty: run `hub schemas sync` (`make run` "
                        "does)")
    if settings.sdi_enabled and settings.sdi_url:
        try:
            index_config(settings)
        except (ValueError, OSError) as exc:
            problems.append(str(exc))
    return problems


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def sdi_delivery(settings: Settings, engine: Engine) -> CaseIndexDelivery | None:
    """The case index's deliveries, when the index is on and has an address (`hub serve` starts the local one)."""
    if not (settings.sdi_enabled and settings.sdi_url):
        return None
    client = SdiClient(settings.standards_store, settings.sdi_url, security=security(settings),
                       liberty=settings.sdi_liberty, timeout=settings.sdi_timeout_seconds, circuit=settings.circuit)
    return CaseIndexDelivery(engine, client, KleList.load(settings.standards_store), index_config(settings),
                             settings.sdi_legal_basis)


def sdi_handlers(settings: Settings, engine: Engine) -> dict[str, Handler]:
    delivery = sdi_delivery(settings, engine)
    return delivery.handlers() if delivery else {}


def outbox_worker(settings: Settings, engine: Engine, handlers: dict[str, Handler]) -> OutboxWorker:
    return OutboxWorker(engine, handlers, settings.outbox_interval_seconds, settings.outbox_max_attempts,
                        settings.outbox_first_delay_seconds, settings.outbox_max_delay_seconds,
                        concurrency=settings.outbox_concurrency, by_key=frozenset({DELIVER_TOPIC}),
                        circuit=settings.circuit)


@dataclass
class Background:
    """What runs beside the API in each worker process: housekeeping and the outbox worker with its handlers."""

    keeper: HousekeepingFlow
    outbox: OutboxWorker
    delivery: HttpDelivery
    flow: BookingFlow
    guards: dict[str, Guard]  # the downstreams this process calls: VDX, the case index

    def circuits(self) -> dict[str, dict[str, object]]:
        """Each downstream's and outbox receiver's bulkhead and circuit, for `/readyz` and the metrics."""
        return {name: guard.status() for name, guard in self.guards.items()} | self.outbox.receivers()

    def stop(self) -> None:
        """Deliveries first (a row in hand is finished), then housekeeping, then the booking flow's commits."""
        self.outbox.stop()
        self.delivery.close()
        self.keeper.stop()
        self.flow.close()


def start_background(settings: Settings, services: Services) -> Background:
    """Housekeeping (bookings a stopped process left pending, letters waiting too long) and every delivery the
    configuration asks for, started."""
    flow, conversions = services.flow, services.messages.conversions

    def housekeeping() -> None:
        flow.settle_pending(timedelta(seconds=settings.pending_settle_after_seconds))
        conversions.housekeeping(timedelta(hours=settings.pending_letter_hours))

    keeper = HousekeepingFlow(housekeeping, settings.housekeeping_interval_seconds,
                              lambda: only_one(flow.engine, "housekeeping"))
    keeper.start()
    delivery = HttpDelivery(flow.engine, wrapper=VansWrapper(services.vans.codes))
    index = sdi_delivery(settings, flow.engine)
    handlers: dict[str, Handler] = {DELIVER_TOPIC: delivery, **hl7v2_handlers(settings, flow.engine),
                                    **(index.handlers() if index else {})}
    outbox = outbox_worker(settings, flow.engine, handlers)
    outbox.start()
    guards = {"vdx": flow.vdx.guard} | ({"case index": index.client.guard} if index else {})
    return Background(keeper, outbox, delivery, flow, guards)
