"""Several hub instances on one database: outbox rows delivered once, housekeeping by one at a time, duplicates
recognised whichever instance gets them. Each instance is its own engine (its own connections), as two `hub serve`
processes would be."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from hub.api.app import create_app
from hub.api.server_thread import ServerThread
from hub.delivery.outbox import outbox_row
from hub.delivery.worker import OutboxWorker
from hub.store.db import make_engine, migrate, only_one
from hub.store.statements import INSERT_OUTBOX
from tests.appointments import video_appointment
from tests.conftest import hub_settings
from tests.flows.test_appointment import FHIR
from tests.tokens import bearer


def test_instances_starting_together_migrate_one_after_the_other(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(migrate, engines))  # raises if two created the same table
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_only_one_instance_holds_a_named_lock(database_url: str) -> None:
    first, second = make_engine(database_url), make_engine(database_url)
    migrate(first)
    with only_one(first, "housekeeping") as mine:
        assert mine
        with only_one(second, "housekeeping") as theirs:
            assert not theirs
        with only_one(second, "something else") as other:
            assert other
    with only_one(second, "housekeeping") as now_theirs:
        assert now_theirs


def test_two_instances_deliver_every_outbox_row_once(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(2)]
    migrate(engines[0])
    past = datetime.now(UTC) - timedelta(seconds=1)
    with engines[0].begin() as conn:
        conn.execute(INSERT_OUTBOX, [outbox_row("t", f"key-{i % 40}", {"n": i}, past) for i in range(200)])
    delivered: list[tuple[int, int]] = []
    lock = threading.Lock()

    def handler_of(instance: int) -> Any:
        def deliver(payload: dict[str, Any]) -> None:
            with lock:
                delivered.append((instance, payload["n"]))
        return deliver

    workers = [OutboxWorker(engine, {"t": handler_of(i)}, concurrency=4) for i, engine in enumerate(engines)]

    def drain(worker: OutboxWorker) -> None:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while len(delivered) < 200 and datetime.now(UTC) < deadline:
            worker.run_once(limit=20)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(drain, workers))
    counts = Counter(n for _, n in delivered)
    assert sorted(counts) == list(range(200)) and set(counts.values()) == {1}  # none lost, none twice
    assert {instance for instance, _ in delivered} == {0, 1}  # both took part
    by_key: dict[int, list[int]] = {}
    for _, n in delivered:
        by_key.setdefault(n % 40, []).append(n)
    assert all(ns == sorted(ns) for ns in by_key.values())  # each key's rows in the order written
    for worker in workers:
        worker.stop()


def test_a_booking_sent_to_two_instances_books_one_room(data_root: Path, tmp_path: Path, vdx: Any,
                                                        database_url: str) -> None:
    appt = video_appointment()
    instances = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        settings = hub_settings(data_root, folder, vdx.url, database_url)
        instances.append(ServerThread(create_app(settings)))
    with instances[0] as a, instances[1] as b, ThreadPoolExecutor(6) as pool:
        auth = bearer(a.url, settings)  # one client, its token good at either instance: they share the issuer
        answers = list(pool.map(lambda url: httpx.post(f"{url}/fhir/Appointment", json=appt,
                                                       headers={**FHIR, **auth}, timeout=60), [a.url, b.url] * 3))
        assert {r.status_code for r in answers} <= {200, 201, 409}, [r.text for r in answers]
        ids = {r.json()["id"] for r in answers if r.status_code in (200, 201)}
        assert len(ids) == 1
        window = {"from-start-time": "2000-01-01T00:00:00Z", "to-start-time": "2100-01-01T00:00:00Z"}
        assert len(vdx.client.get("/v2/meetings", params=window).json()) == 1  # one room in VDX
