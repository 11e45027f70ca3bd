"""The booking flow: a canonical meeting request becomes a VDX room, stored before anyone is answered.

Guarantees (DESIGN.md, principles 3 and 4):
- A room is never booked twice for one source key: the VDX meeting uuid and `externalId` are derived from the
  key, so a retry after a lost answer finds the room it already made (VDX code 21) instead of booking another.
- Nothing is half-booked: the appointment row is claimed (`pending`) before VDX is called and completed in the
  same transaction as the meeting row, the outbound messages and the outbox entry; if VDX fails part-way the
  room is deleted again and the claim marked failed, so a resend books afresh.
- VDX's rules are followed: a meeting changes only while AWAITS_PROVISION; once provisioned only its end time.
  A provisioned meeting that must move gets a new room and the old one is ended, and the answer says so.

The flow is format-neutral: the adapter passes `render`, which builds the stored and returned representation.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hub.core.errors import Conflict, HubError, NotFound, UpstreamError
from hub.core.model import BookingResult, MeetingRequest, Room
from hub.core.outcome import single
from hub.delivery.outbox import outbox_row
from hub.store import models as m
from hub.store.commit import Committer, GroupCommit, Write
from hub.store.db import WriterLock
from hub.store.statements import (
    APPOINTMENTS,
    INSERT_APPOINTMENT,
    INSERT_MEETING,
    INSERT_MESSAGE,
    INSERT_OUTBOX,
    MARK_BOOKED,
    MESSAGES,
)
from hub.video.client import Exchange, VdxClient, VdxError, VdxRefused

log = logging.getLogger("hub.booking")

# Namespace for the meeting uuids the hub derives from source keys (uuid5): stable across restarts.
MEETING_NAMESPACE = uuid.UUID("6f1f3f2e-7a53-4f59-9d43-5a8d7e3c2b10")
Inbound = dict[str, Any]  # the request message's columns: raw bytes, format, verdict, ...
Render = Callable[[str, int, datetime, Room | None, list[Room]], dict[str, Any]]
# (appointment id, its stored resource, the patient's system|value, now) → an outbox row, or None
Follower = Callable[[str, dict[str, Any], str | None, datetime], dict[str, Any] | None]

SELECT_BY_SOURCE = select(APPOINTMENTS.c.id, APPOINTMENTS.c.state, APPOINTMENTS.c.version,
                          APPOINTMENTS.c.resource).where(APPOINTMENTS.c.source_key == bindparam("b_key"))

AWAITS = "AWAITS_PROVISION"
PROVISIONED = "PROVISIONED_OK"


def external_id(source_key: str, generation: int) -> str:
    """VDX `externalId` for the n-th room of a booking: stable, fixed length, and free of personal data."""
    return str(uuid.uuid5(MEETING_NAMESPACE, f"{source_key}#{generation}"))


def meeting_uuid(source_key: str, generation: int, attempt: int) -> str:
    """VDX meeting uuid of one try (attempt) at the n-th room of a booking: a retry finds what it booked."""
    return str(uuid.uuid5(MEETING_NAMESPACE, f"{external_id(source_key, generation)}#{attempt}"))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def room_from_vdx(info: dict[str, Any], meeting: dict[str, Any]) -> Room:
    pins = {k: (str(info[k]) if info.get(k) is not None else None) for k in ("guestPin", "hostPin")}
    return Room(
        vdx_uuid=str(meeting["uuid"]),
        external_id=str(meeting.get("externalId") or ""),
        uri=str(info.get("uriWithDomain") or ""),
        guest_pin=pins["guestPin"],
        host_pin=pins["hostPin"],
        meeting_url=info.get("portalLink"),
        short_link=info.get("shortLink") or meeting.get("shortLink"),
        provision_status=str(info.get("provisionStatus") or AWAITS),
        start=_parse(meeting["startTime"]),
        end=_parse(meeting["endTime"]),
    )


def room_from_row(row: m.Meeting) -> Room:
    return Room(row.vdx_uuid, row.external_id, row.uri or "", row.guest_pin, row.host_pin, row.meeting_url,
                row.short_link, row.provision_status or AWAITS, row.start, row.end)


@dataclass
class BookingFlow:
    """Book, move and cancel video meetings. Thread-safe; one per process."""

    sessions: sessionmaker[Session]
    vdx: VdxClient
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    pending_wait_seconds: float = 10.0
    # Who commits the hot path's writes: this process's writer thread, unless `hub serve` gave the store a
    # writer process (hub.store.writer).
    committer: Committer | None = None
    # Who else hears of each change, by an outbox row written with it (the case index: hub.flows.case_index).
    followers: tuple[Follower, ...] = ()
    # Whether each change is announced as `meeting.*` (an outbox row): only where something delivers those (an
    # HL7 v2 scheduling receiver), so that no row waits `pending` for ever.
    announced: bool = True

    def __post_init__(self) -> None:
        self.engine: Engine = self.sessions.kw["bind"]
        self._write_lock = WriterLock(self.engine)
        self._group: Committer = self.committer or GroupCommit(self.engine, self._write_lock)

    def close(self) -> None:
        self._group.close()
        self.vdx.close()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction through the ORM (the less frequent paths)."""
        with self._write_lock, self.sessions.begin() as s:
            yield s

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One write transaction on a plain connection: the booking hot path skips the ORM's unit of work."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    # --- messages ----------------------------------------------------------------------------------------

    def _message_row(self, fields: Inbound, appointment_id: str | None) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "received_at": self.now(), "idempotency_key": None, "http_status": None,
                **fields, "appointment_id": appointment_id}

    def record_message(self, appointment_id: str | None = None, **fields: Any) -> str:
        """Store one message (raw bytes, verdict, ...) in its own transaction."""
        row = self._message_row(fields, appointment_id)
        with self._tx() as conn:
            conn.execute(INSERT_MESSAGE, [row])
        return str(row["id"])

    def _record_exchanges(self, s: Session | Connection, trace: list[Exchange], appointment_id: str) -> None:
        """The VDX calls a booking made, stored as outbound requests and inbound responses (one INSERT)."""
        rows = self._exchange_rows(trace, appointment_id)
        if rows:
            s.execute(INSERT_MESSAGE, rows)

    def _exchange_rows(self, trace: list[Exchange], appointment_id: str) -> list[dict[str, Any]]:
        """Each VDX call as two messages: the request (out) and the response (in)."""
        rows: list[dict[str, Any]] = []
        now = self.now()
        for ex in trace:
            common = {"channel": "vdx", "format": "vdx+json", "content_type": "application/json", "verdict": None,
                      "http_status": ex.status, "appointment_id": appointment_id, "received_at": now}
            sent = "sent" if ex.status is not None and ex.status < 400 else "failed"
            rows.append({**common, "id": str(uuid.uuid4()), "direction": "out", "operation": f"{ex.method} {ex.path}",
                         "raw": ex.request, "status": sent})
            rows.append({**common, "id": str(uuid.uuid4()), "direction": "in", "raw": ex.response,
                         "operation": f"response to {ex.method} {ex.path}", "status": "received"})
        return rows

    # --- reads -------------------------------------------------------------------------------------------

    def get(self, appointment_id: str, viewer: str | None = None) -> m.Appointment:
        """The booked appointment; with `viewer` (an organisation), only if it may see it — its owner's, or one no
        organisation owns — else NotFound, as if it did not exist."""
        with self.sessions() as s:
            row = s.get(m.Appointment, appointment_id)
            if row is None or row.state != "booked" or (viewer is not None and row.owner not in (None, viewer)):
                raise NotFound(f"Appointment/{appointment_id}")
            return row

    # --- book --------------------------------------------------------------------------------------------

    def book(self, req: MeetingRequest, render: Render, inbound: Inbound,
             patient: tuple[str | None, str | None] = (None, None), owner: str | None = None) -> BookingResult:
        """Book a room for a new request, or answer with the booking an earlier identical request made.

        `inbound` is the request message (raw bytes, verdict); it is stored in the claim's transaction. `owner`:
        the organisation booking (its source keys are its own: `AppointmentFlow.create` scopes them).
        """
        appointment_id = str(uuid.uuid4())
        message_id = str(inbound.setdefault("id", str(uuid.uuid4())))
        claimed, attempt = self._claim(appointment_id, req, patient, inbound, owner)
        if claimed is not None:
            return claimed
        trace: list[Exchange] = []
        try:
            room = self._create_room(req, 1, trace, attempt)
        except HubError as exc:
            self._fail(appointment_id, trace, message_id, exc.status)
            raise
        now = self.now()
        resource = render(appointment_id, 1, now, room, [])
        # Everything is prepared before the write lock is taken: the lock is held for the statements alone.
        meeting, exchanges = self._meeting_row(appointment_id, room, 1), self._exchange_rows(trace, appointment_id)
        outbox = [*self._announced("meeting.booked", appointment_id, req, room),
                  *self._followed(appointment_id, resource, patient[1], now)]

        self._group.submit(Write([(MARK_BOOKED, [{"b_id": appointment_id, "b_resource": resource, "b_now": now}]),
                                  (INSERT_MEETING, [meeting]), (INSERT_MESSAGE, exchanges),
                                  *([(INSERT_OUTBOX, outbox)] if outbox else [])]))
        # The formatter masks CPR numbers in every record (hub.core.logging), the patient key included.
        log.info("video meeting booked", extra={"appointment": appointment_id, "vdx_uuid": room.vdx_uuid,
                                                "patient": patient[1] or patient[0]})
        return BookingResult(appointment_id, resource, created=True)

    def _claim(self, appointment_id: str, req: MeetingRequest, patient: tuple[str | None, str | None],
               inbound: Inbound, owner: str | None = None) -> tuple[BookingResult | None, int]:
        """Insert the pending appointment, or find the booking that has this source key.

        Returns (earlier result, 0) or (None, attempt): the attempt number counts earlier failed tries, so each
        try asks VDX for its own meeting uuid (a room deleted after a failure keeps its uuid in VDX).
        While pending, the row's `version` holds that attempt number.
        """
        deadline = time.monotonic() + self.pending_wait_seconds
        now = self.now()
        claim: dict[str, Any] = {
            "id": appointment_id, "source_key": req.source_key, "state": "pending", "status": req.status,
            "version": 1, "resource": {}, "patient_reference": patient[0], "patient_identifier": patient[1],
            "start": req.start, "end": req.end, "created_at": now, "updated_at": now, "owner": owner}
        message = self._message_row(inbound, appointment_id)
        outcome: list[tuple[BookingResult | None, int]] = []

        def look_first(conn: Connection) -> None:
            existing = conn.execute(SELECT_BY_SOURCE, {"b_key": req.source_key}).first()
            if existing is not None and existing.state == "booked":
                conn.execute(INSERT_MESSAGE, [{**message, "appointment_id": existing.id}])
                outcome.append((BookingResult(existing.id, existing.resource, created=False), 0))
            elif existing is None or existing.state == "failed":
                version = existing.version + 1 if existing is not None else 1
                if existing is not None:
                    conn.execute(APPOINTMENTS.delete().where(APPOINTMENTS.c.id == existing.id))
                conn.execute(INSERT_APPOINTMENT, [{**claim, "version": version}])
                conn.execute(INSERT_MESSAGE, [message])
                outcome.append((None, version))
            else:
                outcome.append((None, -1))  # pending: another request is booking this key right now

        # The common case, a new source key, needs no read: the insert claims the key, and a taken key fails the
        # batch, whose units then run one by one, this one through `look_first`.
        claim_write = Write([(INSERT_APPOINTMENT, [claim]), (INSERT_MESSAGE, [message])], look_first)
        while True:
            outcome.clear()
            try:
                self._group.submit(claim_write)
                if not outcome:
                    return None, 1
                if outcome[0][1] != -1:
                    return outcome[0]
            except IntegrityError:
                pass  # another process claimed the key between our read and insert: look again
            if time.monotonic() > deadline:
                self.record_message(**{**inbound, "status": "failed", "http_status": 409})
                raise Conflict(single("conflict", "The same appointment is being booked by another request; "
                                      "retry shortly"), status=409)
            time.sleep(0.05)

    def _create_room(self, req: MeetingRequest, generation: int, trace: list[Exchange], attempt: int = 1) -> Room:
        ext_id = external_id(req.source_key, generation)
        vdx_uuid = meeting_uuid(req.source_key, generation, attempt)
        body: dict[str, Any] = {
            "uuid": vdx_uuid,
            "externalId": ext_id,
            "subject": req.subject,
            "startTime": _iso(req.start),
            "endTime": _iso(req.end),
        }
        if req.max_participants is not None:
            body["maxParticipants"] = req.max_participants
        if req.end_meeting_on_end_time is not None:
            body["endMeetingOnEndTime"] = req.end_meeting_on_end_time
        try:
            try:
                meeting = self.vdx.create_meeting(body, trace)
            except VdxRefused as exc:
                if exc.code not in ("21", "10"):
                    raise
                # 21: the externalId is taken; 10 may mean the uuid is. Either way an earlier try of this same
                # request may have booked the room and lost the answer: reuse that room if it is ours.
                existing = self._existing(vdx_uuid, ext_id, trace)
                if existing is None:
                    raise
                meeting = existing
            info = self.vdx.scheduling_info(str(meeting["uuid"]), trace)
        except VdxRefused as exc:
            raise HubError(single("processing", f"VDX refused the booking: {exc.text} (code {exc.code})"),
                           status=422) from None
        except VdxError as exc:
            self._delete_quietly(vdx_uuid, trace)
            raise _unavailable(exc) from None
        return room_from_vdx(info, meeting)

    def _existing(self, vdx_uuid: str, ext_id: str, trace: list[Exchange]) -> dict[str, Any] | None:
        try:
            meeting = self.vdx.get_meeting(vdx_uuid, trace)
        except VdxRefused as exc:
            if exc.status != 404:
                raise
            return None
        return meeting if meeting.get("externalId") == ext_id else None

    def _delete_quietly(self, vdx_uuid: str, trace: list[Exchange]) -> None:
        # Nothing was created, or VDX is down: then a resend finds the room through code 21.
        with suppress(VdxError, VdxRefused):
            self.vdx.delete_meeting(vdx_uuid, trace)

    def _fail(self, appointment_id: str, trace: list[Exchange], message_id: str, status: int) -> None:
        with self._tx() as s:
            s.execute(APPOINTMENTS.update().where(APPOINTMENTS.c.id == appointment_id).values(state="failed"))
            s.execute(MESSAGES.update().where(MESSAGES.c.id == message_id).values(status="failed", http_status=status))
            self._record_exchanges(s, trace, appointment_id)

    def _meeting_row(self, appointment_id: str, room: Room, generation: int) -> dict[str, Any]:
        now = self.now()
        return {
            "vdx_uuid": room.vdx_uuid, "appointment_id": appointment_id, "generation": generation,
            "external_id": room.external_id or room.vdx_uuid, "state": "active", "uri": room.uri,
            "guest_pin": room.guest_pin, "host_pin": room.host_pin, "meeting_url": room.meeting_url,
            "short_link": room.short_link, "provision_status": room.provision_status, "start": room.start,
            "end": room.end, "created_at": now, "updated_at": now}

    def _announced(self, topic: str, appointment_id: str, req: MeetingRequest, room: Room | None
                   ) -> list[dict[str, Any]]:
        return [self._outbox_row(topic, appointment_id, req, room)] if self.announced else []

    def _outbox_row(self, topic: str, appointment_id: str, req: MeetingRequest, room: Room | None) -> dict[str, Any]:
        """An outbox entry: deliveries later issues make (case index, notifications), in order per appointment."""
        payload: dict[str, Any] = {"appointment": appointment_id, "start": _iso(req.start), "end": _iso(req.end),
                                   "status": req.status}
        if room is not None:
            payload |= {"vdx_uuid": room.vdx_uuid, "uri": room.uri}
        return outbox_row(topic, appointment_id, payload, self.now())

    def _followed(self, appointment_id: str, resource: dict[str, Any], patient_identifier: str | None,
                  now: datetime) -> list[dict[str, Any]]:
        return [row for follow in self.followers if (row := follow(appointment_id, resource, patient_identifier, now))]

    # --- settle ------------------------------------------------------------------------------------------

    def settle_pending(self, older_than: timedelta) -> int:
        """Settle bookings left `pending` by a process that stopped between claiming and completing them.

        Such a claim may have a room in VDX that no stored appointment points at, and it makes every resend of
        its request wait and fail with 409. Its room's uuid follows from the claim (source key and attempt), so
        the room is deleted, or ended at once where VDX no longer allows deleting it, and the claim is marked
        failed: a resend then books afresh, with the next attempt's uuid. A claim stays pending while VDX cannot
        be reached. `older_than` must be well beyond the longest booking (VDX timeout times retries); the
        housekeeping default is five minutes. Returns how many claims were settled.
        """
        cutoff = self.now() - older_than
        with self.sessions() as s:
            stale = s.execute(select(APPOINTMENTS.c.id, APPOINTMENTS.c.source_key, APPOINTMENTS.c.version,
                                     APPOINTMENTS.c.start)
                              .where(APPOINTMENTS.c.state == "pending", APPOINTMENTS.c.updated_at < cutoff)).all()
        settled = 0
        for row in stale:
            trace: list[Exchange] = []
            vdx_uuid = meeting_uuid(row.source_key, 1, row.version)
            try:
                self._remove_room(vdx_uuid, row.start, trace)
            except VdxError as exc:
                log.warning("pending booking not settled, VDX unavailable", extra={"appointment": row.id,
                                                                                  "error": str(exc)})
                continue
            with self._tx() as conn:
                done = conn.execute(APPOINTMENTS.update().where(APPOINTMENTS.c.id == row.id,
                                                                APPOINTMENTS.c.state == "pending")
                                    .values(state="failed", updated_at=self.now()))
                self._record_exchanges(conn, trace, row.id)
            settled += done.rowcount
            log.warning("pending booking settled: its room removed, the claim marked failed",
                        extra={"appointment": row.id, "vdx_uuid": vdx_uuid})
        return settled

    def _remove_room(self, vdx_uuid: str, start: datetime, trace: list[Exchange]) -> None:
        """Delete a room, or end it now if VDX refuses (provisioned); nothing to do if VDX does not know it."""
        try:
            self.vdx.delete_meeting(vdx_uuid, trace)
        except VdxRefused as exc:
            if exc.status == 404:
                return
            end = max(self.now(), start) + timedelta(minutes=1)
            with suppress(VdxRefused):  # already over: nothing left to end
                self.vdx.patch_meeting(vdx_uuid, {"endTime": _iso(end)}, trace)

    # --- change ------------------------------------------------------------------------------------------

    def _active(self, s: Session, appointment_id: str) -> tuple[m.Appointment, m.Meeting | None, list[m.Meeting]]:
        row = s.get(m.Appointment, appointment_id)
        if row is None or row.state != "booked":
            raise NotFound(f"Appointment/{appointment_id}")
        meetings = list(s.scalars(select(m.Meeting).where(m.Meeting.appointment_id == appointment_id)
                                  .order_by(m.Meeting.generation)))
        active = next((mt for mt in meetings if mt.state == "active"), None)
        return row, active, [mt for mt in meetings if mt.state != "active"]

    def room(self, appointment_id: str) -> Room | None:
        """The booking's active room (none once cancelled); NotFound for an unknown booking."""
        with self.sessions() as s:
            _, active, _ = self._active(s, appointment_id)
            return room_from_row(active) if active is not None else None

    def booked_by(self, source_key: str) -> str | None:
        """The id of the booking made for this source key, if it is booked."""
        with self.engine.connect() as conn:
            found = conn.execute(SELECT_BY_SOURCE, {"b_key": source_key}).first()
        return str(found.id) if found is not None and found.state == "booked" else None

    def update(self, appointment_id: str, req: MeetingRequest, render: Render, inbound: Inbound,
               patient: tuple[str | None, str | None] = (None, None)) -> BookingResult:
        """Apply a changed request: cancel, move, or only restate it, as VDX's rules allow."""
        try:
            return self._update(appointment_id, req, render, inbound, patient)
        except HubError as exc:
            self.record_message(appointment_id, **{**inbound, "status": "failed", "http_status": exc.status})
            raise

    def _update(self, appointment_id: str, req: MeetingRequest, render: Render, inbound: Inbound,
                patient: tuple[str | None, str | None]) -> BookingResult:
        with self.sessions() as s:
            row, active, old = self._active(s, appointment_id)
        trace: list[Exchange] = []
        notes: list[str] = []
        old_rooms = [room_from_row(mt) for mt in old]
        room = room_from_row(active) if active else None
        ended: list[Room] = []
        try:
            if req.status in ("cancelled", "entered-in-error", "noshow") and active is not None:
                notes += self._release(active, trace)
                ended.append(room_from_row(active))
                room = None
            elif active is not None and (req.start != row.start or req.end != row.end):
                room, moved_notes, replaced = self._move(active, req, trace)
                notes += moved_notes
                if replaced:
                    ended.append(replaced)
        except VdxError as exc:
            raise _unavailable(exc) from None
        except VdxRefused as exc:
            raise HubError(single("processing", f"VDX refused the change: {exc.text} (code {exc.code})"),
                           status=422) from None
        now = self.now()
        with self._write() as s:
            row, active_row, _ = self._active(s, appointment_id)
            version = row.version + 1
            resource = render(appointment_id, version, now, room, old_rooms + ended)
            row.version, row.resource, row.status, row.updated_at = version, resource, req.status, now
            row.start, row.end = req.start, req.end
            row.patient_reference, row.patient_identifier = patient
            for r in ended:
                mt = s.get(m.Meeting, r.vdx_uuid)
                if mt is not None:
                    mt.state = "deleted" if r.provision_status == AWAITS else "ended"
                    mt.end, mt.updated_at = r.end, now
            if room is not None:
                mt = s.get(m.Meeting, room.vdx_uuid)
                if mt is None:
                    s.execute(INSERT_MEETING, [self._meeting_row(appointment_id, room,
                                                                    len(old_rooms) + len(ended) + 1)])
                else:
                    mt.start, mt.end, mt.provision_status, mt.updated_at = room.start, room.end, \
                        room.provision_status, now
            self._record_exchanges(s, trace, appointment_id)
            s.execute(INSERT_MESSAGE, [self._message_row(inbound, appointment_id)])
            topic = "meeting.cancelled" if room is None else "meeting.updated"
            rows = [*self._announced(topic, appointment_id, req, room),
                    *self._followed(appointment_id, resource, patient[1], now)]
            if rows:
                s.execute(INSERT_OUTBOX, rows)
        return BookingResult(appointment_id, resource, created=False, notes=notes)

    def _release(self, active: m.Meeting, trace: list[Exchange]) -> list[str]:
        """Give a cancelled meeting's room back: delete it while VDX allows, otherwise end it now."""
        try:
            self.vdx.delete_meeting(active.vdx_uuid, trace)
            active.provision_status = AWAITS
            return ["The video room was deleted in VDX."]
        except VdxRefused as exc:
            if exc.status == 404:
                return ["The video room no longer exists in VDX."]
            if exc.code != "13":  # 13: deleting needs AWAITS_PROVISION; anything else is a real refusal
                raise
        info = self.vdx.scheduling_info(active.vdx_uuid, trace)
        active.provision_status = str(info.get("provisionStatus"))
        if active.provision_status != PROVISIONED:
            return [f"The video room is {active.provision_status} in VDX and needs no change."]
        active.end = self._end_now(active, trace)
        return [f"VDX does not delete a provisioned room: the room now ends at {_iso(active.end)}."]

    def _end_now(self, meeting: m.Meeting, trace: list[Exchange]) -> datetime:
        """End a provisioned room early, the one change VDX then allows; returns its end time.

        The end is a minute from now (or from the start, if that is still ahead): VDX wants the end after the start.
        """
        end = max(self.now(), meeting.start) + timedelta(minutes=1)
        if end >= meeting.end:
            return meeting.end
        self.vdx.patch_meeting(meeting.vdx_uuid, {"endTime": _iso(end)}, trace)
        return end

    def _move(self, active: m.Meeting, req: MeetingRequest, trace: list[Exchange]) -> tuple[Room, list[str],
                                                                                               Room | None]:
        info = self.vdx.scheduling_info(active.vdx_uuid, trace)
        status = str(info.get("provisionStatus"))
        body = {"subject": req.subject, "startTime": _iso(req.start), "endTime": _iso(req.end)}
        try:
            if status == AWAITS:
                meeting = self.vdx.update_meeting(active.vdx_uuid, body, trace)
                info = self.vdx.scheduling_info(active.vdx_uuid, trace)
                return room_from_vdx(info, meeting), [], None
            if status == PROVISIONED and req.start == active.start:
                meeting = self.vdx.patch_meeting(active.vdx_uuid, {"endTime": _iso(req.end)}, trace)
                info = self.vdx.scheduling_info(active.vdx_uuid, trace)
                return room_from_vdx(info, meeting), ["The room was provisioned: only its end time changed."], None
        except VdxRefused as exc:
            if exc.code != "12":
                raise
            # Provisioned between our look and the update: fall through to a new room.
        generation = active.generation + 1
        new_room = self._create_room(req, generation, trace)
        old = room_from_row(active)
        notes = [f"VDX could not move the provisioned room {active.vdx_uuid}: a new room was booked "
                 "with new links and PINs"]
        if status == PROVISIONED:
            try:
                old = replace(old, end=self._end_now(active, trace))
                notes[0] += ", and the old room was ended."
            except VdxRefused as exc:
                notes[0] += f"; VDX refused to end the old room early ({exc.text})."
        else:
            notes[0] += "."
        return new_room, notes, replace(old, provision_status=status)


def _unavailable(exc: VdxError) -> UpstreamError:
    """VDX did not answer: a 503 the client may retry, which names no internal address (the log has the detail)."""
    log.warning("VDX is unavailable: %s", exc)
    return UpstreamError(single("transient", "VDX is unavailable (it did not answer); try again later"), status=503)
