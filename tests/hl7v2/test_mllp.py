"""MLLP transport: real TCP on loopback, a real handler that answers from the payload and records its calls."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hub.hl7v2.mllp import (
    Deframer,
    MllpClient,
    MllpError,
    MllpServer,
    MllpServerThread,
    Peer,
    Problem,
    Received,
    frame,
    send,
    send_async,
)

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
CPR = b"0101801234"  # in every payload, so the tests can check that the log never shows content
HOST = "127.0.0.1"


def message(tag: str) -> bytes:
    return b"MSH|^~\\&|" + tag.encode() + b"|PID|||" + CPR + b"^^^CPR\r"


def ack(payload: bytes) -> bytes:
    return b"ACK:" + payload[:20]


class Recorder:
    """The handler: ACK:<first 20 bytes> for a message, AR:<problem>:<size> for what could not be framed."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[bytes, Problem | None, Peer]] = []
        self.on_loop: list[bool] = []
        self.lock = threading.Lock()
        self.active: dict[Peer, int] = {}
        self.max_active_per_peer = 0
        self.started = threading.Event()

    def __call__(self, raw: bytes, problem: Problem | None, peer: Peer) -> bytes | None:
        with self.lock:
            self.calls.append((raw, problem, peer))
            self.on_loop.append(_on_event_loop())
            self.active[peer] = self.active.get(peer, 0) + 1
            self.max_active_per_peer = max(self.max_active_per_peer, self.active[peer])
        self.started.set()
        try:
            return self.answer(raw, problem)
        finally:
            with self.lock:
                self.active[peer] -= 1

    def answer(self, raw: bytes, problem: Problem | None) -> bytes | None:
        if problem is not None:
            return f"AR:{problem.name}:{len(raw)}".encode()
        if self.delay:
            time.sleep(self.delay)
        return ack(raw)

    def messages(self) -> list[bytes]:
        return [raw for raw, problem, _ in self.calls if problem is None]


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


Serve = Callable[..., MllpServerThread]


@pytest.fixture
def serve() -> Iterator[Serve]:
    started: list[MllpServerThread] = []

    def start(handler: Any, **options: Any) -> MllpServerThread:
        thread = MllpServer(handler, HOST, 0, **options).start_in_thread()
        started.append(thread)
        return thread

    yield start
    for thread in started:
        thread.stop(grace=5)


@pytest.fixture(autouse=True)
def no_content_in_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="hub.mllp")
    yield caplog
    logged = [record.getMessage() for record in caplog.get_records("call")]
    assert not [line for line in logged if CPR.decode() in line]


def read_answers(sock: socket.socket, count: int) -> list[bytes]:
    """Answers read off a raw socket (for tests that must shut down or cut their side)."""
    deframer, answers = Deframer(), list[Received]()
    while len(answers) < count:
        data = sock.recv(65536)
        if not data:
            break
        answers.extend(deframer.feed(data))
    assert all(a.problem is None for a in answers)
    return [a.raw for a in answers]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_round_trip_runs_the_handler_off_the_event_loop(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler)
    with MllpClient(HOST, server.port) as client:
        local_port = client._sock.getsockname()[1]
        assert client.send(message("one")) == ack(message("one"))
    assert handler.calls == [(message("one"), None, Peer(HOST, local_port))]
    assert handler.on_loop == [False]


def test_frame_refuses_what_no_block_can_carry() -> None:
    assert frame(b"MSH|x") == VT + b"MSH|x" + FS + CR
    for bad in (b"a\x0bb", b"a\x1cb"):
        with pytest.raises(ValueError):
            frame(bad)


def test_pipelined_messages_on_one_connection_are_handled_one_at_a_time_in_order(serve: Serve) -> None:
    handler = Recorder(delay=0.02)
    server = serve(handler, workers=8)
    payloads = [message(f"m{i}") for i in range(6)]
    with MllpClient(HOST, server.port) as client:
        client.write(b"".join(frame(p) for p in payloads))
        answers = [client.receive() for _ in payloads]
    assert answers == [ack(p) for p in payloads]
    assert handler.messages() == payloads
    assert handler.max_active_per_peer == 1


def test_fifty_connections_of_twenty_messages_each(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler, workers=8)

    def converse(c: int) -> list[bool]:
        with MllpClient(HOST, server.port) as client:
            return [client.send(message(f"{c}.{m}")) == ack(message(f"{c}.{m}")) for m in range(20)]

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(converse, range(50)))
    assert all(all(r) and len(r) == 20 for r in results)
    assert len(handler.calls) == 1000
    assert handler.max_active_per_peer == 1


def test_connections_are_served_concurrently(serve: Serve) -> None:
    barrier = threading.Barrier(4, timeout=5)

    class Meeting(Recorder):
        def answer(self, raw: bytes, problem: Problem | None) -> bytes | None:
            if problem is None:
                barrier.wait()  # only passes if four connections are in the handler at once
            return super().answer(raw, problem)

    server = serve(Meeting(), workers=4)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: send(HOST, server.port, message(str(i))), range(4)))
    assert answers == [ack(message(str(i))) for i in range(4)]


def test_junk_before_a_block_is_answered_as_a_problem_and_the_block_after_it_too(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler)
    with MllpClient(HOST, server.port) as client:
        client.write(b"hello\r\n" + frame(message("good")))
        assert client.receive() == b"AR:NOT_FRAMED:7"
        assert client.receive() == ack(message("good"))
    assert [(raw, problem) for raw, problem, _ in handler.calls] == [
        (b"hello\r\n", Problem.NOT_FRAMED), (message("good"), None)]


def test_whitespace_between_blocks_is_not_reported(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler, junk_wait=0.1)
    with MllpClient(HOST, server.port) as client:
        client.write(b"\r\n")  # a keep-alive newline
        time.sleep(0.3)
        client.write(b"\n \t" + frame(message("after")) + b"\r\n")
        assert client.receive() == ack(message("after"))
    assert [problem for _, problem, _ in handler.calls] == [None]


def test_junk_alone_is_answered_after_a_pause(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler, junk_wait=0.2)
    with MllpClient(HOST, server.port, timeout=5) as client:
        client.write(message("unframed"))  # a sender that forgot the framing, waiting for its answer
        assert client.receive() == f"AR:NOT_FRAMED:{len(message('unframed'))}".encode()
    assert handler.calls[0][:2] == (message("unframed"), Problem.NOT_FRAMED)


def test_start_block_inside_a_block_reports_the_unfinished_one(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler)
    with MllpClient(HOST, server.port) as client:
        client.write(VT + b"MSH|partial" + VT + message("good") + FS + CR)
        assert client.receive() == b"AR:INTERRUPTED:11"
        assert client.receive() == ack(message("good"))
    assert [(raw, problem) for raw, problem, _ in handler.calls] == [
        (b"MSH|partial", Problem.INTERRUPTED), (message("good"), None)]


def test_end_block_without_carriage_return_is_accepted(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler)
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(VT + message("1") + FS)  # FS alone, and the sender waits for its answer
        assert read_answers(sock, 1) == [ack(message("1"))]
        sock.sendall(VT + message("2") + FS + VT + message("3") + FS + CR)
        assert read_answers(sock, 2) == [ack(message("2")), ack(message("3"))]
        sock.sendall(VT + message("4") + FS)
        sock.shutdown(socket.SHUT_WR)  # end of stream right after FS
        assert read_answers(sock, 1) == [ack(message("4"))]
    assert handler.messages() == [message(str(i)) for i in range(1, 5)]


def test_oversize_block_is_answered_as_too_large_and_skipped_to_its_end(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler, max_message_bytes=1000)
    big = b"MSH|" + b"X" * 200_000  # several reads long
    with MllpClient(HOST, server.port) as client:
        client.write(frame(big) + frame(message("small")))
        assert client.receive() == b"AR:TOO_LARGE:1000"
        assert client.receive() == ack(message("small"))
    assert handler.calls[0][:2] == (big[:1000], Problem.TOO_LARGE)
    assert handler.messages() == [message("small")]


def test_connection_cut_mid_message_discards_it(serve: Serve, no_content_in_log: pytest.LogCaptureFixture) -> None:
    handler = Recorder()
    server = serve(handler)
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(frame(message("answered")) + VT + message("cut"))
        assert read_answers(sock, 1) == [ack(message("answered"))]
    wait_for(lambda: "ended mid-message" in no_content_in_log.text)
    assert send(HOST, server.port, message("next")) == ack(message("next"))
    assert handler.messages() == [message("answered"), message("next")]
    assert all(problem is None for _, problem, _ in handler.calls)


def test_handler_failure_is_answered_through_its_fallback(
        serve: Serve, no_content_in_log: pytest.LogCaptureFixture) -> None:
    class Failing(Recorder):
        def answer(self, raw: bytes, problem: Problem | None) -> bytes | None:
            if problem is None and b"BOOM" in raw:
                raise RuntimeError(f"cannot store {raw!r}")  # quotes the content: must not reach the log
            if problem is Problem.HANDLER_FAILED:
                return b"AE:" + raw[:20]
            return super().answer(raw, problem)

    handler = Failing()
    server = serve(handler)
    with MllpClient(HOST, server.port) as client:
        assert client.send(message("BOOM")) == b"AE:" + message("BOOM")[:20]
        assert client.send(message("fine")) == ack(message("fine"))  # same connection goes on
    assert [problem for _, problem, _ in handler.calls] == [None, Problem.HANDLER_FAILED, None]
    assert "RuntimeError at" in no_content_in_log.text  # logged, by type and place but not by its message


def test_handler_failing_without_an_answer_closes_only_that_connection(serve: Serve) -> None:
    class Broken(Recorder):
        def answer(self, raw: bytes, problem: Problem | None) -> bytes | None:
            if b"FATAL" in raw:
                raise RuntimeError("database down")
            return super().answer(raw, problem)

    handler = Broken()
    server = serve(handler)
    with MllpClient(HOST, server.port) as client:
        client.write(frame(message("FATAL")) + frame(message("behind")))
        with pytest.raises(MllpError):
            client.receive()
    assert send(HOST, server.port, message("next")) == ack(message("next"))
    assert message("behind") not in handler.messages()  # not acknowledged, so not handled
    assert handler.messages()[-1] == message("next")


def test_handler_answering_none_sends_no_frame(serve: Serve) -> None:
    class Quiet(Recorder):
        def answer(self, raw: bytes, problem: Problem | None) -> bytes | None:
            return None if b"SILENT" in raw else super().answer(raw, problem)

    server = serve(Quiet())
    with MllpClient(HOST, server.port) as client:
        client.write(frame(message("SILENT")) + frame(message("loud")))
        assert client.receive() == ack(message("loud"))


def test_idle_connection_is_closed_and_activity_keeps_it_open(serve: Serve) -> None:
    server = serve(Recorder(), idle_timeout=0.3)
    with MllpClient(HOST, server.port) as client:
        for i in range(3):  # 0.6 s in all, never 0.3 s quiet
            time.sleep(0.2)
            assert client.send(message(str(i))) == ack(message(str(i)))
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        began = time.monotonic()
        assert sock.recv(1) == b""
        assert 0.25 < time.monotonic() - began < 3


def test_beyond_the_limit_the_connection_waiting_longest_makes_room(serve: Serve) -> None:
    server = serve(Recorder(), max_connections=2)
    first, second = MllpClient(HOST, server.port), MllpClient(HOST, server.port)
    with first, second:
        assert first.send(message("1")) == ack(message("1"))
        assert second.send(message("2")) == ack(message("2"))
        with MllpClient(HOST, server.port) as third:
            assert third.send(message("3")) == ack(message("3"))  # the first, waiting longest, was closed
        with pytest.raises(ConnectionError):  # closed, or reset
            first.send(message("4"))
        assert second.send(message("5")) == ack(message("5"))


def test_when_every_connection_is_in_the_handler_a_new_one_is_refused(serve: Serve) -> None:
    release = threading.Event()

    class Held(Recorder):
        def answer(self, raw: bytes, problem: Problem | None) -> bytes | None:
            release.wait(10)
            return super().answer(raw, problem)

    handler = Held()
    server = serve(handler, max_connections=1)
    with MllpClient(HOST, server.port) as busy:
        busy.write(frame(message("1")))
        wait_for(lambda: len(handler.calls) == 1)
        with MllpClient(HOST, server.port) as newcomer, pytest.raises(ConnectionError):
            newcomer.send(message("2"))
        release.set()
        assert busy.receive() == ack(message("1"))


def test_a_flood_of_half_frames_does_not_lock_a_new_sender_out(serve: Serve) -> None:
    """Three hundred connections each holding half a frame, on a listener that holds 100: every new sender is
    still answered at once, and each half frame closed to make room was never acknowledged."""
    handler = Recorder()
    server = serve(handler, max_connections=100)
    holders = [socket.create_connection((HOST, server.port)) for _ in range(300)]
    try:
        for sock in holders:
            sock.sendall(VT + b"MSH|^~\\&|half")
        for tag in ("late-1", "late-2", "late-3"):
            assert send(HOST, server.port, message(tag), timeout=5) == ack(message(tag))
        assert handler.messages() == [message(t) for t in ("late-1", "late-2", "late-3")]
        assert not [call for call in handler.calls if call[1] is not None]  # nothing of the halves answered
    finally:
        for sock in holders:
            sock.close()


def test_a_block_not_finished_in_time_is_answered_then_the_connection_closed(serve: Serve) -> None:
    handler = Recorder()
    server = serve(handler, frame_timeout=0.3)
    with socket.create_connection((HOST, server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(frame(message("whole")) + VT + b"MSH|^~\\&|stalled")
        deframer, answers = Deframer(), list[Received]()
        while True:  # the whole message's answer, the stalled one's, then the end of the connection
            data = sock.recv(65536)
            if not data:
                break
            answers.extend(deframer.feed(data))
    assert [a.raw for a in answers] == [ack(message("whole")), b"AR:TIMED_OUT:16"]


def test_stop_answers_the_message_in_the_handler_then_closes(serve: Serve) -> None:
    handler = Recorder(delay=0.5)
    server = serve(handler)
    idle = MllpClient(HOST, server.port)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(send, HOST, server.port, message("slow"))
        assert handler.started.wait(5)
        began = time.monotonic()
        server.stop(grace=5)
        assert time.monotonic() - began >= 0.3  # waited for the handler
        assert answer.result(5) == ack(message("slow"))
    with idle, pytest.raises(MllpError):
        idle.receive()  # the idle connection was closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, server.port), timeout=2)


def test_start_on_a_taken_port_fails_loudly() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        with pytest.raises(OSError):
            MllpServer(Recorder(), HOST, taken.getsockname()[1]).start_in_thread()


def test_async_client(serve: Serve) -> None:
    server = serve(Recorder())
    assert asyncio.run(send_async(HOST, server.port, message("async"))) == ack(message("async"))


def test_deframer_gives_the_same_units_however_the_bytes_are_split() -> None:
    stream = (b"\r\n" + frame(b"MSH|a") + b"junk" + VT + b"MSH|cut" + frame(b"MSH|b")
              + VT + b"Y" * 50 + FS + CR + VT + b"MSH|c" + FS + b"\n" + VT + b"MSH|tail")
    expected = [Received(b"MSH|a", None), Received(b"junk", Problem.NOT_FRAMED),
                Received(b"MSH|cut", Problem.INTERRUPTED), Received(b"MSH|b", None),
                Received(b"Y" * 20, Problem.TOO_LARGE), Received(b"MSH|c", None)]
    for size in (len(stream), 7, 1):
        deframer = Deframer(max_message_bytes=20)
        units = [u for i in range(0, len(stream), size) for u in deframer.feed(stream[i : i + size])]
        assert units == expected
        assert deframer.partial_bytes == len(b"MSH|tail")
