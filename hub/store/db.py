"""Engine, sessions and migrations.

Alembic migrations run at start (`migrate`), on SQLite and PostgreSQL alike. SQLite runs in WAL mode with a
busy timeout so concurrent request threads queue instead of failing.
"""

from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert

from hub.core.metrics import MESSAGES

MIGRATIONS = Path(__file__).parent / "migrations"
# JSON columns (resources, verdicts) through orjson: several times faster than the standard library.
_JSON: dict[str, Any] = {"json_serializer": lambda obj: orjson.dumps(obj).decode(), "json_deserializer": orjson.loads}


def make_engine(url: str) -> Engine:
    engine = _engine(url)
    event.listen(engine, "after_execute", _count_messages)
    return engine


def _count_messages(_conn: Any, clause: Any, multiparams: Any, params: Any, *_rest: Any) -> None:
    count_messages(clause, multiparams or [params])


def count_messages(statement: Any, rows: Any) -> None:
    """Each message the store writes, counted by channel, direction and outcome (`hub_messages_total`): from
    SQLAlchemy's execute events, and from the group commit, which writes past them (`hub.store.commit`)."""
    if not (isinstance(statement, Insert) and statement.table.name == "messages"):
        return
    for row in rows:
        if isinstance(row, dict):
            MESSAGES.labels(row.get("channel", ""), row.get("direction", ""), row.get("status", "")).inc()


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **_JSON)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=20, max_overflow=10, pool_pre_ping=True, **_JSON)


class WriterLock:
    """One SQLite writer at a time, across threads and across worker processes.

    SQLite's own busy handler makes waiting writers sleep and retry, which gives long latency tails under
    concurrency; queueing them on a lock (a thread lock, then an exclusive `flock` on a file beside the database)
    hands the database from one writer to the next at once. Other databases need no lock.
    """

    def __init__(self, engine: Engine) -> None:
        self._thread_lock = threading.Lock()
        self._file: Path | None = None
        self._fd: int | None = None
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database and database != ":memory:":
            self._file = Path(database).with_suffix(".writer-lock")

    def __enter__(self) -> None:
        if self._file is None:
            return
        self._thread_lock.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        if self._file is None:
            return
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


@contextmanager
def only_one(engine: Engine, name: str) -> Iterator[bool]:
    """Whether this process holds `name` for the block, across every process on the database (False: another
    does): a PostgreSQL session advisory lock, or for SQLite a `flock` on a file beside it. Work that several
    hub instances would otherwise all do (housekeeping) runs once at a time."""
    with _exclusive(engine, name, wait=False) as held:
        yield held


@contextmanager
def _exclusive(engine: Engine, name: str, *, wait: bool) -> Iterator[bool]:
    """`name` held for the block; without `wait`, False at once when another process holds it."""
    if engine.dialect.name == "postgresql":
        key = zlib.crc32(name.encode())
        with engine.connect() as conn:
            lock = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            held = conn.execute(text(f"SELECT {lock}(:k)"), {"k": key}).scalar() is not False
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    path = Path(database).with_suffix(f".{name.replace(' ', '-')}-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration, under a lock waited for (an advisory lock on PostgreSQL, a file
    lock on SQLite): instances starting together (compose.yaml) migrate one after the other, the later finding
    nothing left to do."""
    with _exclusive(engine, "migrations", wait=True):
        command.upgrade(alembic_config(engine), "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
