"""Benchmark: OIOXML in, FHIR out, one core, after warm-up: each message's Emessages parsed and validated
against MedCom's XSD, converted to a CareCommunication, and the Bundle validated against the MedCom profiles.

Input: MedCom's flow 1 example (an XDIS91 with the XBIN01 of its 4 KB PDF) and MedCom's CareCommunication
SendExamples converted to OIOXML once before timing (XDIS91, and XBIN01s where they carry files). Run:
`.venv/bin/python bench/oioxml.py [--seconds 10]` (`make bench-oioxml`). The goal is ≥ 200 messages/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.booking import machine, reference_ms  # noqa: E402
from bench.validate import interleaved  # noqa: E402
from hub.convert.service import Converter, danish_display  # noqa: E402
from hub.core import standards  # noqa: E402
from hub.core.config import Settings  # noqa: E402
from hub.core.routing import RoutingTable  # noqa: E402
from hub.fhir.io import parse_xml, parse_xml_root  # noqa: E402
from hub.fhir.packages import PackageSet  # noqa: E402
from hub.fhir.validator import Validator  # noqa: E402
from hub.medcom.schemas import OioxmlSchemas  # noqa: E402

DIRECTORY = {"organisations": [{"name": "MedCom testcenter", "sor": "359001000016000", "gln": "5790001382445"},
                               {"name": "Social og Sundhed Odense Kommune", "sor": "328051000016008",
                                "gln": "5790000121441"}], "receivers": []}


def messages(converter: Converter, standards_dir: Path) -> list[list[bytes]]:
    examples = standards_dir / "medcom" / "xml" / "examples" / "carecommunication-conversion"
    found = [[(examples / n).read_bytes() for n in ("Flow1-XDIS91_Ex_to_FHIR.xml", "Flow1-XBIN01_Ex_to_FHIR.xml")]]
    sends = standards_dir / "medcom" / "fhir" / "medcom.fhir.dk.carecommunication" / "examples" / "SendExamples"
    for path in sorted(sends.glob("Bundle-*")):
        raw = path.read_bytes()
        bundle = json.loads(raw) if path.suffix == ".json" else parse_xml(raw)
        found.append([o.body for o in converter.to_oioxml(bundle).outputs])
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of measurement")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    settings = Settings()
    speed = [reference_ms()]
    packages = PackageSet(standards.package_dirs(settings.standards_store))
    validator, schemas = Validator(packages), OioxmlSchemas(settings.standards_store)
    converter = Converter(settings.standards_store / "files" / "medcom" / "xml" / "schemas",
                          RoutingTable.from_json(DIRECTORY).organisation, danish_display(packages),
                          "http://localhost/fhir")
    items = messages(converter, settings.standards_dir)
    failures: list[str] = []

    def pipeline(message: list[bytes]) -> None:
        roots = [parse_xml_root(body) for body in message]
        for root in roots:
            if schemas.validate(root):
                failures.append("xsd")
        for conversion in converter.to_fhir(roots):
            if not validator.validate(conversion.bundle).ok:
                failures.append("fhir")

    def xsd_only(message: list[bytes]) -> None:
        for body in message:
            schemas.validate(parse_xml_root(body))

    t0 = time.perf_counter()
    for item in items:  # warm-up: compiles the schema sets and the profiles
        pipeline(item)
    warm = time.perf_counter() - t0
    full, xsd = interleaved([pipeline, xsd_only], items, args.seconds)
    speed.append(reference_ms())
    size = sum(len(b) for m in items for b in m) / len(items)
    print(f"machine:        {machine()}")
    print(f"machine speed:  reference workload {speed[0]:.0f} ms before, {speed[1]:.0f} ms after (lower is faster)")
    print(f"input:          {len(items)} messages ({sum(len(m) for m in items)} Emessages, {size / 1024:.1f} KiB "
          f"a message on average)")
    print(f"warm-up:        {warm:.2f} s (schema sets and profiles compiled on first use)")
    print(f"pipeline:       {statistics.median(full):.1f} messages/s (median of {len(full)} windows of 0.5 s; "
          f"{min(full):.0f}–{max(full):.0f}), {1000 / statistics.median(full):.2f} ms a message: XSD, convert, "
          "profile validation")
    print(f"XSD alone:      {statistics.median(xsd):.1f} messages/s (in the windows between)")
    if failures:
        print(f"FAILED:         {len(failures)} validations failed ({sorted(set(failures))})")
        sys.exit(1)


if __name__ == "__main__":
    main()
