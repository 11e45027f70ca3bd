"""MLLP, the Minimal Lower Layer Protocol (HL7 v2 appendix C, "MLLP release 2"): HL7 v2 messages over TCP.

A message travels as one block, `<VT 0x0b> payload <FS 0x1c><CR 0x0d>`. The server here reads blocks, hands each
payload to a synchronous handler (it writes to a database, so it runs in a thread pool, never on the event loop)
and sends back, framed, the bytes the handler returns: on one connection strictly one message at a time and in
order, many connections at once.

Decisions where the standard is silent or senders differ, so that nothing is dropped without an answer:

- **FS ends a block; the CR after it is optional.** Real senders send FS alone (some at the end of the stream,
  some mid-stream and then wait for the answer). Waiting for the CR would leave such a sender waiting for an
  answer until the idle timeout, so the message is taken at FS; the CR that usually follows is whitespace between
  blocks and skipped. A payload cannot contain FS or VT, so no valid message is cut short by this.
- **Bytes between blocks** that are only whitespace (the CR after FS, a keep-alive newline) are skipped. Anything
  else is junk: it goes to the handler as `Problem.NOT_FRAMED` (so the sender gets an answer, e.g. an ACK AR, and
  the raw bytes can be stored) when the next VT arrives, when the stream ends, or when no byte has come for
  `junk_wait` seconds (a sender that forgot the framing sends its message and waits).
- **A VT inside a block** starts a new block: the unfinished one goes to the handler as `Problem.INTERRUPTED`.
- **A block longer than `max_message_bytes`** goes to the handler as `Problem.TOO_LARGE` with its first
  `max_message_bytes` bytes (enough to read MSH-10 for the answer); the rest is discarded up to its FS.
- **A connection cut (or idle) mid-block**: the partial block is discarded and logged; the handler never sees it,
  since nothing of it was acknowledged the sender sends it again. Messages already answered stay answered.
- **The handler raises**: it is called once more with the same bytes and `Problem.HANDLER_FAILED`, so it can
  answer with a negative ACK (AE) from a path that does not touch the database. If that raises too there is no
  answer to give; the connection is closed, which tells an MLLP sender to send the message again. Messages the
  sender had already pipelined behind it are not handled (they were not acknowledged either).
- **A handler that returns None** sends no answer frame for that message; the connection goes on.
- **A block not finished within `frame_timeout` seconds** of its VT (a sender that stalls, or one that holds a
  connection open with half a frame) goes to the handler as `Problem.TIMED_OUT` with what came, so the sender
  gets an answer naming MSH-10 where it can be read; the connection is then closed.
- **More than `max_connections`** connections: the connection that has waited longest for bytes, one holding
  half a frame first, is closed to make room (logged; its partial block is discarded, never acknowledged); when
  every connection is in the handler, the new one is closed at once and the sender retries. So senders that
  hold connections open cannot lock a new one out.
- **`stop()`** stops accepting, closes connections waiting for bytes (a partial block is discarded), lets a
  message that is in the handler finish and be answered, then closes its connection. Messages received but not
  yet started are not handled.

**TLS** (`tls_context`): with a certificate and key the listener speaks MLLP inside TLS 1.2 or later; with a CA
as well, a client certificate that CA signed is required, and the handler is told which (`Peer.certificate`, its
SHA-256 fingerprint, and `Peer.common_name`) so it can check whom the sender may speak for.

Message content is never logged (it holds CPR numbers): only peers, sizes and problems.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import socket
import ssl
import threading
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("hub.mllp")

VT = 0x0B  # start block
FS = 0x1C  # end block
CR = 0x0D  # carriage return after FS
START_BLOCK = bytes([VT])
END_BLOCK = bytes([FS, CR])
WHITESPACE = b" \t\r\n"
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
READ_CHUNK = 64 * 1024


class Problem(enum.StrEnum):
    """Why received bytes are not a well-framed message; the value says it in words for an ERR segment."""

    NOT_FRAMED = "bytes outside an MLLP block (no start block VT)"
    INTERRUPTED = "MLLP block interrupted by a new start block (VT) before its end block (FS)"
    TOO_LARGE = "message larger than the receiver's limit"
    HANDLER_FAILED = "the receiver could not process the message"
    TIMED_OUT = "MLLP block not finished (no end block FS) within the receiver's time limit"


@dataclass(frozen=True, slots=True)
class Peer:
    """The sending end of a connection, for the handler's records and the log; over TLS with client certificates,
    the certificate it showed (`sha256:` and its fingerprint, and its subject's common name)."""

    host: str
    port: int
    certificate: str | None = None
    common_name: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


Handler = Callable[[bytes, Problem | None, Peer], bytes | None]
"""handler(raw, problem, peer) -> answer: `problem` is None for a well-framed message; None answers nothing."""


@dataclass(frozen=True, slots=True)
class Received:
    """One unit to answer: a block's payload, or bytes that could not be framed and why."""

    raw: bytes
    problem: Problem | None


class MllpError(ConnectionError):
    """The other end did not answer with one well-framed block."""


def frame(payload: bytes) -> bytes:
    """`payload` as one MLLP block; ValueError if it holds VT or FS, which no block can carry."""
    if START_BLOCK in payload or FS in payload:
        raise ValueError("an MLLP payload cannot contain VT (0x0b) or FS (0x1c)")
    return START_BLOCK + payload + END_BLOCK


class Deframer:
    """Incremental MLLP reader: feed it bytes as they arrive, get what to answer in order.

    Pure (no I/O), so the server and the clients share it and it can be tested chunk by chunk. Memory per
    connection is bounded by `max_message_bytes` for a block plus the same for junk.
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self._in_block = False
        self._block = bytearray()
        self._block_size = 0  # bytes of the current block seen, including those discarded beyond the limit
        self._junk = bytearray()
        self._junk_is_content = False
        self._after_end = False  # the last byte was a block's FS: a CR now is its trailer, not junk
        self.started = 0  # blocks begun so far (VTs seen): tells one unfinished block from the next

    @property
    def partial_bytes(self) -> int:
        """Size of an unfinished block (0 when between blocks): what a cut connection discards."""
        return self._block_size if self._in_block else 0

    @property
    def in_block(self) -> bool:
        return self._in_block

    @property
    def has_junk(self) -> bool:
        """Bytes between blocks that are not whitespace wait to be reported."""
        return self._junk_is_content

    def feed(self, data: bytes) -> list[Received]:
        out: list[Received] = []
        i, n = 0, len(data)
        while i < n:
            if not self._in_block:
                if self._after_end:
                    self._after_end = False
                    if data[i] == CR:
                        i += 1
                        continue
                start = data.find(VT, i)
                end = n if start < 0 else start
                self._add_junk(data[i:end])
                if start < 0:
                    break
                junk = self.take_junk()
                if junk is not None:
                    out.append(junk)
                self._in_block = True
                self.started += 1
                self._block_size = 0
                i = start + 1
                continue
            fs, vt = data.find(FS, i), data.find(VT, i)
            end = min((k for k in (fs, vt) if k >= 0), default=n)
            self._add_block(data, i, end)
            if end == n:
                break
            out.append(self._finish(interrupted=data[end] == VT))
            i = end + 1
        return out

    def take_partial(self) -> Received:
        """The unfinished block so far (its first `max_message_bytes` bytes), as a TIMED_OUT unit; the reader is
        then between blocks."""
        unit = Received(bytes(self._block), Problem.TIMED_OUT)
        self._block.clear()
        self._block_size = 0
        self._in_block = False
        return unit

    def take_junk(self) -> Received | None:
        """The junk gathered so far as a NOT_FRAMED unit, or None if it was only whitespace (then dropped)."""
        junk = Received(bytes(self._junk), Problem.NOT_FRAMED) if self._junk_is_content else None
        self._junk.clear()
        self._junk_is_content = False
        return junk

    def _add_junk(self, chunk: bytes) -> None:
        if not chunk:
            return
        if chunk.strip(WHITESPACE):
            self._junk_is_content = True
        room = self.max_message_bytes - len(self._junk)
        if room > 0:
            self._junk += chunk[:room]

    def _add_block(self, data: bytes, start: int, end: int) -> None:
        room = self.max_message_bytes - len(self._block)
        if room > 0:
            self._block += data[start : min(end, start + room)]
        self._block_size += end - start

    def _finish(self, *, interrupted: bool) -> Received:
        if self._block_size > self.max_message_bytes:
            problem: Problem | None = Problem.TOO_LARGE
        else:
            problem = Problem.INTERRUPTED if interrupted else None
        unit = Received(bytes(self._block), problem)
        self._block.clear()
        self._block_size = 0
        self._in_block = interrupted  # the VT that interrupted this block starts the next one
        self.started += interrupted
        self._after_end = not interrupted
        return unit


@dataclass
class _Connection:
    peer: Peer
    busy: bool = False  # in the handler (or writing its answer): stop() lets it finish
    waiting_since: float = 0.0  # when it began to wait for bytes (loop time)
    block_since: float | None = None  # when its unfinished block began (first seen), if it has one
    block: int = 0  # which block that is (`Deframer.started`)


class MllpServer:
    """An asyncio MLLP listener; see the module docstring for what it does with every kind of input."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float | None = 300.0,
        max_connections: int = 256,
        workers: int = 8,
        junk_wait: float = 0.5,
        frame_timeout: float = 30.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = handler
        self.tls = tls
        self.host = host
        self._port = port
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.workers = workers
        self.junk_wait = junk_wait
        self.frame_timeout = frame_timeout
        self._server: asyncio.Server | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._stopping = False

    @property
    def port(self) -> int:
        """The bound port once started (the one the OS picked when constructed with 0)."""
        return self._port

    async def start(self) -> None:
        self._stopping = False
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="mllp-handler")
        self._server = await asyncio.start_server(self._serve, self.host, self._port, ssl=self.tls,
                                                  ssl_handshake_timeout=10.0 if self.tls else None)
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("MLLP listening on %s:%d", self.host, self._port)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop accepting; answer what is in the handler (up to `grace` seconds), then close everything."""
        if self._server is None:
            return
        self._stopping = True
        self._server.close()
        for task, conn in list(self._connections.items()):
            if not conn.busy:
                task.cancel()
        tasks = set(self._connections)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                log.warning("%s: message still in the handler after %.0f s; closing", self._connections[task].peer,
                            grace)
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self._server.wait_closed()
        if self._pool is not None:
            self._pool.shutdown(wait=False)  # a handler stuck past the grace keeps its thread; do not hang on it
        self._server = self._pool = None
        log.info("MLLP on %s:%d stopped", self.host, self._port)

    def start_in_thread(self, timeout: float = 10.0) -> MllpServerThread:
        """Run this server on its own event loop in a background thread (tests, the sync CLI)."""
        return MllpServerThread(self).start(timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        certificate, common_name = _certificate(writer)
        peer = (Peer(str(peername[0]), int(peername[1]), certificate, common_name) if peername
                else Peer("?", 0, certificate, common_name))
        if not self._stopping and len(self._connections) >= self.max_connections:
            self._make_room(peer)
        if self._stopping or len(self._connections) >= self.max_connections:
            log.warning("%s: refused, %d connections open (max %d)%s", peer, len(self._connections),
                        self.max_connections, " and stopping" if self._stopping else "")
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(peer)
        self._connections[task] = conn
        deframer = Deframer(self.max_message_bytes)
        log.debug("%s: connected", peer)
        try:
            await self._converse(reader, writer, conn, deframer)
        except OSError as exc:
            log.info("%s: connection lost (%s)", peer, type(exc).__name__)
        except Exception as exc:  # a bug here must cost one connection, never the server
            log.error("%s: closing after an unexpected error (%s)", peer, _where(exc))
        finally:
            if deframer.partial_bytes:
                log.warning("%s: connection ended mid-message; discarded %d unacknowledged bytes", peer,
                            deframer.partial_bytes)
            self._connections.pop(task, None)  # gone already when closed to make room
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            log.debug("%s: closed", peer)

    def _make_room(self, newcomer: Peer) -> None:
        """Close the connection that has waited longest for bytes, one holding half a frame first."""
        waiting = [(conn.block_since is None, conn.waiting_since, task) for task, conn in self._connections.items()
                   if not conn.busy]
        if not waiting:
            return
        _, _, task = min(waiting, key=lambda w: w[:2])
        conn = self._connections.pop(task)  # its slot is the newcomer's now; its task ends on its own
        log.warning("%s: closed to make room for %s (%d connections, max %d)%s", conn.peer, newcomer,
                    len(self._connections) + 1, self.max_connections,
                    "; it held an unfinished block" if conn.block_since is not None else "")
        task.cancel()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Connection,
                        deframer: Deframer) -> None:
        todo: deque[Received] = deque()
        loop = asyncio.get_running_loop()
        while True:
            while todo:
                if not await self._answer(todo.popleft(), conn, writer):
                    return
                if self._stopping:
                    return
            now = loop.time()
            conn.waiting_since = now
            if not deframer.in_block:
                conn.block_since = None
            elif conn.block_since is None or conn.block != deframer.started:
                conn.block_since, conn.block = now, deframer.started
            wait = self.junk_wait if deframer.has_junk else self.idle_timeout
            if conn.block_since is not None:
                wait = max(0.0, min(wait or self.frame_timeout, conn.block_since + self.frame_timeout - now))
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), wait)
            except TimeoutError:
                junk = deframer.take_junk() if deframer.has_junk else None
                if junk is not None:
                    todo.append(junk)
                    continue
                if conn.block_since is not None and loop.time() >= conn.block_since + self.frame_timeout:
                    log.info("%s: block not finished within %.1f s; answering what came, then closing", conn.peer,
                             self.frame_timeout)
                    await self._answer(deframer.take_partial(), conn, writer)
                    return
                log.info("%s: idle for %.1f s; closing", conn.peer, self.idle_timeout or 0)
                return
            if not data:
                junk = deframer.take_junk()
                if junk is not None:  # the sender may only have shut its sending side; try to answer
                    await self._answer(junk, conn, writer)
                return
            todo.extend(deframer.feed(data))

    async def _answer(self, unit: Received, conn: _Connection, writer: asyncio.StreamWriter) -> bool:
        """Handle one unit and write its answer; False when there is none to give and the connection must close."""
        peer = conn.peer
        if unit.problem is not None:
            log.info("%s: %s (%d bytes)", peer, unit.problem, len(unit.raw))
        loop = asyncio.get_running_loop()
        conn.busy = True
        try:
            try:
                answer = await loop.run_in_executor(self._pool, self.handler, unit.raw, unit.problem, peer)
            except Exception as exc:
                log.error("%s: handler failed on a %d-byte message (%s); answering through its fallback", peer,
                          len(unit.raw), _where(exc))
                try:
                    answer = await loop.run_in_executor(self._pool, self.handler, unit.raw,
                                                        Problem.HANDLER_FAILED, peer)
                except Exception as again:
                    log.error("%s: handler's fallback failed too (%s); closing without an answer", peer,
                              _where(again))
                    return False
            if answer is None:
                log.debug("%s: %d-byte message, no answer", peer, len(unit.raw))
                return True
            writer.write(frame(answer))
            await asyncio.wait_for(writer.drain(), self.idle_timeout)
            log.debug("%s: %d-byte message answered with %d bytes", peer, len(unit.raw), len(answer))
            return True
        except ValueError:
            log.error("%s: the handler's answer contains VT or FS and cannot be framed; closing", peer)
            return False
        except TimeoutError:
            log.info("%s: does not read its answers; closing", peer)
            return False
        finally:
            conn.busy = False


def _certificate(writer: asyncio.StreamWriter) -> tuple[str | None, str | None]:
    """The client certificate of a TLS connection: (`sha256:` fingerprint, subject CN), or (None, None)."""
    connection = writer.get_extra_info("ssl_object")
    der = connection.getpeercert(binary_form=True) if connection is not None else None
    if not der:
        return None, None
    subject = dict(part for rdn in connection.getpeercert().get("subject", ()) for part in rdn)
    return f"sha256:{hashlib.sha256(der).hexdigest()}", subject.get("commonName")


def tls_context(certificate: Path, key: Path, ca: Path | None = None) -> ssl.SSLContext:
    """The listener's TLS: its certificate and key; with `ca`, a client certificate it signed is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate, key)
    if ca is not None:
        context.load_verify_locations(ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _where(exc: BaseException) -> str:
    """An exception's type and innermost location, without its message (which may quote the content)."""
    frames = traceback.extract_tb(exc.__traceback__)
    place = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{place}"


class MllpServerThread:
    """An `MllpServer` on its own event loop in a daemon thread; use as a context manager."""

    def __init__(self, server: MllpServer) -> None:
        self.server = server
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._grace = 30.0
        self._thread = threading.Thread(target=self._run, name="mllp", daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self, timeout: float = 10.0) -> MllpServerThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"MLLP server on {self.server.host}:{self.server.port} did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, grace: float = 30.0) -> None:
        """Stop as `MllpServer.stop` does and wait for the thread."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._grace = grace
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(grace + 5)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.server.stop(self._grace)

    def __enter__(self) -> MllpServerThread:
        return self if self._thread.ident is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MllpClient:
    """A blocking MLLP connection: send a message, read its answer; several in turn on one connection.

    `timeout` applies to connecting and to each read and write.
    """

    def __init__(self, host: str, port: int, timeout: float = 10.0,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        self._sock = tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock
        self._deframer = Deframer(max_message_bytes)
        self._answers: deque[Received] = deque()

    def send(self, payload: bytes) -> bytes:
        """Frame and send `payload`; the answer's payload."""
        self.write(frame(payload))
        return self.receive()

    def write(self, data: bytes) -> None:
        """Send bytes as they are (for a caller that frames itself, or a test sending broken framing)."""
        self._sock.sendall(data)

    def receive(self) -> bytes:
        """The next answer's payload; MllpError if the server closes first or answers with something unframed."""
        while not self._answers:
            data = self._sock.recv(READ_CHUNK)
            if not data:
                raise MllpError("connection closed before an answer"
                                + (" was complete" if self._deframer.in_block else ""))
            self._answers.extend(self._deframer.feed(data))
        return _answer_payload(self._answers.popleft())

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> MllpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answer_payload(unit: Received) -> bytes:
    if unit.problem is not None:
        raise MllpError(f"unusable answer: {unit.problem}")
    return unit.raw


def send(host: str, port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send one message on a new connection and return the answer's payload."""
    with MllpClient(host, port, timeout) as client:
        return client.send(payload)


async def send_async(host: str, port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """`send` for asyncio callers; `timeout` covers the whole exchange."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(frame(payload))
            await writer.drain()
            deframer = Deframer()
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    raise MllpError("connection closed before an answer")
                units = deframer.feed(data)
                if units:
                    return _answer_payload(units[0])
        finally:
            writer.close()
