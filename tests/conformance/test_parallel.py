"""Validation on several cores gives the outcome of one walk: a large Bundle in parts, many files shared out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.conformance import parallel
from hub.fhir.parts import Part, merge
from hub.fhir.validator import Validator
from tests.conformance.test_files import _hub_validate
from tests.conftest import FUT_EXAMPLES

MISSING = "http://example.dk/fhir/StructureDefinition/not-loaded"


def _examples() -> list[dict[str, Any]]:
    found = [json.loads(f.read_text(encoding="utf-8")) for f in sorted(FUT_EXAMPLES.glob("*.json"))]
    return [r for r in found if r.get("resourceType") not in (None, "Bundle")]


def _bundle(entries: int) -> dict[str, Any]:
    """A collection Bundle with findings of every kind: in entries (structure, codes, invariants), the Bundle's
    own (an unknown element, `total` outside a search), Bundle rules across entries (a duplicate fullUrl), and a
    finding said once per input (a profile not loaded, declared by entries of several parts)."""
    examples = _examples()
    entry = []
    for i in range(entries):
        resource = {**examples[i % len(examples)], "id": f"r{i}"}
        if i % 7 == 3:
            resource["meta"] = {"profile": [MISSING]}
        if i % 11 == 5:
            resource["unknownElement"] = True
        if resource["resourceType"] == "Patient" and i % 3 == 0:
            resource["gender"] = "x"
        entry.append({"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i % (entries - 2):012d}", "resource": resource})
    return {"resourceType": "Bundle", "type": "collection", "total": 1, "foo": 1, "entry": entry}


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return _bundle(90)


def test_a_bundle_in_parts_has_the_whole_walks_outcome(validator: Validator, bundle: dict[str, Any]) -> None:
    whole = validator.validate(bundle).issues
    rules = {i.rule for i in whole}
    assert {"structure", "bdl-1", "profile"} <= rules and any("fullUrl" in i.diagnostics for i in whole)
    assert sum(i.diagnostics.startswith(f"Profile {MISSING}") for i in whole) == 1  # said once
    assert validator.partable(bundle)
    for count, lead in ((2, 0), (3, 0), (3, 10), (4, 25)):
        shares = [validator.validate_part(bundle, Part(k, count, lead)) for k in range(count)]
        assert merge(shares).issues == whole, (count, lead)


def test_a_bundle_on_two_cores_in_worker_processes(validator: Validator, bundle: dict[str, Any]) -> None:
    assert parallel.validate_in_parts(validator, bundle, (), None, 2).issues == validator.validate(bundle).issues


def test_only_bundles_of_independent_entries_are_parted(validator: Validator, bundle: dict[str, Any]) -> None:
    assert not validator.partable({**bundle, "type": "document"})
    assert not validator.partable({**bundle, "type": "message"})
    assert not validator.partable({"resourceType": "Patient"})
    assert not validator.partable({**bundle, "entry": [*bundle["entry"], "not an entry"]})


def test_files_shared_out_keep_their_order_and_verdicts() -> None:
    assert list(parallel.shared_out(lambda n: n * n, range(40), 2)) == [n * n for n in range(40)]


def test_hub_validate_with_jobs_reports_what_one_process_does(data_root: Path, tmp_path: Path) -> None:
    """A Bundle large enough to be parted, and a folder of files shared out: the report is the same."""
    large = tmp_path / "large" / "bundle.json"
    large.parent.mkdir()
    large.write_text(json.dumps(_bundle(parallel.PARTED_ENTRIES)), encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, resource in enumerate(_examples()[:12]):
        (folder / f"{i:02d}.json").write_text(json.dumps(resource), encoding="utf-8")
    for target, finding in ((large, "@ Bundle.foo"), (folder, "04.json")):
        one = _hub_validate(data_root, "--jobs", "1", str(target))
        two = _hub_validate(data_root, "--jobs", "2", str(target))
        assert one.returncode == two.returncode == 1 and one.stdout == two.stdout and finding in two.stdout
