"""The hub's tables (SQLAlchemy 2 typed declarative). Migrations in `hub/store/migrations` create them.

- `messages`: every message in or out, raw bytes kept even when unparseable, with its verdict.
- `appointments`: the resource as the hub answers with it, plus the columns searches need.
- `meetings`: VDX rooms; an appointment that was moved after provisioning has several, one active.
- `outbox`: deliveries still to be made, written in the same transaction as the change that causes them.
- `encounter_events`: what happened to hospital stays (HospitalNotification, later HL7 v2 ADT), per patient.
- `received_messages`: each inbound message by its identity (MedCom: sender and MessageHeader id) with the
  answer it got, so a message sent again gets that answer again and is not processed twice.
- `conversions` and `conversion_letters`: what a converted message became (FHIR MessageHeader ⇄ OIOXML
  envelopes and letters), so the receiver's answer (a receipt, an Acknowledgement) is converted back.
- `pending_letters`: OIOXML letters for a FHIR receiver waiting for the rest of their message (an XDIS91 for
  the XBIN01 letters with its attachments, or the other way round).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, TypeDecorator, false
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite has no time zones: store naive UTC, read back aware).

    On SQLite the value is written and read as text in the format SQLAlchemy's own DateTime uses there
    (`YYYY-MM-DD HH:MM:SS.ffffff`, which sorts as it compares), but through `isoformat`/`fromisoformat`: the
    dialect's formatting and regular-expression parsing were a fifth of the store writer's time per booking.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(String() if dialect.name == "sqlite" else DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.isoformat(" ", "microseconds") if dialect.name == "sqlite" else naive

    def process_result_value(self, value: datetime | str | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    channel: Mapped[str] = mapped_column(String(20))  # fhir-rest | vdx | ...
    format: Mapped[str] = mapped_column(String(40))  # fhir+json | fhir+xml | vdx+json | unknown
    operation: Mapped[str] = mapped_column(String(200))  # e.g. "POST /fhir/Appointment"
    content_type: Mapped[str | None] = mapped_column(String(200))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    verdict: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(20))  # accepted | rejected | sent | received | failed
    http_status: Mapped[int | None]
    appointment_id: Mapped[str | None] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), index=True)
    cut: Mapped[bool] = mapped_column(server_default=false())  # only its first bytes kept (413)


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_key: Mapped[str] = mapped_column(String(600), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(20))  # pending | booked | failed
    status: Mapped[str] = mapped_column(String(30), index=True)  # the FHIR Appointment.status
    resource: Mapped[dict[str, Any]]
    patient_reference: Mapped[str | None] = mapped_column(String(300), index=True)
    patient_identifier: Mapped[str | None] = mapped_column(String(300), index=True)
    # the organisation (system|value) whose client booked it; None: booked by HL7 v2 or a letter, seen by all
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    start: Mapped[datetime] = mapped_column(index=True)
    end: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Meeting(Base):
    __tablename__ = "meetings"

    vdx_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    appointment_id: Mapped[str] = mapped_column(ForeignKey("appointments.id"), index=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(20))  # active | ended | deleted
    uri: Mapped[str | None] = mapped_column(String(100))
    guest_pin: Mapped[str | None] = mapped_column(String(20))
    host_pin: Mapped[str | None] = mapped_column(String(20))
    meeting_url: Mapped[str | None] = mapped_column(Text)
    short_link: Mapped[str | None] = mapped_column(String(200))
    provision_status: Mapped[str | None] = mapped_column(String(40))
    start: Mapped[datetime]
    end: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxEntry(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(100))  # e.g. meeting.booked
    ordering_key: Mapped[str] = mapped_column(String(200), index=True)  # deliveries in order per key
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReceivedMessage(Base):
    __tablename__ = "received_messages"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # e.g. fhir:sor:123:<MessageHeader id>
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"))  # the message as first received
    answer_id: Mapped[str | None] = mapped_column(ForeignKey("messages.id"))  # the answer it got
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class EncounterEventRow(Base):
    __tablename__ = "encounter_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stay: Mapped[str] = mapped_column(String(300), index=True)  # the stay's id (hub.store.encounters.stay_id)
    event: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(30))
    encounter_class: Mapped[str | None] = mapped_column(String(20))
    start: Mapped[datetime | None]
    end: Mapped[datetime | None]
    patient_identifier: Mapped[str | None] = mapped_column(String(300), index=True)
    service_provider: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime | None]
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    resource: Mapped[dict[str, Any]]
    # the routing keys (` sor:… gln:… `) of the organisations its message came from or went to, whose clients
    # alone see it; None (HL7 v2): seen by every client
    parties: Mapped[str | None] = mapped_column(String(1000))


class ConversionRow(Base):
    __tablename__ = "conversions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    direction: Mapped[str] = mapped_column(String(10))  # to-fhir | to-oioxml
    header_id: Mapped[str] = mapped_column(String(100), index=True)  # the FHIR message's MessageHeader id
    message: Mapped[dict[str, Any]]  # hub.convert.receipts.MessageRecord
    source_id: Mapped[str] = mapped_column(ForeignKey("messages.id"))  # the message converted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]  # when the receiver's answer was converted and sent on


class ConversionLetterRow(Base):
    __tablename__ = "conversion_letters"
    __table_args__ = (Index("ix_conversion_letters_envelope", "sender_ean", "envelope_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    conversion_id: Mapped[str] = mapped_column(ForeignKey("conversions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # XDIS91 | XBIN01
    envelope_id: Mapped[str] = mapped_column(String(50))
    letter_id: Mapped[str] = mapped_column(String(50))
    version_code: Mapped[str] = mapped_column(String(20))
    sender_ean: Mapped[str] = mapped_column(String(20))
    receiver_ean: Mapped[str] = mapped_column(String(20))
    asks_positive: Mapped[bool]  # its envelope said pluspositivkvitt
    answer: Mapped[str | None] = mapped_column(String(30))  # the receipt kind it got: PositiveReceipt, …
    receipt: Mapped[dict[str, Any] | None]  # that receipt (hub.convert.receipts.ReadReceipt)


class PendingLetterRow(Base):
    __tablename__ = "pending_letters"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sender_ean: Mapped[str] = mapped_column(String(20), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # XDIS91 | XBIN01
    object_ids: Mapped[list[str]] = mapped_column(JSON)  # XDIS91: the binaries it refers to; XBIN01: it carries
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id"))  # the Emessage it came in
    position: Mapped[int] = mapped_column(Integer)  # its place in that Emessage (hub.medcom.envelope.Letter)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class IndexCaseRow(Base):
    """A case the hub keeps in the case index (SF1470): what it has told the index (hub.sdi.case.CaseState)."""

    __tablename__ = "index_cases"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the case's key (it may hold a CPR)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    state: Mapped[dict[str, Any]]
    removed: Mapped[bool] = mapped_column(default=False)  # removed from the index (fjern)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IndexMeetingRow(Base):
    """Which case a meeting went on, fixed when it was first indexed (the age rule may start a new case later)."""

    __tablename__ = "index_meetings"

    appointment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_key: Mapped[str] = mapped_column(ForeignKey("index_cases.key"), index=True)


class AuthClientRow(Base):
    """A client of the hub's own token issuer (`hub clients add`): its organisation, the scopes it may be given,
    and how it authenticates — a secret, stored only hashed, or public keys for `private_key_jwt`."""

    __tablename__ = "auth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    organisation: Mapped[str] = mapped_column(String(200))  # system|value (SOR, GLN or CVR)
    scope: Mapped[str] = mapped_column(Text)
    secret_hash: Mapped[str | None] = mapped_column(String(200))
    jwks: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthKeyRow(Base):
    """The own issuer's signing key, one for every instance on the database."""

    __tablename__ = "auth_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UsedAssertionRow(Base):
    """The `jti` of each client assertion accepted, until it expires: each is used once."""

    __tablename__ = "auth_used_assertions"

    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuditEventRow(Base):
    """Who did what, when, with what outcome (IHE BALP as the model): written, never changed (`hub.store.audit`)."""

    __tablename__ = "audit_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    recorded: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(20))  # rest | operation | messaging | token | refused
    subtype: Mapped[str] = mapped_column(String(40))  # read, search-type, create, update, patch, $validate, …
    action: Mapped[str] = mapped_column(String(1))  # C R U D E
    outcome: Mapped[str] = mapped_column(String(2))  # 0 success, 4 minor failure, 8 serious failure
    client_id: Mapped[str | None] = mapped_column(String(200))
    organisation: Mapped[str | None] = mapped_column(String(200), index=True)
    address: Mapped[str | None] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))  # CPR numbers masked
    entity: Mapped[str | None] = mapped_column(String(300), index=True)  # e.g. Appointment/123
    patient: Mapped[str | None] = mapped_column(String(300), index=True)  # system|value
    correlation: Mapped[str | None] = mapped_column(String(64))
