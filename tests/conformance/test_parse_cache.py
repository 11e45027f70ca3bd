"""The FHIRPath parse trees `hub validate` keeps between runs (`hub.conformance.parse_cache`): written by a run,
read by the next, with the same report; a broken file or one of another parser is ignored and replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson

from hub.conformance import parse_cache
from hub.fhir import fhirpath_trees
from hub.fhir.fhirpath_compiled import compile_expression
from tests.conftest import fut_appointment


def _validate(data: Path, file: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HUB_DATA_DIR": str(data)}
    return subprocess.run([sys.executable, "-m", "hub", "validate", "--format", "json", str(file)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_run_keeps_the_trees_and_the_next_gives_the_same_report(data_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "standards").symlink_to(data_root / "standards")
    file = tmp_path / "appointment.json"
    file.write_text(json.dumps(fut_appointment()))
    cache = data / "cache" / "fhirpath-trees.json"

    first = _validate(data, file)
    kept = orjson.loads(cache.read_bytes())
    assert kept["parser"] == fhirpath_trees.PARSER and len(kept["trees"]) > 20
    assert "start.exists() = end.exists()" in kept["trees"]  # FUT's app-3, which the appointment meets
    second = _validate(data, file)
    assert second.stdout == first.stdout and second.returncode == first.returncode

    cache.write_bytes(b"{not json")
    assert _validate(data, file).stdout == first.stdout
    assert orjson.loads(cache.read_bytes())["trees"].keys() == kept["trees"].keys()
    cache.write_bytes(orjson.dumps({"parser": "fhirpathpy 0.0.1", "trees": {"x": {}}}))
    assert _validate(data, file).stdout == first.stdout
    assert "x" not in orjson.loads(cache.read_bytes())["trees"]


def test_trees_handed_over_are_used_as_they_are(tmp_path: Path) -> None:
    """A tree from the file is not parsed again: here the file says an expression means another one."""
    expression, meant = "'parse-cache-test' = 'no'", "'parse-cache-test' = 'parse-cache-test'"
    cache = tmp_path / "trees.json"
    cache.write_bytes(orjson.dumps({"parser": fhirpath_trees.PARSER,
                                    "trees": {expression: fhirpath_trees.tree(meant)}}))
    parse_cache.load(cache)
    assert compile_expression(expression).fn([{}], None) == [True]  # type: ignore[arg-type]
    assert expression not in fhirpath_trees.parsed_here()
