"""Benchmark: HL7 v2 in.

1. Parse + map, one core, after warm-up: SIU^S12 messages read as the listener reads them (`hub.hl7v2.message`,
   python-hl7 under it) and mapped to the canonical meeting (`hub.hl7v2.siu`), in alternating windows with plain
   python-hl7 parsing and with hl7apy parsing (find_groups, tolerant) of the same messages. Goal ≥ 3,000/s.
   Beside it, the complete conversion `hub convert --to fhir` makes of the same messages (`hub.hl7v2.to_fhir`:
   the V2-to-FHIR IG's message, segment and data-type sheets applied, the Bundle built), which the listener
   does not do.
2. MLLP end to end: `hub mllp` in its own process on a fresh SQLite database (the standards store `make sync`
   made), several connections sending ADT^A01 one after another (each stored with its encounter event and its ACK
   before the ACK is sent); messages per second sustained and ACK latency p50/p99 as the senders see it. Goal
   ≥ 500/s, p99 ≤ 50 ms.

Run: `.venv/bin/python bench/hl7v2.py [--seconds 10] [--connections 8]` (`make bench-hl7v2`).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hl7  # noqa: E402
from hl7apy.parser import parse_message  # noqa: E402

from bench.booking import machine, reference_ms  # noqa: E402
from bench.validate import interleaved  # noqa: E402
from hub.api.server_thread import free_port  # noqa: E402
from hub.core.config import Settings  # noqa: E402
from hub.fhir.packages import load_store  # noqa: E402
from hub.fhir.structure import StructureValidator  # noqa: E402
from hub.hl7v2.adt import registry  # noqa: E402
from hub.hl7v2.ig_mapping import IgMapping  # noqa: E402
from hub.hl7v2.ig_tables import IgTables  # noqa: E402
from hub.hl7v2.message import read  # noqa: E402
from hub.hl7v2.mllp import MllpClient  # noqa: E402
from hub.hl7v2.siu import VideoPolicy, meeting_request  # noqa: E402
from hub.hl7v2.to_fhir import to_bundle  # noqa: E402

VIDEO = VideoPolicy()


def siu(number: int) -> bytes:
    day = 10 + number % 18
    sch = ["SCH", f"APT-{number}^EPJ", "", "", "", "", "NY^Ny aftale", "VIDEO^Videokonsultation", "KONTROL^Kontrol",
           "30", "min", f"^^^203103{day}100000^203103{day}103000", "", "", "", "", "D99^Jensen^Åse", "", "", "",
           "D99^Jensen^Åse", "", "", "", "", "Booked"]
    return ("\r".join([
        f"MSH|^~\\&|EPJ|OUH|HUB|HUB|20310301090000||SIU^S12^SIU_S12|S{number}|P|2.5|||||DAN|8859/1",
        "|".join(sch),
        f"PID|1||{1000000000 + number}^^^CPR^NNDNK||Bærggren^Nåncy||19010101|F",
        "RGS|1|A",
        f"AIS|1|A|VIDEO^Videokonsultation|203103{day}100000|||30|min",
        "AIP|1|A|D123^Hansen^Peter|DOC",
    ]) + "\r").encode("iso-8859-1")


def adt(sender: int, number: int) -> bytes:
    return ("\r".join([
        f"MSH|^~\\&|EPJ|OUH|HUB|HUB|20270312090000||ADT^A01^ADT_A01|B{sender}-{number}|P|2.5|||||DAN|8859/1",
        "EVN|A01|20270312085500",
        f"PID|1||{1000000000 + number}^^^CPR^NNDNK||Bærggren^Nåncy||19010101|F",
        f"PV1|1|I|OUH^K1^3||||||||||||||||V{sender}-{number}^^^OUH^VN" + "|" * 25 + "20270312084500",
    ]) + "\r").encode("iso-8859-1")


def parse_and_map(raw: bytes) -> None:
    message = read(raw)
    meeting_request(message)
    VIDEO.matches(message)


def end_to_end(seconds: float, connections: int) -> tuple[int, float, list[float]]:
    """(messages, seconds, ACK latencies in ms) of `connections` senders against `hub mllp` in its own process."""
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        (Path(data) / "standards").symlink_to(Settings().standards_store.resolve())  # the synced store, shared
        env = {**os.environ, "HUB_DATA_DIR": data, "HUB_LOG_LEVEL": "WARNING"}
        proc = subprocess.Popen([sys.executable, "-m", "hub", "mllp", "--port", str(port)], env=env,
                                stderr=subprocess.DEVNULL)
        try:
            _wait_for(port)
            with MllpClient("127.0.0.1", port) as warm:  # the first message pays the imports
                warm.send(adt(999, 0))
            latencies: list[list[float]] = [[] for _ in range(connections)]
            failed: list[bytes] = []
            start = time.perf_counter()
            deadline = start + seconds

            def sender(index: int) -> None:
                with MllpClient("127.0.0.1", port, timeout=30) as client:
                    number = 0
                    while time.perf_counter() < deadline:
                        number += 1
                        t0 = time.perf_counter()
                        ack = client.send(adt(index, number))
                        latencies[index].append((time.perf_counter() - t0) * 1000)
                        if b"MSA|AA|" not in ack:
                            failed.append(ack)

            threads = [threading.Thread(target=sender, args=(i,)) for i in range(connections)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
        finally:
            proc.terminate()
            proc.wait(30)
    if failed:
        print(f"FAILED:         {len(failed)} messages not AA, e.g. {failed[0][:200]!r}")
        sys.exit(1)
    flat = [x for per in latencies for x in per]
    return len(flat), elapsed, flat


def _wait_for(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("hub mllp did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of each measurement")
    ap.add_argument("--connections", type=int, default=8, help="concurrent MLLP senders")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    speed = [reference_ms()]
    items = [siu(n) for n in range(50)]
    texts = [raw.decode("iso-8859-1") for raw in items]
    for raw in items:
        parse_and_map(raw)  # warm-up
    mapped, plain = interleaved([parse_and_map, lambda raw: hl7.parse(raw.decode("iso-8859-1"))], items,
                                args.seconds)
    (hl7apy_rates,) = interleaved([lambda text: parse_message(text, find_groups=True)], texts, 2.0)
    store = Settings().standards_store
    ig = IgMapping(IgTables.in_store(store), registry, StructureValidator(load_store(store)).with_arrays)
    for raw in items:
        to_bundle(read(raw), ig)  # warm-up: the sheets read once
    (converted,) = interleaved([lambda raw: to_bundle(read(raw), ig)], items, 2.0)
    count, elapsed, latencies = end_to_end(args.seconds, args.connections)
    speed.append(reference_ms())
    cuts = statistics.quantiles(latencies, n=100)
    print(f"machine:        {machine()}")
    print(f"machine speed:  reference workload {speed[0]:.0f} ms before, {speed[1]:.0f} ms after (lower is faster)")
    print(f"input:          50 SIU^S12 (v2.5, ISO-8859-1, {sum(map(len, items)) / len(items):.0f} bytes each); "
          "ADT^A01 for MLLP")
    print(f"parse + map:    {statistics.median(mapped):.0f} messages/s (median of {len(mapped)} windows of 0.5 s; "
          f"{min(mapped):.0f}–{max(mapped):.0f}), {1000 / statistics.median(mapped):.3f} ms a message")
    print(f"python-hl7:     {statistics.median(plain):.0f} messages/s parsing alone (same windows)")
    print(f"hl7apy:         {statistics.median(hl7apy_rates):.0f} messages/s parsing alone (find_groups)")
    print(f"hub convert:    {statistics.median(converted):.0f} messages/s parsed and converted to FHIR by the IG's "
          f"sheets, {1000 / statistics.median(converted):.3f} ms a message")
    print(f"MLLP e2e:       {count / elapsed:.0f} messages/s over {elapsed:.1f} s, {args.connections} connections; "
          f"ACK p50 {statistics.median(latencies):.1f} ms, p99 {cuts[98]:.1f} ms, max {max(latencies):.1f} ms")


if __name__ == "__main__":
    main()
