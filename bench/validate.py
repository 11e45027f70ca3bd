"""Benchmark: the validator on MedCom CareCommunication message Bundles, one core, after warm-up.

Reports package loading (indexing, and compiling the profiles the Bundles use), Bundles per second and the cost
per Bundle entry, and in the same run plain fhir.resources parsing of the same Bundles for comparison (parsing
alone: no profiles, no invariants), in alternating half-second windows. Input: the CareCommunication 5.0.2
package's example Bundles and MedCom's SendExamples (JSON). Then, as a tester runs it, `hub validate` from the
command line on a collection Bundle of `--large` entries (FUT's examples over and over, each with an id of its
own; 10,000 by default, 0 skips it): the wall-clock time of the whole command, startup included, median of three,
on one core (`--jobs 1`) and on all (the default).
Run: `.venv/bin/python bench/validate.py [--seconds 10] [--large 10000]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.booking import machine, reference_ms  # noqa: E402
from hub.conformance.parallel import cores  # noqa: E402
from hub.core import standards  # noqa: E402
from hub.core.config import Settings  # noqa: E402
from hub.fhir.packages import PackageSet  # noqa: E402
from hub.fhir.validator import Validator  # noqa: E402


def bundles() -> list[dict[str, Any]]:
    cc = Settings().standards_dir / "medcom" / "fhir" / "medcom.fhir.dk.carecommunication"
    files = sorted((cc / "5.0.2" / "package" / "example").glob("Bundle-*.json"))
    files += sorted((cc / "examples" / "SendExamples").glob("*.json"))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def large_bundle(entries: int) -> dict[str, Any]:
    """A collection Bundle of `entries` FUT example resources, each with an id and a fullUrl of its own."""
    folder = Settings().standards_dir / "fut" / "dk.ehealth.sundhed.fhir.ig.core" / "8.0.0" / "package" / "example"
    examples = [json.loads(f.read_text(encoding="utf-8")) for f in sorted(folder.glob("*.json"))
                if not f.name.startswith(".")]
    examples = [r for r in examples if r.get("resourceType") not in (None, "Bundle")]
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
         "resource": {**examples[i % len(examples)], "id": f"r{i}"}} for i in range(entries)]}


def command_seconds(path: Path, jobs: int, runs: int = 3) -> list[float]:
    """Wall-clock seconds of `hub validate --jobs JOBS FILE`, each run a fresh process."""
    hub = Path(sys.executable).with_name("hub")
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([str(hub), "validate", "--jobs", str(jobs), str(path)], capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return times


def rate(fn: Any, items: list[Any], seconds: float) -> float:
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for item in items:
            fn(item)
        done += len(items)
    return done / (time.perf_counter() - t0)


def interleaved(fns: list[Any], items: list[Any], seconds: float, window: float = 0.5) -> list[list[float]]:
    """Rates of each function in alternating windows, so that a shared machine's changes of speed (they come
    and go within seconds here) fall on all of them alike."""
    rates: list[list[float]] = [[] for _ in fns]
    for _ in range(max(1, round(seconds / window))):
        for fn, found in zip(fns, rates, strict=True):
            found.append(rate(fn, items, window))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of each measurement")
    ap.add_argument("--large", type=int, default=10000, help="entries of the command-line Bundle (0: skip)")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the one-line note about absent dependencies

    speed = [reference_ms()]
    t0 = time.perf_counter()
    packages = PackageSet(standards.package_dirs(Settings().standards_store))
    indexed = time.perf_counter() - t0
    validator = Validator(packages)
    items = bundles()
    t1 = time.perf_counter()
    verdicts = [validator.validate(b) for b in items]  # the first pass compiles what the Bundles use
    compiled = time.perf_counter() - t1
    invalid = sum(not v.ok for v in verdicts)
    entries = sum(len(b.get("entry", [])) for b in items) / len(items)

    from fhir.resources.R4B.bundle import Bundle

    validated, parsed = interleaved([validator.validate, Bundle.model_validate], items, args.seconds)
    per_second, parse_rate = statistics.median(validated), statistics.median(parsed)
    ratio = statistics.median(v / p for v, p in zip(validated, parsed, strict=True))

    speed.append(reference_ms())
    print(f"machine:         {machine()}")
    print(f"machine speed:   reference workload {speed[0]:.0f} ms before, {speed[1]:.0f} ms after (lower is "
          "faster; the same workload as `make bench`)")
    print(f"input:           {len(items)} CareCommunication Bundles, {entries:.1f} entries each on average, "
          f"{invalid} invalid")
    print(f"packages:        {len(packages.packages)} indexed in {indexed:.2f} s; profiles compiled on first use "
          f"in {compiled:.2f} s")
    print(f"validator:       {per_second:.1f} bundles/s (median of {len(validated)} windows of 0.5 s; "
          f"{min(validated):.0f}–{max(validated):.0f}), {1000 / per_second:.2f} ms a bundle, "
          f"{1000 / per_second / entries:.3f} ms an entry")
    print(f"fhir.resources:  {parse_rate:.1f} bundles/s parsing alone, {1000 / parse_rate:.2f} ms a bundle "
          f"(in the windows between)")
    print(f"ratio:           the validator does {ratio:.2f}× as many bundles a second as fhir.resources parses")
    if args.large:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "large.json"
            path.write_text(json.dumps(large_bundle(args.large)), encoding="utf-8")
            for jobs in dict.fromkeys((1, cores())):
                times = command_seconds(path, jobs)
                print(f"hub validate:    a {args.large:,}-entry collection Bundle of FUT examples with --jobs "
                      f"{jobs} in {statistics.median(times):.2f} s (median of {len(times)}: "
                      f"{', '.join(f'{t:.2f}' for t in times)}), startup included")
    if invalid:
        sys.exit(1)


if __name__ == "__main__":
    main()
