"""The standards store: `hub schemas sync` checks every checksum and unpacks the FHIR packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.core import standards
from tests.conftest import SHARED


def test_sync_checks_checksums(tmp_path: Path) -> None:
    [vdx] = [s for s in standards.load_manifest() if s.kind == "openapi"]
    store = tmp_path / "store"
    standards.sync(SHARED, store, [vdx])
    assert standards.file_path(store, vdx.id).read_bytes() == (SHARED / vdx.path).read_bytes()
    forged = standards.Standard(vdx.id, vdx.version, vdx.kind, vdx.path, "0" * 64, vdx.origin)
    with pytest.raises(standards.SyncError, match="does not match"):
        standards.sync(SHARED, tmp_path / "other", [forged])
    with pytest.raises(standards.SyncError, match="not found"):
        standards.sync(tmp_path / "nowhere", tmp_path / "third", [vdx])


def test_sync_unpacks_fhir_packages_with_every_pinned_version(data_root: Path) -> None:
    dirs = standards.package_dirs(data_root / "standards")
    loaded = {(m["name"], m["version"]) for m in (json.loads((d / "package.json").read_text()) for d in dirs)}
    assert {("hl7.fhir.r4.core", "4.0.1"), ("dk.ehealth.sundhed.fhir.ig.core", "8.0.0"),
            ("medcom.fhir.dk.carecommunication", "5.0.2"), ("medcom.fhir.dk.acknowledgement", "2.0.3"),
            ("medcom.fhir.dk.hospitalnotification", "3.0.2"), ("medcom.fhir.dk.messagedefinitions", "1.0.0")} <= loaded
    # every MedCom / HL7 Denmark version a loaded package pins is loaded too
    for d in dirs:
        pins = json.loads((d / "package.json").read_text()).get("dependencies", {})
        for name, version in pins.items():
            if name.startswith(("medcom.", "hl7.fhir.dk.")):
                assert (name, version) in loaded, (d, name, version)


def test_hub_schemas_sync_says_one_line_unless_asked_for_each(data_root: Path) -> None:
    env = {**os.environ, "HUB_DATA_DIR": str(data_root)}
    quiet = subprocess.run([sys.executable, "-m", "hub", "schemas", "sync"], env=env, capture_output=True,
                           check=True, timeout=120)
    count = len(standards.load_manifest())
    assert quiet.stdout.decode().splitlines() == [f"{count} standards in {data_root / 'standards'}"]
    verbose = subprocess.run([sys.executable, "-m", "hub", "schemas", "sync", "--verbose"], env=env,
                             capture_output=True, check=True, timeout=120)
    lines = verbose.stdout.decode().splitlines()
    assert sum(line.startswith(("synced ", "ok ")) for line in lines) == count  # each, already in the store or not
