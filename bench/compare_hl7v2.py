"""Field-level agreement of `hub convert --to fhir` with another converter's outputs for the same HL7 v2 messages.

Give a folder of pairs `NAME.hl7` and `NAME-expected.json` (a FHIR Bundle the other converter made of the message,
e.g. Microsoft FHIR-Converter's functional-test outputs for its sample messages). Of each pair, the basic
demographic and encounter fields are read from both Bundles, normalised (times as instants where both give an
offset, else as written locally; codes without their systems, which converters choose differently; lists as
sets), and compared. Prints per field how many pairs agree, differ, or have it on one side only, the share of the
fields both give that agree and of all fields either gives, and the messages the hub does not convert.
Run: `.venv/bin/python bench/compare_hl7v2.py FOLDER`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.core.config import Settings  # noqa: E402
from hub.fhir.packages import load_store  # noqa: E402
from hub.fhir.structure import StructureValidator  # noqa: E402
from hub.hl7v2.adt import registry  # noqa: E402
from hub.hl7v2.ig_mapping import IgMapping  # noqa: E402
from hub.hl7v2.ig_tables import IgTables  # noqa: E402
from hub.hl7v2.message import NotHl7, Unmappable, read  # noqa: E402
from hub.hl7v2.to_fhir import NotConvertible, to_bundle  # noqa: E402

Resource = dict[str, Any]


def _first(bundle: Resource, rtype: str) -> Resource:
    return next((e["resource"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == rtype),
                {})


def _all(bundle: Resource, rtype: str) -> list[Resource]:
    return [e["resource"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == rtype]


def _time(text: Any) -> Any:
    """A FHIR date or dateTime as something comparable: an instant where it has an offset, else its text."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.timestamp() if moment.tzinfo is not None else text[:19]


def _codes(concept: Any) -> frozenset[str] | None:
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    found = frozenset(str(c.get("code")) for c in codings if isinstance(c, dict) and c.get("code"))
    return found or None


def _name(patient: Resource) -> Resource:
    names: list[Resource] = patient.get("name") or [{}]
    return next((n for n in names if n.get("use") in (None, "official", "usual")), names[0])


def _address(patient: Resource) -> Resource:
    addresses: list[Resource] = patient.get("address") or [{}]
    return addresses[0]


def _set(values: Any) -> frozenset[str] | None:
    found = frozenset(str(v) for v in values if v)
    return found or None


def _locations(bundle: Resource) -> frozenset[str] | None:
    """What names the encounter's locations: the names and identifier values of the Locations in the Bundle."""
    words = set()
    for location in _all(bundle, "Location"):
        if location.get("name"):
            words.add(str(location["name"]))
        words |= {str(i.get("value")) for i in location.get("identifier", []) if i.get("value")}
    return frozenset(words) or None


FIELDS: dict[str, Callable[[Resource], Any]] = {
    "Patient.identifier": lambda b: _set(i.get("value") for i in _first(b, "Patient").get("identifier", [])),
    "Patient.name.family": lambda b: _name(_first(b, "Patient")).get("family"),
    "Patient.name.given": lambda b: tuple(_name(_first(b, "Patient")).get("given", [])) or None,
    "Patient.birthDate": lambda b: _first(b, "Patient").get("birthDate"),
    "Patient.gender": lambda b: _first(b, "Patient").get("gender"),
    "Patient.address.line": lambda b: tuple(_address(_first(b, "Patient")).get("line", [])) or None,
    "Patient.address.city": lambda b: _address(_first(b, "Patient")).get("city"),
    "Patient.address.postalCode": lambda b: _address(_first(b, "Patient")).get("postalCode"),
    "Patient.address.country": lambda b: _address(_first(b, "Patient")).get("country"),
    "Patient.telecom": lambda b: _set(t.get("value") for t in _first(b, "Patient").get("telecom", [])),
    "Patient.maritalStatus": lambda b: _codes(_first(b, "Patient").get("maritalStatus")),
    "Patient.deceased": lambda b: _time(_first(b, "Patient").get("deceasedDateTime"))
    or _first(b, "Patient").get("deceasedBoolean"),
    "Encounter.identifier": lambda b: _set(i.get("value") for i in _first(b, "Encounter").get("identifier", [])),
    "Encounter.class": lambda b: (_first(b, "Encounter").get("class") or {}).get("code"),
    "Encounter.status": lambda b: _first(b, "Encounter").get("status"),
    "Encounter.period.start": lambda b: _time((_first(b, "Encounter").get("period") or {}).get("start")),
    "Encounter.period.end": lambda b: _time((_first(b, "Encounter").get("period") or {}).get("end")),
    "Encounter.type": lambda b: _codes((_first(b, "Encounter").get("type") or [{}])[0]),
    "Encounter.location": _locations,
    "Encounter.participant.type": lambda b: _set(c for p in _first(b, "Encounter").get("participant", [])
                                                 for t in p.get("type", []) for c in _codes(t) or ()),
    "Encounter.hospitalization.admitSource": lambda b: _codes(
        (_first(b, "Encounter").get("hospitalization") or {}).get("admitSource")),
    "Encounter.hospitalization.dischargeDisposition": lambda b: _codes(
        (_first(b, "Encounter").get("hospitalization") or {}).get("dischargeDisposition")),
}


def compare(folder: Path) -> tuple[dict[str, Counter[str]], list[str], int]:
    store = Settings().standards_store
    mapping = IgMapping(IgTables.in_store(store), registry, StructureValidator(load_store(store)).with_arrays)
    counts: dict[str, Counter[str]] = {name: Counter() for name in FIELDS}
    refused: list[str] = []
    pairs = 0
    for message in sorted(folder.glob("*.hl7")):
        expected_path = message.with_name(message.stem + "-expected.json")
        if not expected_path.exists():
            continue
        pairs += 1
        expected = json.loads(expected_path.read_text(encoding="utf-8"))
        try:
            ours = to_bundle(read(message.read_bytes()), mapping)
        except (NotHl7, Unmappable, NotConvertible) as exc:
            refused.append(f"{message.name}: {exc}")
            ours = {}
        for name, field in FIELDS.items():
            theirs, mine = field(expected), field(ours)
            if theirs is None and mine is None:
                continue
            counts[name]["agree" if theirs == mine else "differ" if theirs is not None and mine is not None
                         else "other only" if mine is None else "hub only"] += 1
    return counts, refused, pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="pairs NAME.hl7 and NAME-expected.json")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    counts, refused, pairs = compare(args.folder)
    print(f"{pairs} messages; {'field':46} agree  differ  other only  hub only")
    for name, found in counts.items():
        print(f"{'':{len(str(pairs)) + 11}}{name:46} {found['agree']:5}  {found['differ']:6}  {found['other only']:10}"
              f"  {found['hub only']:8}")
    total = sum(counts.values(), Counter())
    both = total["agree"] + total["differ"]
    either = both + total["other only"] + total["hub only"]
    print(f"agree where both give the field: {total['agree']}/{both} ({100 * total['agree'] / max(both, 1):.0f}%); "
          f"of all the fields either gives: {total['agree']}/{either} ({100 * total['agree'] / max(either, 1):.0f}%)")
    for line in refused:
        print(f"not converted: {line}")


if __name__ == "__main__":
    main()
