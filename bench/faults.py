"""Fault benchmark: hub instances on one PostgreSQL, one killed with SIGKILL under load, everything unanswered resent.

A throwaway PostgreSQL cluster, one VDX-compatible service both instances book in, and `hub serve` instances
(one API worker each, their MLLP listeners, outbox workers and housekeeping) on that one database:

1. bookings/s with one instance, then with two (clients split between them);
2. bookings and HL7 v2 ADT messages (MLLP) sent to both; halfway, one instance's whole process group is killed
   with SIGKILL (a container killed). Clients of the dead instance go on with the other, as behind a proxy;
   what was not answered is resent to the survivor until answered (its housekeeping settles the bookings the
   dead one left pending).

Then it counts, from the database and VDX: sent, answered, lost (answered, or never answered after the resends,
and not in the store — for HL7 v2, no encounter event for the message) and duplicated (more than one room in VDX
for a booking, more than one encounter event for an HL7 v2 message). The goal is 0 lost and 0 duplicated.

Run: `make bench-faults`, or `.venv/bin/python bench/faults.py --duration 20`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.booking import authorised, machine, reference_ms, template  # noqa: E402
from hub.api.server_thread import free_port, wait_until_healthy  # noqa: E402
from hub.core.config import Settings  # noqa: E402
from hub.hl7v2.mllp import MllpClient, MllpError  # noqa: E402
from tests.pgcluster import PgCluster  # noqa: E402

CPR = "0101804321"
VDX_CLIENT = {"HUB_VDX_CLIENT_ID": "hub", "HUB_VDX_CLIENT_SECRET": uuid.uuid4().hex}  # VDX asks for tokens


def adt(control_id: str) -> bytes:
    """An admission of its own stay (the visit number is the control id)."""
    return "\r".join([
        f"MSH|^~\\&|EPJ|OUH|HUB|HUB|20270312090000||ADT^A01^ADT_A01|{control_id}|P|2.5|||||DAN|8859/1",
        "EVN|A01|20270312085500",
        f"PID|1||{CPR}^^^CPR^NNDNK||Hansen^Jens||19800101|M",
        f"PV1|1|I|OUH^K1^3||||||||||||||||{control_id}^^^OUH^VN" + "|" * 25 + "20270312084500|",
    ]).encode("iso-8859-1") + b"\r"


@dataclass
class Instance:
    name: str
    port: int
    mllp_port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL to every process of the instance at once, as when its container is killed."""
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def start_instance(name: str, database: str, vdx_url: str, work: Path) -> Instance:
    data = work / name
    data.mkdir()
    (data / "standards").symlink_to(Settings().standards_store.resolve())
    port, mllp_port = free_port(), free_port()
    env = {**os.environ, **VDX_CLIENT, "HUB_VDX_TOKEN_URL": f"{vdx_url}/token",
           "HUB_DATA_DIR": str(data), "HUB_DATABASE_URL": database, "HUB_VDX_URL": vdx_url,
           "HUB_SDI_ENABLED": "false", "HUB_LOG_LEVEL": "ERROR", "HUB_PENDING_SETTLE_AFTER_SECONDS": "5",
           "HUB_HOUSEKEEPING_INTERVAL_SECONDS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port), "--mllp-port",
                             str(mllp_port)], env=env, cwd=ROOT, start_new_session=True)
    wait_until_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    return Instance(name, port, mllp_port, proc)


@dataclass
class Tally:
    """What was sent and what was answered, by booking identifier or HL7 v2 control id."""

    sent: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, key: str, ok: bool, seconds: float) -> None:
        with self.lock:
            self.sent.add(key)
            if ok:
                self.answered.add(key)
                self.latencies.append(seconds)

    @property
    def unanswered(self) -> set[str]:
        return self.sent - self.answered


HEADERS: dict[str, str] = {}  # with the bearer token of the run's client (`main`)


def book(client: httpx.Client, body: str, key: str) -> bool:
    r = client.post("/fhir/Appointment", content=body.replace("__ID__", key), headers=HEADERS, timeout=30)
    return r.status_code in (200, 201)


def booking_clients(instances: list[Instance], concurrency: int, until: float, body: str,
                    tally: Tally) -> list[threading.Thread]:
    """Closed-loop clients, client i starting on instance i mod n; one that fails it passes over from then on
    (as a proxy's passive health check does)."""

    def run(i: int) -> None:
        clients: dict[str, httpx.Client] = {}
        down: set[str] = set()
        while time.monotonic() < until:
            key = uuid.uuid4().hex
            alive = [x for x in instances if x.name not in down]
            if not alive:
                return
            target = alive[i % len(alive)]
            if target.name not in clients:
                clients[target.name] = httpx.Client(base_url=target.url)
            t0 = time.perf_counter()
            try:
                ok = book(clients[target.name], body, key)
            except httpx.HTTPError:
                ok = False
                down.add(target.name)
            tally.record(key, ok, time.perf_counter() - t0)
        for c in clients.values():
            c.close()

    return [threading.Thread(target=run, args=(i,)) for i in range(concurrency)]


def mllp_client(instances: list[Instance], until: float, tally: Tally, prefix: str) -> threading.Thread:
    """ADT messages one after another on one connection, to the first instance that has not failed it."""

    def run() -> None:
        n = 0
        down: set[str] = set()
        connection: tuple[str, MllpClient] | None = None
        while time.monotonic() < until:
            n += 1
            key = f"{prefix}{n}"
            alive = [x for x in instances if x.name not in down]
            if not alive:
                return
            t0 = time.perf_counter()
            try:
                if connection is None or connection[0] != alive[0].name:
                    connection = (alive[0].name, MllpClient("127.0.0.1", alive[0].mllp_port, timeout=10))
                ok = b"MSA|AA|" + key.encode() in connection[1].send(adt(key))
            except (OSError, MllpError):
                ok, connection = False, None
                down.add(alive[0].name)
            tally.record(key, ok, time.perf_counter() - t0)

    return threading.Thread(target=run)


def run_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def throughput(instances: list[Instance], concurrency: int, seconds: float, body: str) -> float:
    tally = Tally()
    t0 = time.monotonic()
    run_all(booking_clients(instances, concurrency, t0 + seconds, body, tally))
    return len(tally.answered) / (time.monotonic() - t0)


def resend(bookings: Tally, messages: Tally, survivor: Instance, body: str, deadline: float) -> None:
    """Everything unanswered, to the survivor, until answered (a booking its dead peer left pending is 409 until
    the survivor's housekeeping settles it)."""
    with httpx.Client(base_url=survivor.url) as client:
        for key in sorted(bookings.unanswered):
            while time.monotonic() < deadline:
                with suppress(httpx.HTTPError):
                    if book(client, body, key):
                        bookings.answered.add(key)
                        break
                time.sleep(0.5)
    with MllpClient("127.0.0.1", survivor.mllp_port, timeout=10) as mllp:
        for key in sorted(messages.unanswered):
            if b"MSA|AA|" + key.encode() in mllp.send(adt(key)):
                messages.answered.add(key)


def verdict(database: str, vdx_url: str, bookings: Tally, messages: Tally) -> dict[str, dict[str, int]]:
    engine = create_engine(database)
    with engine.connect() as conn:
        states = dict(conn.execute(text("SELECT source_key, state FROM appointments")).all())
        events = conn.execute(text("SELECT m.raw FROM encounter_events e JOIN messages m ON m.id = e.message_id"))
        per_message = Counter(bytes(raw).split(b"\r")[0].split(b"|")[9].decode() for (raw,) in events)
    engine.dispose()
    booked = {key.rsplit("|", 1)[-1] for key, state in states.items() if state == "booked"}
    window = {"from-start-time": "2000-01-01T00:00:00Z", "to-start-time": "2100-01-01T00:00:00Z"}
    token = httpx.post(f"{vdx_url}/token", data={"grant_type": "client_credentials"}, timeout=30,
                       auth=(VDX_CLIENT["HUB_VDX_CLIENT_ID"], VDX_CLIENT["HUB_VDX_CLIENT_SECRET"])).json()
    rooms = len(httpx.get(f"{vdx_url}/v2/meetings", params=window, timeout=60,
                          headers={"Authorization": f"Bearer {token['access_token']}"}).json())
    return {
        "bookings": {"sent": len(bookings.sent), "answered": len(bookings.answered),
                     "lost": len((bookings.answered | bookings.unanswered) - booked),
                     "duplicated": max(0, rooms - len(booked))},
        "hl7v2": {"sent": len(messages.sent), "answered": len(messages.answered),
                  "lost": sum(1 for key in messages.sent if per_message[key] == 0),
                  "duplicated": sum(1 for key in messages.sent if per_message[key] > 1)},
    }


@contextmanager
def services(work: Path) -> Iterator[tuple[str, str]]:
    """A throwaway PostgreSQL and one VDX-compatible service; (database URL, VDX URL)."""
    cluster = PgCluster()
    if not cluster.available:
        sys.exit("PostgreSQL (initdb/pg_ctl) is not installed: run scripts/ensure-postgresql.sh")
    server = cluster.start()
    vdx_port = free_port()
    vdx = subprocess.Popen([sys.executable, "-m", "hub", "vdx", "serve", "--port", str(vdx_port)], cwd=ROOT,
                           env={**os.environ, **VDX_CLIENT, "HUB_LOG_LEVEL": "ERROR", "HUB_DATA_DIR": str(work)})
    try:
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE hub_faults"))
        admin.dispose()
        wait_until_healthy(f"http://127.0.0.1:{vdx_port}/healthz", vdx)
        yield server.rsplit("/", 1)[0] + "/hub_faults", f"http://127.0.0.1:{vdx_port}"
    finally:
        vdx.terminate()
        vdx.wait(30)
        cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=20, help="seconds of load in each phase")
    ap.add_argument("--concurrency", type=int, default=16, help="booking clients")
    args = ap.parse_args()
    body = template()
    speed = reference_ms()
    work = Path(tempfile.mkdtemp(prefix="hub-faults-"))
    instances: list[Instance] = []
    with services(work) as (database, vdx_url):
        try:
            instances.append(start_instance("a", database, vdx_url, work))
            # one client, one token: the instances share the issuer's key through the database
            HEADERS.update(authorised(instances[0].url, work / "a", database))
            one = throughput(instances[:1], args.concurrency, args.duration, body)
            instances.append(start_instance("b", database, vdx_url, work))
            two = throughput(instances, args.concurrency, args.duration, body)

            a, b = instances
            bookings, messages = Tally(), Tally()
            until = time.monotonic() + args.duration
            threads = booking_clients(instances, args.concurrency, until, body, bookings)
            threads += [mllp_client([a, b], until, messages, "FA"), mllp_client([b, a], until, messages, "FB")]
            for t in threads:
                t.start()
            time.sleep(args.duration / 2)  # a benchmark's schedule, not a test's wait: halfway into the load
            a.kill()
            for t in threads:
                t.join()
            unanswered = (len(bookings.unanswered), len(messages.unanswered))
            resend(bookings, messages, b, body, time.monotonic() + 120)
            figures = verdict(database, vdx_url, bookings, messages)
        finally:
            for instance in instances:
                instance.stop()

    print(f"machine: {machine()}; reference workload {speed:.0f} ms")
    print(f"bookings/s: {one:.0f} with one instance, {two:.0f} with two "
          f"({args.concurrency} clients, {args.duration:.0f} s each, one API worker an instance, PostgreSQL)")
    print(f"fault run: instance a killed with SIGKILL after {args.duration / 2:.0f} s; unanswered at the kill and "
          f"resent to b: {unanswered[0]} bookings, {unanswered[1]} HL7 v2 messages")
    for kind, f in figures.items():
        print(f"{kind:>9}: sent {f['sent']}, answered {f['answered']}, lost {f['lost']}, "
              f"duplicated {f['duplicated']}")
    if any(f["lost"] or f["duplicated"] for f in figures.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
