"""Converted messages in the store: what each became (the conversion record), the answers its letters got, and
the OIOXML letters still waiting for the rest of their message.

Writes are returned as statements for the caller's transaction (the conversion is committed with the message
it came from, `hub.store.inbox.Inbox.commit`), except the few that settle state later on their own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Executable, and_, select

from hub.store.inbox import Effect
from hub.store.statements import CONVERSION_LETTERS, CONVERSIONS, MESSAGES, PENDING_LETTERS


@dataclass(frozen=True)
class StoredConversion:
    id: str
    direction: str  # to-fhir | to-oioxml
    message: dict[str, Any]  # the FHIR side's record, as the flow wrote it
    letters: list[tuple[dict[str, Any], dict[str, Any] | None]]  # each letter's record, with its receipt's
    answered: bool


@dataclass(frozen=True)
class PendingLetter:
    id: str
    kind: str
    object_ids: frozenset[str]
    message_id: str
    position: int
    received_at: datetime


def object_key(object_id: str | None) -> str:
    """An attachment's id as XDIS91 and XBIN01 are matched by (letters write UUIDs with and without dashes)."""
    return (object_id or "").replace("-", "").lower()


class ConversionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- conversion records ------------------------------------------------------------------------------

    @staticmethod
    def record(direction: str, message: dict[str, Any], letters: list[dict[str, Any]], source_id: str,
               now: datetime) -> list[Effect]:
        """A conversion: the FHIR message's record (with its `header_id`) and its letters' (`kind`,
        `envelope_id`, `identifier`, `version_code`, `sender_ean`, `receiver_ean`, `asks_positive`)."""
        conversion_id = str(uuid.uuid4())
        return [(CONVERSIONS.insert(), [{"id": conversion_id, "direction": direction,
                                         "header_id": message["header_id"], "message": message,
                                         "source_id": source_id, "created_at": now, "answered_at": None}]),
                (CONVERSION_LETTERS.insert(), [{"id": str(uuid.uuid4()), "conversion_id": conversion_id,
                                                "kind": one["kind"], "envelope_id": one["envelope_id"],
                                                "letter_id": one["identifier"], "version_code": one["version_code"],
                                                "sender_ean": one["sender_ean"], "receiver_ean": one["receiver_ean"],
                                                "asks_positive": one["asks_positive"], "answer": None,
                                                "receipt": None} for one in letters])]

    def by_header(self, header_id: str, direction: str) -> StoredConversion | None:
        """The latest conversion of the FHIR message with this MessageHeader id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(CONVERSIONS).where(and_(CONVERSIONS.c.header_id == header_id,
                                                              CONVERSIONS.c.direction == direction))
                               .order_by(CONVERSIONS.c.created_at.desc())).first()
            return self._load(conn, row) if row is not None else None

    def by_envelope(self, sender_ean: str, envelope_id: str) -> StoredConversion | None:
        """The conversion an OIOXML envelope the hub wrote (sender EAN, envelope id) belongs to."""
        with self.engine.connect() as conn:
            found = conn.execute(select(CONVERSION_LETTERS.c.conversion_id).where(and_(
                CONVERSION_LETTERS.c.sender_ean == sender_ean, CONVERSION_LETTERS.c.envelope_id == envelope_id))
            ).first()
            if found is None:
                return None
            row = conn.execute(select(CONVERSIONS).where(CONVERSIONS.c.id == found.conversion_id)).one()
            return self._load(conn, row)

    def by_id(self, conversion_id: str) -> StoredConversion:
        with self.engine.connect() as conn:
            return self._load(conn, conn.execute(select(CONVERSIONS).where(CONVERSIONS.c.id == conversion_id)).one())

    @staticmethod
    def _load(conn: Any, row: Any) -> StoredConversion:
        letters = conn.execute(select(CONVERSION_LETTERS).where(CONVERSION_LETTERS.c.conversion_id == row.id)
                               .order_by(CONVERSION_LETTERS.c.kind.desc(), CONVERSION_LETTERS.c.envelope_id)).all()
        return StoredConversion(row.id, row.direction, dict(row.message),
                                [({"kind": one.kind, "envelope_id": one.envelope_id, "identifier": one.letter_id,
                                   "version_code": one.version_code, "sender_ean": one.sender_ean,
                                   "receiver_ean": one.receiver_ean, "asks_positive": one.asks_positive},
                                  dict(one.receipt) if one.receipt else None) for one in letters],
                                row.answered_at is not None)

    @staticmethod
    def answer(conversion_id: str, envelope_id: str, letter_ids: list[str], receipt: dict[str, Any]) -> Effect:
        """The receipt (its record, with its `kind`) a letter of the conversion got: the letters `letter_ids` of
        the envelope, all of them when it names none."""
        where = [CONVERSION_LETTERS.c.conversion_id == conversion_id, CONVERSION_LETTERS.c.envelope_id == envelope_id]
        if letter_ids:
            where.append(CONVERSION_LETTERS.c.letter_id.in_(letter_ids))
        return (CONVERSION_LETTERS.update().where(and_(*where)).values(answer=receipt["kind"], receipt=receipt), None)

    @staticmethod
    def mark_answered(conversion_id: str, now: datetime) -> Executable:
        """Claim the conversion's answer: it matches no row when another worker has answered it already."""
        return CONVERSIONS.update().where(and_(CONVERSIONS.c.id == conversion_id,
                                               CONVERSIONS.c.answered_at.is_(None))).values(answered_at=now)

    def unanswered(self, direction: str) -> list[str]:
        """Conversions not yet answered though a receipt has come for one of their letters (what the housekeeping
        settles: a process that stopped between storing a receipt and converting it); those no receipt has come
        for have nothing to settle, however many there are."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(CONVERSIONS.c.id).distinct().join(
                CONVERSION_LETTERS, CONVERSION_LETTERS.c.conversion_id == CONVERSIONS.c.id).where(and_(
                    CONVERSIONS.c.direction == direction, CONVERSIONS.c.answered_at.is_(None),
                    CONVERSION_LETTERS.c.answer.is_not(None)))).scalars())

    # --- letters waiting for their parts -----------------------------------------------------------------

    @staticmethod
    def pending(sender_ean: str, kind: str, object_ids: list[str], message_id: str, position: int,
                now: datetime) -> Effect:
        return (PENDING_LETTERS.insert(), [{"id": str(uuid.uuid4()), "sender_ean": sender_ean, "kind": kind,
                                            "object_ids": sorted({object_key(i) for i in object_ids}),
                                            "message_id": message_id, "position": position, "received_at": now}])

    def waiting(self, sender_ean: str | None = None) -> list[tuple[str, PendingLetter]]:
        """(sender EAN, letter) of the letters waiting, oldest first; of one sender when given."""
        query = select(PENDING_LETTERS).order_by(PENDING_LETTERS.c.received_at)
        if sender_ean is not None:
            query = query.where(PENDING_LETTERS.c.sender_ean == sender_ean)
        with self.engine.connect() as conn:
            return [(row.sender_ean, PendingLetter(row.id, row.kind, frozenset(row.object_ids), row.message_id,
                                                   row.position, row.received_at))
                    for row in conn.execute(query).all()]

    @staticmethod
    def take(letters: list[PendingLetter]) -> Executable:
        """Remove the letters from waiting (the caller checks that it removed all of them)."""
        return PENDING_LETTERS.delete().where(PENDING_LETTERS.c.id.in_([one.id for one in letters]))

    def raw(self, message_id: str) -> bytes:
        with self.engine.connect() as conn:
            return bytes(conn.execute(select(MESSAGES.c.raw).where(MESSAGES.c.id == message_id)).scalar_one())
