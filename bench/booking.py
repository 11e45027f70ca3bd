"""Benchmark: `POST /fhir/Appointment` end to end.

`hub serve` (the hub and its VDX-compatible service, each in its own process, SQLite) on loopback, driven by
16 concurrent clients, each request booking a distinct video appointment. Prints bookings/s and p50/p99
latency with the machine it ran on.

The load comes from `wrk` (Debian package; `make bench` installs it), whose C client costs the two cores
almost nothing, so the figures are the hub's; `--driver python` uses an httpx client instead (no install,
but it takes a good share of the CPU itself). Run: `make bench`, or
`.venv/bin/python bench/booking.py --duration 30 --workers 2`.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.api.server_thread import free_port, wait_until_healthy  # noqa: E402
from hub.core.config import Settings  # noqa: E402

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


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


def template() -> str:
    """FUT's example video appointment, made bookable, with `__ID__` for the sender's identifier. Made bookable:
    one patient, no server-set fields, and without the contained Location nothing refers to (dom-3: FUT's known
    defect, README)."""
    example = json.loads((Settings().standards_dir / "fut" / "dk.ehealth.sundhed.fhir.ig.core" / "8.0.0" /
                          "package" / "example" / "Appointment-videoappointment01.json").read_text())
    example.pop("id"), example.pop("meta"), example.pop("contained")
    server_set = ("meeting-url", "vmr-uri", "host-pin-code", "guest-pin-code")
    example["extension"] = [e for e in example["extension"] if not e["url"].endswith(server_set)]
    example["participant"] = example["participant"][:3]
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    example["identifier"] = [{"system": "urn:oid:1.2.208.176.1.2.99.bench", "value": "__ID__"}]
    example["start"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    example["end"] = (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(example)


def authorised(url: str, data: Path, database: str | None = None,
               scope: str = "system/Appointment.cruds") -> dict[str, str]:
    """HEADERS with a bearer token, as a real client gets one: `hub clients add` on the hub's data folder (and
    database), then client credentials at `/auth/token` (tokens last five minutes: long enough for a run)."""
    env = {**os.environ, "HUB_DATA_DIR": str(data), **({"HUB_DATABASE_URL": database} if database else {})}
    made = subprocess.run([sys.executable, "-m", "hub", "clients", "add", f"bench-{uuid.uuid4().hex[:6]}",
                           "--organisation", "urn:oid:1.2.208.176.1.1|1234561000016000", "--scope", scope],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    client = json.loads(made.stdout)
    r = httpx.post(f"{url}/auth/token", data={"grant_type": "client_credentials"},
                   auth=(client["client_id"], client["client_secret"]), timeout=30)
    r.raise_for_status()
    return {**HEADERS, "Authorization": f"Bearer {r.json()['access_token']}"}


@contextmanager
def running_hub(workers: int) -> Iterator[tuple[str, int, dict[str, str]]]:
    store = Settings().standards_store.resolve()
    if not store.exists():
        sys.exit("run `hub schemas sync` (or `make bench`) first")
    data = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    (data / "standards").symlink_to(store)
    port = free_port()
    env = {**os.environ, "HUB_DATA_DIR": str(data), "HUB_LOG_LEVEL": "WARNING"}
    for var in ("HUB_VDX_URL", "HUB_DATABASE_URL"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "hub", "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{url}/healthz", proc)
        yield url, proc.pid, authorised(url, data)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(data, ignore_errors=True)


def reference_ms() -> float:
    """CPU time of a fixed pure-Python workload: how fast this shared machine is right now. Its neighbours move
    it by half from hour to hour, and every figure above moves with it; compare runs by this too."""
    t0 = time.process_time()
    sum(i * i for i in range(3_000_000))
    return (time.process_time() - t0) * 1000


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time (user + system) used so far by `hub serve` and its processes, by role: a steadier figure than
    throughput on a shared machine, whose neighbours move the latter by a fifth from run to run."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for p in _descendants(pid):
        try:
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        role = "vdx" if " vdx " in cmdline else "hub"
        used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


def run_wrk(url: str, body: str, concurrency: int, seconds: int, headers: dict[str, str]) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(body)
    script = str(Path(__file__).with_name("booking.lua"))
    cmd = ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s",
           "-s", script, url, "--", f.name, uuid.uuid4().hex[:8], headers["Authorization"].split(" ", 1)[1]]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    doc = json.loads(next(line for line in out.splitlines() if line.startswith("WRKJSON "))[8:])
    return {"requests": doc["requests"], "seconds": doc["duration_us"] / 1e6,
            "errors": doc["status_errors"] + doc["socket_errors"],
            "p50_ms": doc["p50_us"] / 1000, "p99_ms": doc["p99_us"] / 1000}


async def _drive_python(url: str, bodies: list[bytes], concurrency: int,
                        headers: dict[str, str]) -> dict[str, float]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    errors = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            body = queue.get_nowait()
            t0 = time.perf_counter()
            r = await client.post("/fhir/Appointment", content=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 201

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(client) for _ in range(concurrency)])
        elapsed = time.perf_counter() - t0
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"requests": len(latencies), "seconds": elapsed, "errors": errors,
            "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


def run_python(url: str, body: str, concurrency: int, requests: int, headers: dict[str, str]) -> dict[str, float]:
    bodies = [body.replace("__ID__", uuid.uuid4().hex).encode() for _ in range(requests)]
    return asyncio.run(_drive_python(url, bodies, concurrency, headers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    ap.add_argument("--duration", type=int, default=30, help="seconds of load (wrk)")
    ap.add_argument("--requests", type=int, default=3000, help="bookings to make (python driver)")
    ap.add_argument("--warmup", type=int, default=5, help="seconds (wrk) or hundreds of requests (python)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="hub API worker processes")
    args = ap.parse_args()

    body = template()
    speed = [reference_ms()]
    with running_hub(args.workers) as (url, pid, headers):
        if args.driver == "wrk":
            run_wrk(url, body, args.concurrency, args.warmup, headers)
            before = cpu_seconds(pid)
            result = run_wrk(url, body, args.concurrency, args.duration, headers)
        else:
            run_python(url, body, args.concurrency, args.warmup * 100, headers)
            before = cpu_seconds(pid)
            result = run_python(url, body, args.concurrency, args.requests, headers)
        after = cpu_seconds(pid)
    speed.append(reference_ms())
    print(f"machine:       {machine()}")
    print(f"setup:         hub ({args.workers} worker processes) + VDX-compatible service on loopback, SQLite, "
          f"{args.concurrency} concurrent clients ({args.driver}), each request with a bearer token")
    print(f"bookings:      {result['requests']:.0f} in {result['seconds']:.1f} s, errors: {result['errors']:.0f}")
    print(f"throughput:    {result['requests'] / result['seconds']:.1f} bookings/s")
    print(f"latency p50:   {result['p50_ms']:.1f} ms")
    print(f"latency p99:   {result['p99_ms']:.1f} ms")
    per = {role: (after[role] - before.get(role, 0.0)) * 1000 / max(result["requests"], 1) for role in after}
    print(f"machine speed: reference workload {speed[0]:.0f} ms before, {speed[1]:.0f} ms after (lower is faster)")
    print(f"CPU/booking:   hub {per.get('hub', 0):.2f} ms, VDX-compatible service {per.get('vdx', 0):.2f} ms")
    if result["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
