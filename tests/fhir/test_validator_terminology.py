"""Terminology from the packages: ValueSet filters over a code system's hierarchy and properties, unknown codes
and wrong displays in bound elements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.core import standards
from hub.fhir.options import ValidationOptions
from hub.fhir.packages import PackageSet, Terminology, write_package
from hub.fhir.validator import Validator

CS = "http://example.org/CodeSystem/animals"


def _package(tmp_path: Path, resources: list[dict[str, Any]]) -> Path:
    pkg = tmp_path / "package"
    pkg.mkdir()
    files = []
    for r in resources:
        name = f"{r['resourceType']}-{r['id']}.json"
        (pkg / name).write_text(json.dumps(r))
        files.append({"filename": name, "resourceType": r["resourceType"], "url": r["url"]})
    (pkg / "package.json").write_text(json.dumps({"name": "example.animals", "version": "1.0.0"}))
    (pkg / ".index.json").write_text(json.dumps({"index-version": 1, "files": files}))
    return pkg


def _vs(id_: str, include: list[dict[str, Any]], exclude: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    compose: dict[str, Any] = {"include": include}
    if exclude:
        compose["exclude"] = exclude
    return {"resourceType": "ValueSet", "id": id_, "url": f"http://example.org/ValueSet/{id_}", "status": "active",
            "compose": compose}


@pytest.fixture
def terminology(tmp_path: Path) -> Terminology:
    def prop(code: str, **value: Any) -> dict[str, Any]:
        return {"code": code, **value}

    codesystem = {"resourceType": "CodeSystem", "id": "animals", "url": CS, "status": "active",
                  "content": "complete", "concept": [
                      {"code": "animal", "display": "Animal", "concept": [
                          {"code": "mammal", "display": "Mammal", "property": [prop("legs", valueInteger=4)],
                           "concept": [{"code": "dog", "display": "Dog",
                                        "designation": [{"language": "da", "value": "Hund"}],
                                        "property": [prop("pet", valueBoolean=True)]},
                                       {"code": "whale", "display": "Whale"}]},
                          {"code": "bird", "display": "Bird", "property": [prop("legs", valueInteger=2)]}]},
                      {"code": "cat", "display": "Cat", "property": [prop("parent", valueCode="mammal"),
                                                                     prop("pet", valueBoolean=True)]}]}
    f = [{"system": CS, "filter": [flt]} for flt in (
        {"property": "concept", "op": "is-a", "value": "mammal"},
        {"property": "concept", "op": "descendent-of", "value": "mammal"},
        {"property": "concept", "op": "is-not-a", "value": "mammal"},
        {"property": "concept", "op": "generalizes", "value": "dog"},
        {"property": "legs", "op": "=", "value": "2"},
        {"property": "concept", "op": "in", "value": "dog, bird"},
        {"property": "concept", "op": "not-in", "value": "dog,bird,cat"},
        {"property": "code", "op": "regex", "value": "[a-c].*"},
        {"property": "pet", "op": "exists", "value": "true"},
        {"property": "concept", "op": "child-of", "value": "animal"})]
    valuesets = [_vs(f"vs{i}", [inc]) for i, inc in enumerate(f)]
    valuesets.append(_vs("pets-not-cats", [f[8]], exclude=[{"system": CS, "concept": [{"code": "cat"}]}]))
    return Terminology(PackageSet([_package(tmp_path, [codesystem, *valuesets])]))


@pytest.mark.parametrize(("valueset", "codes"), [
    ("vs0", {"mammal", "dog", "whale", "cat"}),  # nested concepts and the `parent` property
    ("vs1", {"dog", "whale", "cat"}),
    ("vs2", {"animal", "bird"}),
    ("vs3", {"dog", "mammal", "animal"}),
    ("vs4", {"bird"}),
    ("vs5", {"dog", "bird"}),
    ("vs6", {"animal", "mammal", "whale"}),
    ("vs7", {"animal", "bird", "cat"}),
    ("vs8", {"dog", "cat"}),
    ("pets-not-cats", {"dog"}),
])
def test_value_set_filters(terminology: Terminology, valueset: str, codes: set[str]) -> None:
    assert terminology.codes(f"http://example.org/ValueSet/{valueset}") == {(CS, c) for c in codes}


def test_a_filter_not_implemented_makes_the_value_set_unexpandable(terminology: Terminology) -> None:
    with pytest.raises(LookupError, match="child-of"):
        terminology.codes("http://example.org/ValueSet/vs9")


def test_lookup_gives_displays_and_designations(terminology: Terminology) -> None:
    assert terminology.lookup(CS, "dog") == (True, {"Dog", "Hund"})
    assert terminology.lookup(CS, "unicorn") == (False, set())
    assert terminology.lookup("http://example.org/not-loaded", "x") is None


def test_r4_core_value_sets_with_filters_expand(packages: Any) -> None:
    codes = Terminology(packages).codes("http://hl7.org/fhir/ValueSet/account-type")
    assert ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "PBILLACCT") in codes
    assert all(system == "http://terminology.hl7.org/CodeSystem/v3-ActCode" for system, _ in codes)


def test_unknown_codes_and_wrong_displays_in_bound_elements(packages: Any) -> None:
    marital = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
    patient: dict[str, Any] = {"resourceType": "Patient", "maritalStatus": {"coding": [
        {"system": marital, "code": "M", "display": "  married "}]}}
    validator = Validator(packages)

    def coded(outcome: Any) -> list[Any]:
        return [i for i in outcome.issues if i.rule != "dom-6"]  # dom-6: no narrative, a warning
    assert coded(validator.validate(patient)) == []  # case and spacing do not matter
    patient["maritalStatus"]["coding"][0]["display"] = "Wed"
    [issue] = coded(validator.validate(patient))
    assert (issue.severity, issue.code, issue.expression) == ("error", "invalid",
                                                              "Patient.maritalStatus.coding[0].display")
    assert "'Married'" in issue.diagnostics
    [issue] = coded(Validator(packages, options=ValidationOptions(display_warnings=True)).validate(patient))
    assert (issue.severity, issue.expression) == ("warning", "Patient.maritalStatus.coding[0].display")
    patient["maritalStatus"]["coding"][0] = {"system": marital, "code": "Z"}
    found = {(i.severity, i.code) for i in validator.validate(patient).issues}
    assert ("error", "code-invalid") in found


def test_a_display_the_bound_value_set_gives_is_right(data_root: Path, tmp_path: Path) -> None:
    """A profile binding to a value set it contains (`#translated`, read as the canonical `url#translated`)
    whose expansion gives a code a display of its own (a translation): that display is right there, and the
    code system's displays stay right; anywhere else it is a wrong display."""
    marital = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
    profile = {
        "resourceType": "StructureDefinition", "id": "translated", "url": "http://example.org/sd/translated",
        "name": "Translated", "status": "draft", "kind": "resource", "abstract": False, "type": "Patient",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
        "contained": [{"resourceType": "ValueSet", "id": "translated", "status": "draft", "expansion": {
            "timestamp": "2026-12-07T00:00:00Z", "contains": [
                {"system": marital, "code": "M", "designation": [{"language": "da", "value": "Gift"}]}]}}],
        "differential": {"element": [{"id": "Patient", "path": "Patient"}, {
            "id": "Patient.maritalStatus", "path": "Patient.maritalStatus",
            "binding": {"strength": "required", "valueSet": "#translated"}}]}}
    core = next(d for d in standards.package_dirs(data_root / "standards") if "hl7.fhir.r4.core#4.0.1" in str(d))
    write_package(tmp_path, "example.translated", [profile], {"hl7.fhir.r4.core": "4.0.1"})
    validator = Validator(PackageSet([core, tmp_path]))

    def displays(display: str, profiled: bool) -> list[tuple[str, str]]:
        patient = {"resourceType": "Patient", "maritalStatus": {"coding": [
            {"system": marital, "code": "M", "display": display}]}}
        if profiled:
            patient["meta"] = {"profile": [profile["url"]]}
        return [(i.severity, i.expression or "") for i in validator.validate(patient).issues
                if i.rule != "dom-6"]
    assert displays("Gift", profiled=True) == []
    assert displays("Married", profiled=True) == []
    assert displays("Gift", profiled=False) == [("error", "Patient.maritalStatus.coding[0].display")]
    assert displays("Wed", profiled=True) == [("error", "Patient.maritalStatus.coding[0].display")]
