"""The profile validator over the official packages: FUT's examples pass their declared profiles; broken
variants are caught by the rule that is broken, at the place where it is broken."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hub.conformance.files import collect, package_context, validate_file
from hub.fhir.validator import Validator
from tests.conftest import FUT_EXAMPLES, SHARED, fut_appointment

VIDEO = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-videoappointment"
# Known defects of the official material (README, "Validation policy"): the finding stands, the test records it.
KNOWN_DEFECTS = {
    "Consent-23.json": {"Consent.provision.code"},  # a code outside FUT's own required value set
    # FUT's Appointment examples carry a contained Location that nothing refers to
    **{f"Appointment-{n}.json": {"dom-3"} for n in ("group-appointment01", "group-videoappointment01",
                                                    "videoappointment01")},
}



def errors(outcome: Any) -> set[str | None]:
    return {i.rule for i in outcome.issues if i.severity in ("error", "fatal")}


def test_fut_examples_are_valid_for_their_declared_profiles(validator: Validator) -> None:
    files = sorted(f for f in FUT_EXAMPLES.glob("*.json") if not f.name.startswith("."))
    assert len(files) >= 19
    for f in files:
        resource = json.loads(f.read_text(encoding="utf-8"))
        assert resource.get("meta", {}).get("profile"), f.name
        found = errors(validator.validate(resource))
        assert found == KNOWN_DEFECTS.get(f.name, set()), (f.name, found)


def test_every_medcom_and_dk_core_example_is_valid_in_its_package(validator: Validator, packages: Any) -> None:
    """Each package's examples, resolved as that package pins its dependencies (a CareCommunication 5.0.2
    example means medcom core 3.0.1's PractitionerRole, not the newest), and MedCom's SendExamples (JSON and
    XML), which name no package and resolve to the newest."""
    loaded = {f"{n}#{v}" for n, v in packages.packages}
    folders = sorted(SHARED.glob("medcom/fhir/*/*/package/example"))
    assert len(folders) >= 7
    send = SHARED / "medcom/fhir/medcom.fhir.dk.carecommunication/examples/SendExamples"
    checked = 0
    for path in collect([*folders, send]):
        context = package_context(path, loaded)
        assert context is not None or send in path.parents, path
        result = validate_file(validator, path, context=context)
        found = [(i.rule, i.diagnostics) for i in result.outcome.issues if i.severity in ("error", "fatal")]
        assert found == [], (str(path), found)
        checked += 1
    assert checked >= 240


def test_a_message_bundle_resolves_its_entries_as_its_own_package_sees_them(validator: Validator) -> None:
    """A PractitionerRole without an organization: fine for medcom core 3.0.1, which CareCommunication 5.0.2
    pins; not for medcom core 4.0.0, the newest."""
    folder = SHARED / "medcom/fhir/medcom.fhir.dk.carecommunication/5.0.2/package/example"
    role = next(json.loads(f.read_text()) for f in sorted(folder.glob("PractitionerRole-*.json"))
                if "organization" not in json.loads(f.read_text()))
    assert "PractitionerRole.organization" in errors(validator.validate(role))
    assert errors(validator.validate(role, context="medcom.fhir.dk.carecommunication#5.0.2")) == set()
    bundle = next(json.loads(f.read_text()) for f in sorted(folder.glob("Bundle-*.json")))
    bundle["entry"].append({"fullUrl": "https://example.org/PractitionerRole/x", "resource": role})
    assert "PractitionerRole.organization" not in errors(validator.validate(bundle))


@pytest.fixture
def video() -> dict[str, Any]:
    appt = fut_appointment()
    return copy.deepcopy(appt)


def test_the_video_appointment_profile_applies_by_meta_profile_or_by_request(validator: Validator,
                                                                             video: dict[str, Any]) -> None:
    video["meta"].pop("profile")
    video["extension"] = [e for e in video["extension"] if not e["url"].endswith("ehealth-responsible")]
    assert errors(validator.validate(video)) == set()  # the core Appointment does not ask for it
    assert "Appointment.extension:responsible" in errors(validator.validate(video, [VIDEO]))


def test_required_slice_missing(validator: Validator, video: dict[str, Any]) -> None:
    video["extension"] = [e for e in video["extension"] if not e["url"].endswith("ehealth-responsible")]
    outcome = validator.validate(video)
    assert "Appointment.extension:responsible" in errors(outcome)
    assert any(i.expression == "Appointment" and "minimum required" in (i.diagnostics or "") for i in outcome.issues)


def test_wrong_slice_value(validator: Validator, video: dict[str, Any]) -> None:
    video["serviceType"][0]["coding"][0]["code"] = "regular"  # no longer the `video` slice
    assert "Appointment.serviceType:appointmentType" in errors(validator.validate(video))


def test_code_outside_a_required_binding(validator: Validator, video: dict[str, Any]) -> None:
    video["status"] = "pending-ish"
    outcome = validator.validate(video)
    assert "Appointment.status" in errors(outcome)
    assert [i.expression for i in outcome.issues if i.rule == "Appointment.status"] == ["Appointment.status"]


def test_broken_invariant(validator: Validator, video: dict[str, Any]) -> None:
    video["end"] = None
    del video["end"]  # app-3: only proposed or cancelled appointments may lack start and end
    found = errors(validator.validate(video))
    assert {"app-3", "Appointment.end"} <= found


def test_reference_of_the_wrong_type(validator: Validator, video: dict[str, Any]) -> None:
    actor = next(p for p in video["participant"] if "actor" in p)
    actor["actor"]["reference"] = "Observation/1"
    outcome = validator.validate(video)
    assert "Appointment.participant.actor" in errors(outcome)
    assert any(i.expression and i.expression.endswith("actor") and "not allowed" in (i.diagnostics or "")
               for i in outcome.issues)


def test_extension_needs_a_value_or_extensions_not_both(validator: Validator, video: dict[str, Any]) -> None:
    video["extension"][0]["extension"] = [{"url": "http://example.org/x", "valueString": "y"}]
    assert "ext-1" in errors(validator.validate(video))


def test_unknown_profile_is_a_warning_said_once(validator: Validator, video: dict[str, Any]) -> None:
    video["meta"]["profile"].append("http://example.org/StructureDefinition/nowhere")
    outcome = validator.validate(video, ["http://example.org/StructureDefinition/nowhere"])
    said = [i for i in outcome.issues if i.rule == "profile"]
    assert len(said) == 1 and said[0].severity == "warning"
    assert outcome.ok


def test_structure_errors_and_the_profiles_findings_come_in_one_pass(validator: Validator,
                                                                    video: dict[str, Any]) -> None:
    video["start"] = "tomorrow"
    outcome = validator.validate(video)
    rules = [i.rule for i in outcome.issues]
    assert "Appointment.start" in rules and "dom-6" in rules  # the profile's checks ran although structure failed
    assert [i.expression for i in outcome.issues].count("Appointment.start") == 1  # its place is said once


def test_independent_errors_are_all_reported_at_once_in_order_of_place(validator: Validator) -> None:
    outcome = validator.validate({"resourceType": "Patient", "gender": "x", "birthDate": "2020-13-01", "foo": 1})
    errors = [i.expression for i in outcome.issues if i.severity == "error"]
    # the binding error too, not only once the other two are fixed
    assert errors == ["Patient.birthDate", "Patient.foo", "Patient.gender"]


def test_a_message_bundle_is_checked_against_its_message_definition(validator: Validator) -> None:
    folder = SHARED / "medcom/fhir/medcom.fhir.dk.carecommunication/5.0.2/package/example"
    bundle = next(b for b in (json.loads(f.read_text()) for f in sorted(folder.glob("Bundle-*.json")))
                  if b["entry"][0]["resource"].get("definition"))
    assert errors(validator.validate(bundle)) == set()
    wrong_event = copy.deepcopy(bundle)
    wrong_event["entry"][0]["resource"]["eventCoding"]["code"] = "acknowledgement-message"
    outcome = validator.validate(wrong_event)
    assert "MessageDefinition.eventCoding" in errors(outcome)
    assert any(i.expression == "Bundle.entry[0].resource.eventCoding" for i in outcome.issues)
    unknown = copy.deepcopy(bundle)
    unknown["entry"][0]["resource"]["definition"] = "http://example.org/MessageDefinition/nowhere|1.0"
    said = [i for i in validator.validate(unknown).issues if i.rule == "MessageHeader.definition"]
    assert len(said) == 1 and said[0].severity == "warning"


def test_message_definition_focus_counts_and_types(data_root: Any, tmp_path: Any) -> None:
    """MedCom's MessageDefinitions name no focus; a package of one's own that does is held to it."""
    from hub.core import standards
    from hub.fhir.packages import PackageSet

    pkg = tmp_path / "package"
    pkg.mkdir()
    url = "http://example.org/MessageDefinition/needs-two-communications"
    definition = {"resourceType": "MessageDefinition", "url": url, "version": "1.0", "status": "active",
                  "date": "2026-11-23", "eventCoding": {"system": "http://medcomfhir.dk/ig/terminology/CodeSystem/"
                                                                  "medcom-messaging-eventCodes",
                                                        "code": "care-communication-message"},
                  "focus": [{"code": "Communication", "min": 2, "max": "2"}]}
    (pkg / "MessageDefinition-x.json").write_text(json.dumps(definition))
    (pkg / "package.json").write_text(json.dumps({"name": "example.local", "version": "1.0.0"}))
    (pkg / ".index.json").write_text(json.dumps({"index-version": 1, "files": [
        {"filename": "MessageDefinition-x.json", "resourceType": "MessageDefinition", "url": url, "version": "1.0"}]}))
    own = Validator(PackageSet([*standards.package_dirs(data_root / "standards"), pkg]))
    folder = SHARED / "medcom/fhir/medcom.fhir.dk.carecommunication/5.0.2/package/example"
    bundle = next(json.loads(f.read_text()) for f in sorted(folder.glob("Bundle-*.json")))
    bundle["entry"][0]["resource"]["definition"] = url + "|1.0"
    outcome = own.validate(bundle)
    assert [i.diagnostics for i in outcome.issues if i.rule == "MessageDefinition.focus"] == [
        f"{url}|1.0 wants 2..2 Communication as focus, the message has 1"]


def test_elements_defined_by_reference_are_checked_like_their_target(validator: Validator) -> None:
    """Questionnaire.item.item is defined as `#Questionnaire.item`: its binding holds at every depth."""
    questionnaire = {"resourceType": "Questionnaire", "status": "draft", "item": [
        {"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "nonsense-type"}]}]}
    outcome = validator.validate(questionnaire)
    assert [(i.rule, i.expression) for i in outcome.issues if i.severity == "error"] == [
        ("Questionnaire.item.type", "Questionnaire.item[0].item[0].type")]


def test_contained_resources_must_be_referred_to(validator: Validator, video: dict[str, Any]) -> None:
    """dom-3, checked natively: a contained resource nothing refers to is an error; one referred to by `#id`,
    or one that refers to its container by `#`, is fine."""
    video["contained"] = [{"resourceType": "Location", "id": "room", "name": "Room 43b"}]
    assert "dom-3" in errors(validator.validate(video))
    assert [i.expression for i in validator.validate(video).issues if i.rule == "dom-3"] == [
        "Appointment.contained[0]"]  # at the contained resource, as the reference places it
    video["participant"].append({"actor": {"reference": "#room"}, "status": "accepted"})
    assert "dom-3" not in errors(validator.validate(video))
    video["participant"].pop()
    video["contained"][0]["partOf"] = {"reference": "#"}
    assert "dom-3" not in errors(validator.validate(video))


def test_conforms_to_runs_the_profile_check(validator: Validator) -> None:
    """MedCom's acknowledgement Bundle asks, by `conformsTo()`, that its MessageHeader conforms to the
    acknowledgement header profile: a header without `response` breaks that rule too."""
    folder = SHARED / "medcom/fhir/medcom.fhir.dk.acknowledgement/2.0.3/package/example"
    bundle = json.loads(sorted(folder.glob("Bundle-*.json"))[0].read_text(encoding="utf-8"))
    context = "medcom.fhir.dk.acknowledgement#2.0.3"
    assert errors(validator.validate(bundle, context=context)) == set()
    bundle["entry"][0]["resource"].pop("response")
    assert "medcom-acknowledgement-2" in errors(validator.validate(bundle, context=context))


def test_a_required_slice_of_an_absent_element_is_missing(validator: Validator, video: dict[str, Any]) -> None:
    video.pop("extension")
    assert "Appointment.extension:responsible" in errors(validator.validate(video))


def _lipid_bundle(validator: Validator, order: list[str]) -> dict[str, Any]:
    """R4 core's lipid profile: DiagnosticReport.result is sliced by `resolve().code`, ordered and closed; each
    slice's target profile fixes the Observation's code (taken from those profiles here)."""
    def code(profile: str) -> Any:
        element = validator.profile(f"http://hl7.org/fhir/StructureDefinition/{profile}").root.children["code"]
        return (element.fixed or element.pattern)[1]

    observations = [{"fullUrl": f"urn:uuid:00000000-0000-0000-0000-00000000000{i}", "resource": {
        "resourceType": "Observation", "status": "final", "code": code(name),
        "valueQuantity": {"value": 4.2, "unit": "mmol/L"}}} for i, name in enumerate(order)]
    report = {"resourceType": "DiagnosticReport", "status": "final",
              "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/lipidprofile"]},
              "code": code("lipidprofile"), "result": [{"reference": o["fullUrl"]} for o in observations]}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": "urn:uuid:00000000-0000-0000-0000-0000000000aa", "resource": report},
                      *observations]}


def test_ordered_slicing_through_resolve(validator: Validator) -> None:
    def slicing_errors(order: list[str]) -> list[str]:
        outcome = validator.validate(_lipid_bundle(validator, order))
        return [i.diagnostics for i in outcome.issues if i.severity == "error"]

    assert slicing_errors(["cholesterol", "triglyceride", "hdlcholesterol"]) == []
    found = slicing_errors(["triglyceride", "cholesterol", "hdlcholesterol"])
    assert found == ["DiagnosticReport.result: the slicing is ordered, and slice Cholesterol comes after slice "
                     "Triglyceride"]
    assert slicing_errors(["cholesterol", "hdlcholesterol"]) == [
        "DiagnosticReport.result: minimum required = 3, found 2",
        "DiagnosticReport.result:Triglyceride: minimum required = 1, found 0"]
