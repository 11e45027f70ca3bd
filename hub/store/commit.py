"""Group commit: the booking hot path's writes, from many threads, committed together.

Under load several bookings reach the database at once. One transaction for all of them takes the write lock
once, pays for one commit, and runs each statement once for all their rows (`executemany`). What limits
SQLite's throughput is the time its one write lock is held, so the writing under it is kept lean: statements are
compiled once per set of columns and run on the driver's connection directly, without SQLAlchemy's per-row
work, and everything else (building rows, rendering resources) happens before a write is submitted.

A caller blocks until its write is committed, so "persist before answering" holds. If a batch fails (a unique
key taken, say), its writes are retried one by one, each in its own transaction, so each caller gets its own
outcome.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import ClauseElement, Connection, Engine, Executable, Insert, PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

from hub.store.db import WriterLock, count_messages

Rows = list[dict[str, Any]]
Steps = Sequence[tuple[Executable, Rows]]


@dataclass(frozen=True)
class Write:
    """One caller's share of a group commit.

    `steps` are statements with their rows, run in order. In a batch, the writes' steps of the same shape are
    merged: one `executemany` per statement for all of them. When a batch fails each write gets a transaction
    of its own, and `alone` (when given) runs there instead of the steps: that is where a write may look before
    it writes, e.g. to find the row whose unique key made the batch fail.
    """

    steps: Steps
    alone: Callable[[Connection], None] | None = None

    def run_alone(self, conn: Connection) -> None:
        if self.alone is not None:
            self.alone(conn)
            return
        for statement, rows in self.steps:
            conn.execute(statement, rows)


class Committer(Protocol):
    """Commits writes for the threads of a process: `GroupCommit`, or the store writer process's client."""

    def submit(self, write: Write) -> None: ...

    def close(self) -> None: ...


def merged(writes: list[Write]) -> list[tuple[Executable, Rows]]:
    """The writes' steps as one list of rows per statement and set of columns, in an order that is safe.

    The writes of one batch were submitted by different threads at the same time, so none depends on another
    and their order is free: writes of the same shape run together, each step's rows from all of them at once.
    """
    shapes: dict[tuple[int, ...], list[Write]] = {}
    for w in writes:
        shapes.setdefault(tuple(id(stmt) for stmt, _ in w.steps), []).append(w)
    out: list[tuple[Executable, Rows]] = []
    for group in shapes.values():
        for position, (statement, _) in enumerate(group[0].steps):
            by_columns: dict[tuple[str, ...], Rows] = {}
            for w in group:
                for row in w.steps[position][1]:
                    by_columns.setdefault(tuple(row), []).append(row)
            out.extend((statement, rows) for rows in by_columns.values())
    return out


_Params = Callable[[dict[str, Any]], Any]


def _same(value: Any) -> Any:
    return value


class BatchWriter:
    """Commits batches of writes on one driver connection, held for the writer's life."""

    def __init__(self, engine: Engine, lock: WriterLock) -> None:
        self.engine, self.lock = engine, lock
        self._prepared: dict[tuple[int, tuple[str, ...]], tuple[str, _Params] | None] = {}
        self._raw: PoolProxiedConnection | None = None  # kept: dropping it would hand the connection back

    def _prepare(self, statement: Executable, columns: tuple[str, ...]) -> tuple[str, _Params] | None:
        """SQL and a row → driver parameters function, or None where SQLAlchemy must run the statement (an
        insert whose missing columns have Python-side defaults)."""
        key = (id(statement), columns)
        if key not in self._prepared:
            dialect = self.engine.dialect
            clause = cast(ClauseElement, statement)
            compiled = cast(SQLCompiler, clause.compile(dialect=dialect, column_keys=list(columns)))
            if isinstance(statement, Insert) and getattr(compiled, "insert_prefetch", None):
                self._prepared[key] = None
                return None
            processors = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                          for name, bind in compiled.binds.items()}
            order = list(compiled.positiontup or compiled.binds)
            if not set(columns) <= set(order):
                raise ValueError(f"columns {columns} are not all parameters of {compiled.string}")
            # Values the statement itself carries (e.g. `.values(state="booked")`), processed once.
            fixed = {n: (processors[n] or _same)(compiled.binds[n].value) for n in order if n not in columns}
            plan = [(n, processors[n] or _same, n in fixed) for n in order]
            positional = compiled.positiontup is not None

            def params(row: dict[str, Any]) -> Any:
                values = [fixed[n] if is_fixed else process(row[n]) for n, process, is_fixed in plan]
                return tuple(values) if positional else dict(zip(order, values, strict=True))

            self._prepared[key] = (compiled.string, params)
        return self._prepared[key]

    def commit(self, writes: list[Write]) -> None:
        """All the writes in one transaction; raises, having rolled back, if any of them fails."""
        work = [(statement, rows, self._prepare(statement, tuple(rows[0])))
                for statement, rows in merged(writes) if rows]
        if any(prepared is None for _, _, prepared in work):
            with self.lock, self.engine.begin() as conn:  # rare: defaults to fill in, which SQLAlchemy does
                for statement, rows, _ in work:
                    conn.execute(statement, rows)
            return
        with self.lock:
            if self._raw is None:
                self._raw = self.engine.raw_connection()
            try:
                cursor = self._raw.cursor()
                for _, rows, prepared in work:
                    assert prepared is not None
                    sql, params = prepared
                    cursor.executemany(sql, [params(r) for r in rows])
                cursor.close()
                self._raw.commit()
            except BaseException:
                self._raw.rollback()
                raise
        for statement, rows, _ in work:  # written past SQLAlchemy's events: counted here
            count_messages(statement, rows)

    def alone(self, write: Write) -> None:
        """`write` in a transaction of its own, through SQLAlchemy (its `alone` if it has one)."""
        with self.lock, self.engine.begin() as conn:
            write.run_alone(conn)

    def commit_each(self, writes: list[Write]) -> list[Exception | None]:
        """Commit the batch; if it fails, each write alone. What each write's caller gets: None or the error."""
        try:
            self.commit(writes)
            return [None] * len(writes)
        except Exception:
            results: list[Exception | None] = []
            for w in writes:
                try:
                    self.alone(w)
                    results.append(None)
                except Exception as exc:
                    results.append(exc)
            return results

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None


_Unit = tuple[Write, Future[None]]
_STOP: _Unit = (Write(()), Future())


class GroupCommit:
    """A `Committer` for one process: one writer thread commits whatever the process's threads have queued."""

    def __init__(self, engine: Engine, lock: WriterLock, max_batch: int = 32) -> None:
        self.writer, self.max_batch = BatchWriter(engine, lock), max_batch
        self._queue: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hub-group-commit", daemon=True)
        self._thread.start()

    def submit(self, write: Write) -> None:
        """Commit `write` and return once it is committed (or raise what it raised)."""
        done: Future[None] = Future()
        self._queue.put((write, done))
        done.result()

    def alone(self, write: Write) -> None:
        self.writer.alone(write)

    def close(self) -> None:
        """Stop the writer thread once the writes queued so far are committed."""
        self._queue.put(_STOP)
        self._thread.join(10)
        self.writer.close()

    def _next_batch(self) -> list[_Unit] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(item)  # commit this batch first, then stop
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            results = self.writer.commit_each([w for w, _ in batch])
            for (_, done), error in zip(batch, results, strict=True):
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
