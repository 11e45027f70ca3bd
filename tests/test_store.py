"""The store on SQLite and on a throwaway PostgreSQL: migrations, and booking end to end on each."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import inspect

from hub.api.app import create_app
from hub.api.server_thread import ServerThread
from hub.store.db import make_engine, migrate
from tests.appointments import iso, video_appointment
from tests.conftest import hub_settings
from tests.test_booking_api import FHIR


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
    with ServerThread(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
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

    from hub.store.db import GroupCommit, WriterLock

    engine = make_engine(f"sqlite:///{tmp_path / 'g.sqlite'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    group = GroupCommit(engine, WriterLock(engine), max_batch=8)
    errors: list[Exception] = []

    def write(k: int) -> None:
        try:
            group.submit(lambda conn: conn.execute(text("INSERT INTO t VALUES (:k)"), {"k": k}))
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
