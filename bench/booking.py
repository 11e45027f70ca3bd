"""Benchmark: `POST /fhir/Appointment` end to end.

`hub serve` (hub + its VDX-compatible service, each in its own process, SQLite) on loopback, driven by N
concurrent clients, each booking distinct video appointments. Prints throughput and p50/p99 latency with the
machine it ran on. Run: `make bench` or `.venv/bin/python bench/booking.py --requests 3000 --concurrency 16`.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.api.server_thread import free_port  # noqa: E402
from hub.core.config import Settings  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def appointments(n: int) -> list[bytes]:
    example = json.loads((Settings().standards_dir / "fut" / "dk.ehealth.sundhed.fhir.ig.core" / "8.0.0" /
                          "package" / "example" / "Appointment-videoappointment01.json").read_text())
    example.pop("id"), example.pop("meta")
    server_set = ("meeting-url", "vmr-uri", "host-pin-code", "guest-pin-code")
    example["extension"] = [e for e in example["extension"] if not e["url"].endswith(server_set)]
    example["participant"] = example["participant"][:3]
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    out = []
    for i in range(n):
        appt = copy.deepcopy(example)
        start = base + timedelta(minutes=15 * i)
        appt["identifier"] = [{"system": "urn:oid:1.2.208.176.1.2.99.bench", "value": str(uuid.uuid4())}]
        appt["start"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        appt["end"] = (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(json.dumps(appt).encode())
    return out


async def drive(url: str, bodies: list[bytes], concurrency: int) -> tuple[list[float], int, float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            body = queue.get_nowait()
            t0 = time.perf_counter()
            r = await client.post("/fhir/Appointment", content=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 201:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(client) for _ in range(concurrency)])
        elapsed = time.perf_counter() - t0
    return latencies, errors, elapsed


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    settings = Settings()
    store = settings.standards_store.resolve()
    if not store.exists():
        sys.exit("run `hub schemas sync` (or `make bench`) first")
    data = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    (data / "standards").symlink_to(store)
    port = free_port()
    env = {**os.environ, "HUB_DATA_DIR": str(data), "HUB_LOG_LEVEL": "WARNING"}
    env.pop("HUB_VDX_URL", None)
    env.pop("HUB_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(port)], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                sys.exit("the hub did not start")
            time.sleep(0.2)
        bodies = appointments(args.warmup + args.requests)
        asyncio.run(drive(url, bodies[: args.warmup], args.concurrency))
        latencies, errors, elapsed = asyncio.run(drive(url, bodies[args.warmup:], args.concurrency))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)
    print(f"machine:       {machine()}")
    print(f"setup:         hub + VDX-compatible service on loopback, SQLite, {args.concurrency} concurrent clients")
    print(f"requests:      {len(latencies)} (after {args.warmup} warm-up), errors: {errors}")
    print(f"throughput:    {len(latencies) / elapsed:.1f} bookings/s")
    print(f"latency p50:   {pct(latencies, 50) * 1000:.1f} ms")
    print(f"latency p99:   {pct(latencies, 99) * 1000:.1f} ms")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
