"""The validator's options (`hub.fhir.options`) and the rules of this issue's second round: unknown extensions,
narrative links, references resolved among the resources a Bundle or Parameters holds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hub.fhir.fhirpath import resolve_reference
from hub.fhir.options import ValidationOptions
from hub.fhir.validator import Validator

NS = 'xmlns="http://www.w3.org/1999/xhtml"'
PATIENT: dict[str, Any] = {"resourceType": "Patient", "id": "p1",
                           "text": {"status": "generated", "div": f"<div {NS}>A patient</div>"}}


def errors(outcome: Any) -> list[tuple[str | None, str | None]]:
    return [(i.rule, i.expression) for i in outcome.issues if i.severity in ("error", "fatal")]


def with_extension(url: str) -> dict[str, Any]:
    return {**copy.deepcopy(PATIENT), "extension": [{"url": url, "valueBoolean": True}]}


def test_an_unknown_extension_is_an_error_at_its_place(validator: Validator) -> None:
    found = validator.validate(with_extension("http://vendor.dk/fhir/StructureDefinition/flag"))
    assert errors(found) == [("extension-unknown", "Patient.extension[0]")]


@pytest.mark.parametrize(("url", "severity"), [
    ("http://example.org/fhir/StructureDefinition/flag", None),  # an example domain
    ("http://hl7.org/fhir/5.0/StructureDefinition/extension-Patient.flag", None),  # another version's element
    ("http://hl7.org/fhir/StructureDefinition/not-in-core", "warning"),  # HL7's pack is not in the store
])
def test_unknown_extensions_the_reference_allows(validator: Validator, url: str, severity: str | None) -> None:
    found = [i.severity for i in validator.validate(with_extension(url)).issues if i.rule == "extension-unknown"]
    assert found == ([severity] if severity else [])


def test_example_urls_are_refused_only_when_asked(packages: Any, validator: Validator) -> None:
    patient = {**copy.deepcopy(PATIENT), "photo": [{"url": "http://repository.example.org/photo.png"}]}
    assert errors(validator.validate(patient)) == []
    strict = Validator(packages, options=ValidationOptions(example_urls=False))
    assert errors(strict.validate(patient)) == [("example-url", "Patient.photo[0].url")]


def test_the_type_a_restful_reference_names_is_checked_by_default(packages: Any, validator: Validator) -> None:
    patient = {**copy.deepcopy(PATIENT), "generalPractitioner": [{"reference": "Group/1"}]}
    assert [r for r, _ in errors(validator.validate(patient))] == ["Patient.generalPractitioner"]
    lenient = Validator(packages, options=ValidationOptions(rest_types=False))
    assert errors(lenient.validate(patient)) == []


def test_references_resolve_among_a_parameters_resources(packages: Any) -> None:
    coverage = {"resourceType": "Coverage", "id": "c1", "status": "active",
                "text": {"status": "generated", "div": f"<div {NS}>A coverage</div>"},
                "contained": [{"resourceType": "Organization", "id": "payer", "name": "Payer"}],
                "beneficiary": {"reference": "Patient/p1"}, "payor": [{"reference": "#payer"}]}
    parameters = {"resourceType": "Parameters", "parameter": [{"name": "patient", "resource": PATIENT},
                                                             {"name": "coverage", "resource": coverage}]}
    strict = Validator(packages, options=ValidationOptions(resolve_references=True))
    assert errors(strict.validate(parameters)) == []
    assert resolve_reference(parameters, "Patient/p1") is PATIENT
    parameters["parameter"][1]["resource"] = {**coverage, "beneficiary": {"reference": "Patient/p2"}}
    assert errors(strict.validate(parameters)) == [
        ("Coverage.beneficiary", "Parameters.parameter[1].resource.beneficiary")]


def test_a_bundle_entry_is_validated_against_a_profile_the_options_name(packages: Any) -> None:
    observation = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                   "text": {"status": "generated", "div": f"<div {NS}>An observation</div>"}}
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": "urn:uuid:7f2c3d1e-0000-4000-8000-000000000001", "resource": observation}]}
    plain = Validator(packages)
    assert errors(plain.validate(bundle)) == []
    vital = Validator(packages, options=ValidationOptions(
        bundle_profiles=(("Observation:0", "http://hl7.org/fhir/StructureDefinition/vitalsigns"),)))
    assert errors(vital.validate(bundle)) != []
    assert all(where and where.startswith("Bundle.entry[0].resource") for _, where in errors(vital.validate(bundle)))


def test_narrative_links_within_the_resource_must_resolve(validator: Validator) -> None:
    linked = {**copy.deepcopy(PATIENT), "text": {"status": "generated", "div": (
        f'<div {NS}><a name="top">A</a> <a href="#top">up</a> <a href="#nowhere">lost</a></div>')}}
    assert errors(validator.validate(linked)) == [("narrative-link", "Patient.text.div")]


def test_a_bundle_is_resolved_in_through_an_index_that_follows_its_entries() -> None:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "entry": [
        {"fullUrl": "http://x/fhir/Patient/1", "resource": {"resourceType": "Patient", "id": "1"}}]}
    assert resolve_reference(bundle, "Patient/1") is bundle["entry"][0]["resource"]
    assert resolve_reference(bundle, "http://x/fhir/Patient/1") is bundle["entry"][0]["resource"]
    assert resolve_reference(bundle, "Patient/2") is None
    bundle["entry"].append({"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Patient", "id": "2"}})
    assert resolve_reference(bundle, "Patient/2") is bundle["entry"][1]["resource"]
    assert resolve_reference(bundle, "urn:uuid:b") is bundle["entry"][1]["resource"]


def test_type_of_resources_and_of_the_context(validator: Validator) -> None:
    """`%context.type()` is the element's type the validator gives; a resource's is its resourceType."""
    patient = {**copy.deepcopy(PATIENT), "generalPractitioner": [{"reference": "#gp"}]}
    node = patient["generalPractitioner"][0]
    engine = validator.invariants
    assert engine.evaluate("%context.type().name", node, patient, patient, "Patient.generalPractitioner",
                           node_type="Reference") == ["Reference"]
    assert engine.evaluate("%resource.type().name", node, patient, patient, None) == ["Patient"]


def test_a_profiles_discriminator_must_lead_somewhere(validator: Validator) -> None:
    profile = {"resourceType": "StructureDefinition", "url": "http://example.org/fhir/StructureDefinition/p",
               "name": "P", "status": "draft", "kind": "resource", "abstract": False, "type": "Patient",
               "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
               "text": {"status": "generated", "div": f"<div {NS}>A profile</div>"},
               "differential": {"element": [
                   {"id": "Patient.identifier", "path": "Patient.identifier",
                    "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
                   {"id": "Patient.extension", "path": "Patient.extension",
                    "slicing": {"discriminator": [{"type": "value", "path": "type"}], "rules": "open"}}]}}
    assert [(r, w) for r, w in errors(validator.validate(profile)) if r == "sd-discriminator"] == [
        ("sd-discriminator", "StructureDefinition.differential.element[1].slicing.discriminator[0]")]


def test_contained_resources_are_left_alone_when_asked(packages: Any, validator: Validator) -> None:
    """`contained=False` (the Java validator's `validateContains: IGNORE`): neither the contained resources'
    own faults nor dom-3 on them; by default both are found."""
    condition = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "text": PATIENT["text"],
                 "contained": [{"resourceType": "Practitioner", "id": "x" * 65, "gender": "unknown-value",
                                "foo": 1}]}
    found = errors(validator.validate(condition))
    assert ("dom-3", "Condition.contained[0]") in found
    assert ("structure", "Condition.contained[0].foo") in found
    assert errors(Validator(packages, options=ValidationOptions(contained=False)).validate(condition)) == []
