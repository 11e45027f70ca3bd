"""Meetings into the case index (SF1470): the outbox handler of `sdi.meeting` rows.

The booking flow answers the EOJ at once; with each booking, move, cancellation or deletion it writes an outbox
row for the index (`hub.flows.case_index`) in the same transaction, keyed by the meeting's course of care, so a case's
updates go out one at a time and in the order they happened. The outbox worker hands each row to
`CaseIndexDelivery`, which walks the case's requests (`hub.sdi.case.next_step`) and keeps after each one what
the index now has, so a retry resends only what failed. While the index is away the row waits and is tried again
with backoff (`hub.delivery.worker`), and the rows behind it wait for it; a request the index refuses, or a meeting
the hub cannot index (no service, a KLE emne off the list or without a class), is dead at once with its reason,
visible with `hub outbox list` and put back with `hub outbox replay` once the cause is fixed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, select

from hub.delivery.worker import PermanentFailure
from hub.sdi.case import DANISH, CaseState, IndexConfig, case_key, new_case, next_step
from hub.sdi.client import SdiClient, SdiRefused
from hub.sdi.kle import Emne, KleList, UnknownKle
from hub.sdi.meeting import MeetingFacts, meeting_facts
from hub.store import models as m
from hub.store.db import WriterLock

log = logging.getLogger("hub.sdi")
TOPIC = "sdi.meeting"
INDEX_CASES = cast(Table, m.IndexCaseRow.__table__)
INDEX_MEETINGS = cast(Table, m.IndexMeetingRow.__table__)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class CaseIndexDelivery:
    engine: Engine
    client: SdiClient
    kle: KleList
    config: IndexConfig
    legal_basis: str | None = None  # the service of a meeting that names none
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self._lock = WriterLock(self.engine)

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], None]]:
        return {TOPIC: self}

    def __call__(self, payload: dict[str, Any]) -> None:
        facts = meeting_facts(payload["appointment"], payload["resource"], payload.get("patient"))
        if facts is None:
            return
        at = datetime.fromisoformat(payload["at"])
        state = self._state(facts, at)
        while (step := next_step(state, facts, self.config, at)) is not None:
            try:
                self.client.call(step.operation, step.body)
            except SdiRefused as exc:
                raise PermanentFailure(f"{step.what}: {exc}") from None
            self._keep(facts.appointment, state, step.after)
            log.info("case index: %s", step.what, extra={"appointment": facts.appointment, "case": state.uuid})
            if step.after is None:
                return
            state = step.after

    def _state(self, facts: MeetingFacts, at: datetime) -> CaseState:
        """The case the meeting is on: the one it went on first, else the one its course of care has now."""
        with self.engine.connect() as conn:
            key = conn.scalar(select(m.IndexMeetingRow.case_key).where(
                m.IndexMeetingRow.appointment_id == facts.appointment))
            if key is None:
                emne = self._emne(facts)
                case = case_key(facts, emne, self.config.age, at.astimezone(DANISH).date())
                key = _hash(case)
                found = conn.execute(select(m.IndexCaseRow.state, m.IndexCaseRow.removed)
                                     .where(m.IndexCaseRow.key == key)).first()
                if found is None or found.removed:
                    return new_case(case, facts, emne, self.config, at)
                return CaseState.from_json(found.state)
            state = conn.scalar(select(m.IndexCaseRow.state).where(m.IndexCaseRow.key == key))
        return CaseState.from_json(state or {})

    def _emne(self, facts: MeetingFacts) -> Emne:
        legal_basis = facts.legal_basis or self.legal_basis
        if legal_basis is None:
            raise PermanentFailure("The meeting names no service (a urn:hub:legal-basis coding in ehealth-legalBasis)"
                                   " and HUB_SDI_LEGAL_BASIS gives none: its KLE emne is unknown")
        try:
            emne = self.kle.for_service(legal_basis)
            self.config.kle_classes[emne.number]
        except UnknownKle as exc:
            raise PermanentFailure(str(exc)) from None
        except KeyError:
            raise PermanentFailure(f"HUB_SDI_CLASSES has no class UUID for KLE {emne.number}") from None
        return emne

    def _keep(self, appointment: str, before: CaseState, after: CaseState | None) -> None:
        key = _hash(before.key)
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(select(m.IndexCaseRow.key).where(m.IndexCaseRow.key == key)).first()
            values = {"uuid": before.uuid, "state": (after or before).to_json(), "removed": after is None,
                      "updated_at": self.now()}
            if row is None:
                conn.execute(INDEX_CASES.insert().values(key=key, **values))
            else:
                conn.execute(INDEX_CASES.update().where(m.IndexCaseRow.key == key).values(**values))
            known = conn.scalar(select(m.IndexMeetingRow.case_key).where(
                m.IndexMeetingRow.appointment_id == appointment))
            if known is None:
                conn.execute(INDEX_MEETINGS.insert().values(appointment_id=appointment, case_key=key))
