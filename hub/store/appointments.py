"""Queries over stored appointments (the FHIR search behind `GET /fhir/Appointment`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select
from sqlalchemy.orm import Session

from hub.core.model import DateBound
from hub.store.models import Appointment, Meeting


def _date_clause(b: DateBound) -> ColumnElement[bool]:
    col = Appointment.start
    return {
        "eq": and_(col >= b.low, col < b.high),
        "ne": not_(and_(col >= b.low, col < b.high)),
        "lt": col < b.low,
        "eb": col < b.low,
        "le": col < b.high,
        "gt": col >= b.high,
        "sa": col >= b.high,
        "ge": col >= b.low,
    }[b.prefix]


def search(
    session: Session,
    *,
    patient_references: Sequence[str] = (),
    patient_identifiers: Sequence[tuple[str | None, str]] = (),
    dates: Sequence[DateBound] = (),
    statuses: Sequence[str] = (),
    identifiers: Sequence[tuple[str | None, str]] = (),
    count: int = 50,
    offset: int = 0,
    viewer: str | None = None,
) -> tuple[int, list[tuple[dict[str, Any], str | None]]]:
    """(total, (resource, owner) of each) of booked appointments matching every given parameter (values within one:
    OR); with `viewer`, only those that organisation may see (its own, and those no organisation owns)."""
    clauses: list[ColumnElement[bool]] = [Appointment.state == "booked"]
    if viewer is not None:
        clauses.append(or_(Appointment.owner == viewer, Appointment.owner.is_(None)))
    if patient_references:
        clauses.append(or_(*[
            or_(Appointment.patient_reference == ref, Appointment.patient_reference.endswith("/" + ref))
            for ref in patient_references
        ]))
    if patient_identifiers:
        clauses.append(or_(*[
            Appointment.patient_identifier == f"{system}|{value}" if system
            else Appointment.patient_identifier.endswith("|" + value)
            for system, value in patient_identifiers
        ]))
    clauses += [_date_clause(b) for b in dates]
    if statuses:
        clauses.append(Appointment.status.in_(statuses))
    if identifiers:
        ors: list[ColumnElement[bool]] = []
        for system, value in identifiers:
            if system:  # the key as sent, or as the viewer's own (hub.flows.appointment.scoped)
                ors.append(Appointment.source_key.in_([f"{system}|{value}", f"{viewer} {system}|{value}"]))
            else:
                ors.append(Appointment.source_key.endswith("|" + value))
            if system in (None, "http://vdx.medcom.dk/meeting"):
                ors.append(Appointment.id.in_(select(Meeting.appointment_id).where(Meeting.vdx_uuid == value)))
        clauses.append(or_(*ors) if ors else false())
    where = and_(*clauses)
    total = session.scalar(select(func.count()).select_from(Appointment).where(where)) or 0
    rows = session.execute(
        select(Appointment.resource, Appointment.owner).where(where).order_by(Appointment.start, Appointment.id)
        .limit(count).offset(offset)
    )
    return total, [(resource, owner) for resource, owner in rows]
