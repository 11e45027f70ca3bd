"""The store on SQLite and on a throwaway PostgreSQL: migrations, and booking end to end on each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect

from hub.api.app import create_app
from hub.api.server_thread import ServerThread
from hub.store.db import make_engine, migrate
from tests.appointments import iso, video_appointment
from tests.conftest import hub_settings
from tests.flows.test_appointment import FHIR
from tests.tokens import bearer


def test_migrations_create_every_table_and_are_repeatable(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"messages", "appointments", "meetings", "outbox", "alembic_version"} <= tables
    engine.dispose()


def test_booking_and_search_on_each_database(database_url: str, data_root: Path, tmp_path: Path,
                                            vdx: ServerThread) -> None:
    settings = hub_settings(data_root, tmp_path, vdx.url, database_url)
    with ServerThread(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30,
                                                                 headers=bearer(srv.url, settings)) as c:
        appt = video_appointment(patient={"identifier": {"system": "urn:oid:1.2.208.176.1.2",
                                                         "value": "0101804321"}})
        first = c.post("/fhir/Appointment", json=appt, headers=FHIR)
        assert first.status_code == 201, first.text
        assert c.post("/fhir/Appointment", json=appt, headers=FHIR).json()["id"] == first.json()["id"]
        found = c.get("/fhir/Appointment", params={"patient:identifier": "0101804321"}).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [first.json()["id"]]
        moved = first.json()
        later = datetime.fromisoformat(moved["end"].replace("Z", "+00:00")) + timedelta(minutes=15)
        moved["end"] = iso(later)
        assert c.put(f"/fhir/Appointment/{moved['id']}", json=moved, headers=FHIR).json()["meta"]["versionId"] == "2"
        cancel = b'[{"op": "replace", "path": "/status", "value": "cancelled"}]'
        cancelled = c.patch(f"/fhir/Appointment/{moved['id']}", content=cancel,
                            headers={"Content-Type": "application/json-patch+json"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert c.get("/fhir/Appointment", params={"status": "cancelled"}).json()["total"] == 1
        bad = c.post("/fhir/Appointment", content=b"{", headers=FHIR)
        assert bad.status_code == 400
        services: Any = srv.server.config.app.state.services
        with services.sessions() as s:
            from sqlalchemy import func, select

            from hub.store.models import Message

            assert s.scalar(select(func.count()).select_from(Message).where(Message.status == "rejected")) == 1
            assert s.scalar(select(Message.raw).where(Message.status == "rejected")) == b"{"


def test_group_commit_commits_every_unit_and_isolates_a_failing_one(tmp_path: Path) -> None:
    import threading

    from sqlalchemy import text

    from hub.store.commit import GroupCommit, Write
    from hub.store.db import WriterLock

    engine = make_engine(f"sqlite:///{tmp_path / 'g.sqlite'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    group = GroupCommit(engine, WriterLock(engine), max_batch=8)
    errors: list[Exception] = []

    def write(k: int) -> None:
        try:
            group.submit(Write([(text("INSERT INTO t VALUES (:k)"), [{"k": k}])]))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in [*range(40), 7]]  # 7 twice: one must fail
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    group.close()
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM t")).scalar_one() == 40
    assert len(errors) == 1 and "UNIQUE" in str(errors[0])


def _outbox_row(key: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"topic": "t", "ordering_key": key, "payload": {"k": key}, "status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now}


def test_store_writer_process_commits_for_many_threads_and_hands_failures_back(tmp_path: Path) -> None:
    """The writer process (what `hub serve` starts for SQLite): writes from many threads reach the database;
    a write it cannot commit comes back and runs its own `alone` here; a write that has none raises."""
    import threading

    from sqlalchemy import select, text

    from hub.store.commit import GroupCommit, Write
    from hub.store.db import WriterLock
    from hub.store.statements import INSERT_APPOINTMENT, INSERT_OUTBOX
    from hub.store.writer import WriteFailed, WriterClient, WriterProcess

    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    engine = make_engine(url)
    migrate(engine)
    process = WriterProcess(url, "WARNING")
    process.start()
    client = WriterClient(process.address, process.authkey, GroupCommit(engine, WriterLock(engine)))
    try:
        threads = [threading.Thread(target=client.submit, args=(Write([(INSERT_OUTBOX, [_outbox_row(str(k))])]),))
                   for k in range(30)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        now = datetime.now(UTC)
        claim = {"id": "a1", "source_key": "k1", "state": "pending", "status": "booked", "version": 1,
                 "resource": {}, "patient_reference": None, "patient_identifier": "0101804321", "start": now,
                 "end": now, "created_at": now, "updated_at": now}
        client.submit(Write([(INSERT_APPOINTMENT, [claim])]))
        looked: list[str] = []
        again = Write([(INSERT_APPOINTMENT, [{**claim, "id": "a2"}])],
                      alone=lambda conn: looked.append(conn.execute(text("SELECT id FROM appointments")).scalar_one()))
        client.submit(again)  # the source key is taken: the writer hands it back, and `alone` runs here
        assert looked == ["a1"]
        with pytest.raises(WriteFailed, match="UNIQUE") as failed:
            client.submit(Write([(INSERT_APPOINTMENT, [{**claim, "id": "a3"}])]))
        assert "0101804321" not in str(failed.value)  # the reason names the rule, not the rows
    finally:
        process.stop()
    client.submit(Write([(INSERT_OUTBOX, [_outbox_row("after")])]))  # writer gone: this process commits itself
    client.close()
    with engine.connect() as c:
        from hub.store.models import OutboxEntry

        keys = set(c.scalars(select(OutboxEntry.ordering_key)))
    assert keys == {*map(str, range(30)), "after"}
