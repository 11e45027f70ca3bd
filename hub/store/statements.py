"""The hot path's write statements, built once and known by name.

SQLAlchemy memoises a statement's cache key on the statement object, so reusing one object skips that work on
every booking. The names let a write cross to the store's writer process (`hub.store.writer`), which looks the
same statements up on its side.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Executable, Table, bindparam

from hub.store import models as m

MESSAGES = cast(Table, m.Message.__table__)
APPOINTMENTS = cast(Table, m.Appointment.__table__)
MEETINGS = cast(Table, m.Meeting.__table__)
OUTBOX = cast(Table, m.OutboxEntry.__table__)
RECEIVED = cast(Table, m.ReceivedMessage.__table__)
ENCOUNTER_EVENTS = cast(Table, m.EncounterEventRow.__table__)
CONVERSIONS = cast(Table, m.ConversionRow.__table__)
CONVERSION_LETTERS = cast(Table, m.ConversionLetterRow.__table__)
PENDING_LETTERS = cast(Table, m.PendingLetterRow.__table__)

INSERT_MESSAGE = MESSAGES.insert()
INSERT_APPOINTMENT = APPOINTMENTS.insert()
INSERT_MEETING = MEETINGS.insert()
INSERT_OUTBOX = OUTBOX.insert()
INSERT_RECEIVED = RECEIVED.insert()
INSERT_ENCOUNTER_EVENT = ENCOUNTER_EVENTS.insert()
# A patient merged into another (HL7 v2 A40): every stay of the one is the other's
MERGE_PATIENT = (ENCOUNTER_EVENTS.update().where(ENCOUNTER_EVENTS.c.patient_identifier == bindparam("m_gone"))
                 .values(patient_identifier=bindparam("m_kept")))
MARK_BOOKED = (APPOINTMENTS.update().where(APPOINTMENTS.c.id == bindparam("b_id"))
               .values(state="booked", resource=bindparam("b_resource"), version=1, updated_at=bindparam("b_now")))

BY_NAME: dict[str, Executable] = {
    "insert_message": INSERT_MESSAGE,
    "insert_appointment": INSERT_APPOINTMENT,
    "insert_meeting": INSERT_MEETING,
    "insert_outbox": INSERT_OUTBOX,
    "mark_booked": MARK_BOOKED,
}
_NAMES = {id(stmt): name for name, stmt in BY_NAME.items()}


def name_of(statement: Executable) -> str:
    """The statement's name; only the statements above can be sent to the writer process."""
    try:
        return _NAMES[id(statement)]
    except KeyError:
        raise ValueError(f"not a named statement: {statement}") from None
