"""Snapshots made from differentials (`hub.fhir.snapshot`), so a profile published without one is applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.core import standards
from hub.fhir.packages import PackageSet, write_package
from hub.fhir.snapshot import SnapshotError, snapshot
from hub.fhir.validator import Validator

BASE = "http://example.org/fhir/StructureDefinition/"
MRN = "urn:oid:1.2.208.176.1.2"


def profile(name: str, base: str, elements: list[dict[str, Any]], type_: str = "Patient") -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "url": BASE + name, "name": name, "status": "active",
            "kind": "resource", "abstract": False, "type": type_, "baseDefinition": base,
            "derivation": "constraint", "differential": {"element": elements}}


PATIENT = profile("mrn-patient", "http://hl7.org/fhir/StructureDefinition/Patient", [
    {"id": "Patient", "path": "Patient"},
    {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
     "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
    {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
    {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "fixedUri": MRN},
    {"id": "Patient.identifier:mrn.value", "path": "Patient.identifier.value", "min": 1},
    {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1,
     "constraint": [{"key": "mrn-1", "severity": "error", "human": "born in this millennium",
                     "expression": "$this >= @2000-01-01"}]},
])
STRICTER = profile("stricter-patient", BASE + "mrn-patient", [
    {"id": "Patient.gender", "path": "Patient.gender", "min": 1}])
OBSERVATION = profile("quantity-observation", "http://hl7.org/fhir/StructureDefinition/Observation", [
    {"id": "Observation.valueQuantity", "path": "Observation.valueQuantity", "min": 1},
    {"id": "Observation.valueQuantity.unit", "path": "Observation.valueQuantity.unit", "min": 1},
], "Observation")


@pytest.fixture(scope="module")
def profiles(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[PackageSet, Validator]:
    folder = tmp_path_factory.mktemp("profiles")
    write_package(folder, "example.profiles", [PATIENT, STRICTER, OBSERVATION], {"hl7.fhir.r4.core": "4.0.1"})
    core = next(d for d in standards.package_dirs(data_root / "standards") if "hl7.fhir.r4.core#4.0.1" in str(d))
    packages = PackageSet([core, folder])
    return packages, Validator(packages)


def ids(elements: list[dict[str, Any]]) -> list[str]:
    return [str(e["id"]) for e in elements]


def test_the_differential_constrains_slices_and_unfolds_into_the_base(profiles: tuple[PackageSet, Validator]) -> None:
    made = snapshot(PATIENT, profiles[0], "example.profiles#1.0.0")
    by_id = {e["id"]: e for e in made}
    assert by_id["Patient.identifier"]["min"] == 1 and by_id["Patient.identifier"]["slicing"]["rules"] == "open"
    assert by_id["Patient.identifier:mrn"]["sliceName"] == "mrn"
    assert by_id["Patient.identifier:mrn.system"]["fixedUri"] == MRN  # Identifier unfolded under the slice
    order = ids(made)
    assert order.index("Patient.identifier") < order.index("Patient.identifier:mrn") < \
        order.index("Patient.identifier:mrn.system") < order.index("Patient.active")
    keys = [c["key"] for c in by_id["Patient.birthDate"]["constraint"]]
    assert "mrn-1" in keys and "ele-1" in keys  # the profile's constraint added to the base's


def test_a_profile_on_a_profile_without_snapshots_either(profiles: tuple[PackageSet, Validator]) -> None:
    made = {e["id"]: e for e in snapshot(STRICTER, profiles[0], "example.profiles#1.0.0")}
    assert made["Patient.gender"]["min"] == 1 and made["Patient.identifier:mrn.system"]["fixedUri"] == MRN


def test_a_choice_named_by_its_type_is_the_choice_restricted(profiles: tuple[PackageSet, Validator]) -> None:
    made = {e["id"]: e for e in snapshot(OBSERVATION, profiles[0], "example.profiles#1.0.0")}
    assert [t["code"] for t in made["Observation.value[x]"]["type"]] == ["Quantity"]
    assert made["Observation.value[x].unit"]["min"] == 1


def test_the_made_snapshot_is_applied(profiles: tuple[PackageSet, Validator]) -> None:
    validator = profiles[1]
    good = {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "0101001234"}],
            "birthDate": "2001-02-03", "gender": "female"}
    assert validator.validate(good, [BASE + "stricter-patient"]).ok
    bad = {"resourceType": "Patient", "identifier": [{"system": "urn:other", "value": "1"}], "birthDate": "1990-01-01"}
    rules = {i.rule for i in validator.validate(bad, [BASE + "stricter-patient"]).issues if i.severity == "error"}
    assert "mrn-1" in rules and any(r and "gender" in r for r in rules) and any(r and "mrn" in r for r in rules)
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "t"}, "valueString": "x"}
    assert not validator.validate(observation, [BASE + "quantity-observation"]).ok


def test_what_cannot_be_made_is_said(profiles: tuple[PackageSet, Validator]) -> None:
    with pytest.raises(SnapshotError, match="not loaded"):
        snapshot(profile("orphan", BASE + "missing", []), profiles[0])
    with pytest.raises(SnapshotError, match="no place"):
        snapshot(profile("nowhere", "http://hl7.org/fhir/StructureDefinition/Patient",
                         [{"id": "Patient.nothing", "path": "Patient.nothing"}]), profiles[0])
    with pytest.raises(SnapshotError, match="not a constraint"):
        snapshot({**PATIENT, "derivation": "specialization", "type": "MyPatient"}, profiles[0])


def test_a_specialization_of_its_own_type_is_made_as_a_constraint(profiles: tuple[PackageSet, Validator]) -> None:
    assert snapshot({**PATIENT, "derivation": "specialization"}, profiles[0]) == snapshot(PATIENT, profiles[0])
