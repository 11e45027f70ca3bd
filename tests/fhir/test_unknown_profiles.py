"""A profile that a profile names (a type's profile, a target profile) and no loaded package holds: an error where
every package the naming one depends on is loaded, a warning where it depends on one left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.core import standards
from hub.fhir.packages import PackageSet, write_package
from hub.fhir.validator import Validator

BASE = "http://hl7.org/fhir/StructureDefinition/"
UNKNOWN = "http://example.org/sd/not-anywhere"


def _profile(pid: str, differential: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "id": pid, "url": f"http://example.org/sd/{pid}", "name": pid,
            "status": "draft", "kind": "resource", "abstract": False, "type": "Patient",
            "baseDefinition": BASE + "Patient", "derivation": "constraint",
            "differential": {"element": [{"id": "Patient", "path": "Patient"}, *differential]}}


NAMING = _profile("naming", [
    {"id": "Patient.identifier", "path": "Patient.identifier",
     "type": [{"code": "Identifier", "profile": [UNKNOWN]}]},
    {"id": "Patient.managingOrganization", "path": "Patient.managingOrganization",
     "type": [{"code": "Reference", "targetProfile": [UNKNOWN + "-organization"]}]}])
PATIENT = {"resourceType": "Patient", "meta": {"profile": [NAMING["url"]]},
           "identifier": [{"system": "urn:x", "value": "1"}],
           "managingOrganization": {"reference": "Organization/o1"}}


def _validator(data_root: Path, folder: Path, dependencies: dict[str, str]) -> Validator:
    core = next(d for d in standards.package_dirs(data_root / "standards") if "hl7.fhir.r4.core#4.0.1" in str(d))
    write_package(folder, "example.naming", [NAMING], dependencies)
    return Validator(PackageSet([core, folder]))


def findings(validator: Validator) -> set[tuple[str, str | None]]:
    return {(i.severity, i.expression) for i in validator.validate(PATIENT).issues if i.rule != "dom-6"}


@pytest.mark.parametrize(("dependencies", "severity"), [
    ({"hl7.fhir.r4.core": "4.0.1"}, "error"),  # all loaded: missing indeed
    ({"hl7.fhir.r4.core": "4.0.1", "example.left-out": "1.0.0"}, "warning"),  # likely in the one left out
])
def test_a_profile_named_and_not_loaded(data_root: Path, tmp_path: Path, dependencies: dict[str, str],
                                        severity: str) -> None:
    assert findings(_validator(data_root, tmp_path, dependencies)) == {
        (severity, "Patient.identifier[0]"), (severity, "Patient.managingOrganization")}


def test_a_profile_held_but_unusable_is_a_warning_not_a_missing_one(data_root: Path, tmp_path: Path) -> None:
    """A profile that is in the packages but whose snapshot cannot be made is not missing: a warning."""
    broken = _profile("broken", [{"id": "Patient.noSuchElement", "path": "Patient.noSuchElement", "min": 1}])
    broken["url"] = UNKNOWN
    core = next(d for d in standards.package_dirs(data_root / "standards") if "hl7.fhir.r4.core#4.0.1" in str(d))
    write_package(tmp_path, "example.naming", [NAMING, broken], {"hl7.fhir.r4.core": "4.0.1"})
    found = findings(Validator(PackageSet([core, tmp_path])))
    assert ("warning", "Patient.identifier[0]") in found and ("error", "Patient.identifier[0]") not in found
