"""Where an extension may be used (`hub.fhir.extensions`): its definition's contexts and context invariants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.core import standards
from hub.fhir.packages import PackageSet, write_package
from hub.fhir.validator import Validator

BASE = "http://example.org/fhir/StructureDefinition/"


def extension(name: str, contexts: list[tuple[str, str]], invariants: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"resourceType": "StructureDefinition", "url": BASE + name, "name": name, "status": "active",
            "kind": "complex-type", "abstract": False, "type": "Extension", "derivation": "constraint",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
            "context": [{"type": t, "expression": e} for t, e in contexts],
            **({"contextInvariant": list(invariants)} if invariants else {}),
            "differential": {"element": [{"id": "Extension", "path": "Extension"},
                                         {"id": "Extension.url", "path": "Extension.url", "fixedUri": BASE + name},
                                         {"id": "Extension.value[x]", "path": "Extension.value[x]",
                                          "type": [{"code": "boolean"}]}]}}


DEFINITIONS = [
    extension("on-patient-or-name", [("element", "Patient"), ("element", "Patient.name"),
                                     ("extension", BASE + "holder"),
                                     ("fhirpath", "Patient.address.where(use = 'home')")]),
    extension("holder", [("element", "Element")]),
    extension("on-domain-text", [("element", "DomainResource.text"), ("element", "BackboneElement")]),
    extension("inactive-only", [("element", "Patient")], ("Patient.active.not()",)),
]


@pytest.fixture(scope="module")
def validator(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Validator:
    folder = tmp_path_factory.mktemp("extensions")
    write_package(folder, "example.extensions", list(DEFINITIONS), {"hl7.fhir.r4.core": "4.0.1"})
    core = next(d for d in standards.package_dirs(data_root / "standards") if "hl7.fhir.r4.core#4.0.1" in str(d))
    return Validator(PackageSet([core, folder]))


def ext(name: str, value: bool = True) -> dict[str, Any]:
    return {"url": BASE + name, "valueBoolean": value}


def misplaced(validator: Validator, resource: dict[str, Any]) -> list[str]:
    return [str(i.expression) for i in validator.validate(resource).issues if i.rule == "extension-context"]


@pytest.mark.parametrize("patient", [
    {"resourceType": "Patient", "extension": [ext("on-patient-or-name")]},
    {"resourceType": "Patient", "name": [{"family": "Hansen", "extension": [ext("on-patient-or-name")]}]},
    {"resourceType": "Patient", "address": [{"use": "home", "extension": [ext("on-patient-or-name")]}]},
    {"resourceType": "Patient", "extension": [{"url": BASE + "holder", "valueBoolean": True,
                                               "_valueBoolean": {"extension": [ext("on-patient-or-name")]}}]},
    {"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x"
                                         "</div>", "extension": [ext("on-domain-text")]},
     "contact": [{"extension": [ext("on-domain-text")], "name": {"text": "y"}}]},
    {"resourceType": "Patient", "active": False, "extension": [ext("inactive-only")]},
])
def test_an_extension_where_its_definition_allows_it(validator: Validator, patient: dict[str, Any]) -> None:
    assert misplaced(validator, patient) == []


@pytest.mark.parametrize(("resource", "where"), [
    ({"resourceType": "Patient", "active": True, "_active": {"extension": [ext("on-patient-or-name")]}},
     "Patient.active"),
    ({"resourceType": "Organization", "extension": [ext("on-patient-or-name")]}, "Organization"),
    ({"resourceType": "Patient", "address": [{"use": "work", "extension": [ext("on-patient-or-name")]}]},
     "Patient.address[0]"),
    ({"resourceType": "Patient", "extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/patient-cadavericDonor", "valueBoolean": True,
         "_valueBoolean": {"extension": [ext("on-patient-or-name")]}}]}, "Patient.extension[0].valueBoolean"),
    ({"resourceType": "Patient", "name": [{"extension": [ext("on-domain-text")], "family": "x"}]}, "Patient.name[0]"),
    ({"resourceType": "Patient", "active": True, "extension": [ext("inactive-only")]}, "Patient"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "Organization", "extension": [ext("on-patient-or-name")]}}]},
     "Bundle.entry[0].resource"),
])
def test_an_extension_used_where_it_may_not_be_is_an_error_at_its_element(
        validator: Validator, resource: dict[str, Any], where: str) -> None:
    assert misplaced(validator, resource) == [where]
