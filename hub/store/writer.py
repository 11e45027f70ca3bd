"""The store's writer process: one process commits the booking hot path's writes for every API worker.

Why a process: SQLite admits one writer at a time. A writer thread inside a busy API worker shares the
interpreter lock with the request threads and waits for it at every statement and at the commit, all the while
holding the database's write lock; measured at 16 concurrent clients the lock was held two to three times as
long as the writing took, the two workers' writer threads queued for it in turn, and a booking spent some 40 of
its 75 ms waiting for its two commits. A process of its own holds the lock only for the writing.

Writes travel as statement names (hub.store.statements) and rows over a Unix socket that only the hub's user
can open, with an authentication key handed to the workers in their environment. Each worker thread keeps its
own connection and waits for its write's commit, so "persist before answering" holds as before; the writer
process batches what all connections send through the same `GroupCommit` a worker would use.

`hub serve` starts the process for a SQLite file database; PostgreSQL takes concurrent writers itself and is
written to from the workers directly.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import pickle
import secrets
import shutil
import signal
import tempfile
import threading
from multiprocessing.connection import Client, Connection, Listener, wait
from multiprocessing.process import BaseProcess
from typing import Any

from hub.core.errors import UpstreamError
from hub.core.outcome import single
from hub.store.commit import BatchWriter, GroupCommit, Write
from hub.store.db import WriterLock, make_engine
from hub.store.statements import BY_NAME, name_of

log = logging.getLogger("hub.store.writer")

ADDRESS_VAR, KEY_VAR = "HUB_STORE_WRITER", "HUB_STORE_WRITER_KEY"


class WriteFailed(Exception):
    """The writer process could not commit a write (its reason, without the rows)."""


# --- the writer process -------------------------------------------------------------------------------------


def _reason(exc: Exception) -> str:
    # A database error's own text names the rule broken; SQLAlchemy's wrapper would add the rows, CPR included.
    return f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"


def _accept(listener: Listener, incoming: list[Connection], wake: Connection) -> None:
    while True:
        try:
            conn = listener.accept()
        except (OSError, multiprocessing.AuthenticationError) as exc:
            if isinstance(exc, OSError) and exc.errno in (errno.EBADF, errno.EINVAL):
                return  # the listener was closed: the process is stopping
            log.warning("store writer refused a connection: %s", exc)
            continue
        incoming.append(conn)
        wake.send_bytes(b"!")


def _loop(writer: BatchWriter, listener: Listener) -> None:
    """Serve every worker connection from one thread: wait for requests, commit them as one batch, answer.

    One thread and no hand-offs: whatever arrived while a batch was being committed is the next batch. Each
    worker thread has its own connection with at most one write outstanding.
    """
    woken, wake = multiprocessing.Pipe(duplex=False)
    incoming: list[Connection] = []
    threading.Thread(target=_accept, args=(listener, incoming, wake), daemon=True).start()
    conns: list[Connection] = []
    while True:
        batch: list[tuple[Connection, Write]] = []
        for conn in wait([woken, *conns]):
            if conn is woken:
                woken.recv_bytes()
                while incoming:
                    conns.append(incoming.pop())
                continue
            assert isinstance(conn, Connection)
            try:
                steps = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                conns.remove(conn)
                conn.close()
                continue
            batch.append((conn, Write([(BY_NAME[name], rows) for name, rows in steps])))
        if not batch:
            continue
        results = writer.commit_each([w for _, w in batch])
        for (conn, _), error in zip(batch, results, strict=True):
            try:
                conn.send(None if error is None else _reason(error))
            except OSError:
                conns.remove(conn)
                conn.close()


def _main(database_url: str, address: str, authkey: bytes, log_level: str, ready: Any) -> None:
    from hub.core.logging import configure

    configure(log_level)
    engine = make_engine(database_url)
    writer = BatchWriter(engine, WriterLock(engine))
    listener = Listener(address, family="AF_UNIX", authkey=authkey)

    def stop(_sig: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop, after its workers
    ready.set()
    try:
        _loop(writer, listener)
    finally:
        listener.close()
        writer.close()
        engine.dispose()


class WriterProcess:
    """Start and stop the writer process (in `hub serve`, before the API workers and after them). `spawn` starts
    it again at the same address with the same key (the supervisor's restart): the workers' connections to the
    old one fail, and they reconnect, committing locally meanwhile."""

    def __init__(self, database_url: str, log_level: str = "INFO") -> None:
        self.database_url, self.log_level = database_url, log_level
        self._dir = tempfile.mkdtemp(prefix="hub-writer-")  # mode 0700: only the hub's user reaches the socket
        self.address = os.path.join(self._dir, "socket")
        self.authkey = secrets.token_bytes(32)
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: BaseProcess | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What a worker needs to find the writer (read by `Settings`)."""
        return {ADDRESS_VAR: self.address, KEY_VAR: self.authkey.hex()}

    def spawn(self, timeout: float = 30.0) -> BaseProcess:
        """Start the process and wait until it listens; the process."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)  # a socket a killed writer left
        ready = self._ctx.Event()
        self._proc = self._ctx.Process(target=_main, name="hub-store-writer", daemon=True,
                                       args=(self.database_url, self.address, self.authkey, self.log_level, ready))
        self._proc.start()
        if not ready.wait(timeout) or not self._proc.is_alive():
            self.stop()
            raise RuntimeError("the store's writer process did not start")
        return self._proc

    def start(self, timeout: float = 30.0) -> None:
        self.spawn(timeout)

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc.join(15)
            if self._proc.is_alive():
                self._proc.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


# --- the workers' side --------------------------------------------------------------------------------------


class WriterClient:
    """A `Committer` that has the writer process commit each write; one connection per thread.

    A write the writer process cannot commit comes back as its reason; a write with an `alone` (one that looks
    before it writes, such as a booking's claim of its source key) then runs that here in a transaction of its
    own, as `GroupCommit` does after a failed batch. When the writer process cannot be reached the write is
    committed from this process instead, under the same write lock; when the connection breaks after a write
    was sent, whether it was committed is unknown, and the request is answered 503.
    """

    def __init__(self, address: str, authkey: bytes, local: GroupCommit) -> None:
        self.address, self.authkey, self.local = address, authkey, local
        self._mine = threading.local()
        self._all: list[Connection] = []
        self._lock = threading.Lock()
        self._warned = False

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._mine, "conn", None)
        if conn is None:
            conn = Client(self.address, family="AF_UNIX", authkey=self.authkey)
            self._mine.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._mine, "conn", None)
        self._mine.conn = None
        if conn is not None:
            with self._lock:
                self._all.remove(conn)
            conn.close()

    def submit(self, write: Write) -> None:
        steps = [(name_of(statement), rows) for statement, rows in write.steps]
        try:
            conn = self._connection()
            conn.send_bytes(pickle.dumps(steps, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, multiprocessing.AuthenticationError) as exc:  # not delivered: safe to write here
            self._drop()
            if not self._warned:
                log.warning("store writer process unreachable (%s): committing from this process", exc)
                self._warned = True
            self.local.submit(write)
            return
        try:
            reason = conn.recv()
        except (OSError, EOFError) as exc:
            self._drop()
            raise UpstreamError(single("transient", "The store's writer process went away; retry the request"),
                                status=503) from exc
        if reason is None:
            return
        if write.alone is None:
            raise WriteFailed(reason)
        self.local.alone(write)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self.local.close()
