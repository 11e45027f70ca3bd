"""Structural validation from the R4 core definitions: every official example passes, each kind of break is
found at its FHIRPath location with the element it breaks."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from hub.fhir.structure import StructureValidator, _Primitive, is_base64
from tests.conftest import FUT_EXAMPLES, fut_example


@pytest.fixture(scope="module")
def structure(packages: Any) -> StructureValidator:
    return StructureValidator(packages)


def findings(structure: StructureValidator, resource: Any) -> set[tuple[str | None, str | None]]:
    return {(i.expression, i.rule) for i in structure.check(resource).issues}


def test_every_fut_example_is_structurally_valid(structure: StructureValidator) -> None:
    files = sorted(f for f in FUT_EXAMPLES.glob("*.json") if not f.name.startswith("."))
    assert len(files) >= 19
    for f in files:
        outcome = structure.check(json.loads(f.read_text(encoding="utf-8")))
        assert outcome.ok, (f.name, [(i.expression, i.diagnostics) for i in outcome.issues])


def test_unknown_elements_and_choice_names(structure: StructureValidator) -> None:
    appt = fut_example("Appointment-videoappointment01.json")
    appt["wat"] = 1
    appt["participant"][1]["actor"]["colour"] = "red"
    appt["extension"][0]["valueWhatever"] = "x"
    assert findings(structure, appt) == {
        ("Appointment.wat", "structure"),
        ("Appointment.participant[1].actor.colour", "structure"),
        ("Appointment.extension[0].valueWhatever", "structure"),
    }


def test_cardinality_and_arrays(structure: StructureValidator) -> None:
    appt = fut_example("Appointment-videoappointment01.json")
    del appt["status"]
    appt["participant"][0]["status"] = ["accepted"]  # 1..1: no array
    appt["identifier"] = appt["identifier"][0]  # 0..*: must be an array
    appt["basedOn"] = []
    assert findings(structure, appt) == {
        ("Appointment", "Appointment.status"),  # a missing element: at the element that lacks it
        ("Appointment.participant[0].status", "Appointment.participant.status"),
        ("Appointment.identifier", "Appointment.identifier"),
        ("Appointment.basedOn", "Appointment.basedOn"),
    }
    del appt["participant"]
    assert ("Appointment", "Appointment.participant") in findings(structure, appt)


@pytest.mark.parametrize("path, value, rule", [
    (("start",), "2021-07-16T09:00:00", "Appointment.start"),  # instant: the zone is required
    (("start",), 1626426000, "Appointment.start"),  # a number where a string belongs
    (("minutesDuration",), 0, "Appointment.minutesDuration"),  # positiveInt
    (("minutesDuration",), "30", "Appointment.minutesDuration"),  # a string where a number belongs
    (("priority",), True, "Appointment.priority"),
    (("status",), "", "Appointment.status"),  # empty strings are not FHIR values
    (("status",), "booked ", "Appointment.status"),  # code: no trailing space
    (("created",), "2021-02-30x", "Appointment.created"),
    (("id",), "has space", "Appointment.id"),  # written policy: a resource id is an `id`
    (("participant", 1, "actor"), "Patient/1", "Appointment.participant.actor"),  # Reference is an object
    (("participant", 1, "actor", "reference"), None, "Reference.reference"),
])
def test_primitive_values_and_json_types(structure: StructureValidator, path: tuple[Any, ...], value: Any,
                                         rule: str) -> None:
    appt = fut_example("Appointment-videoappointment01.json")
    target = appt
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = structure.check(appt)
    assert [i.rule for i in found.issues] == [rule], found.issues
    assert found.issues[0].expression == "Appointment." + ".".join(
        f"{k}" if isinstance(k, str) else f"[{k}]" for k in path).replace(".[", "[")


def test_primitive_extensions_and_contained_resources(structure: StructureValidator) -> None:
    appt = fut_example("Appointment-videoappointment01.json")
    ext = {"extension": [{"url": "http://example.org/why", "valueString": "because"}]}
    appt["_status"] = ext
    appt["_comment"] = ext  # an extension without a value is allowed
    assert structure.check(appt).ok
    appt["_status"] = {"extension": [{"valueString": "no url"}]}
    appt["contained"] = [{"resourceType": "Patient", "id": "p", "birthDate": "1980-13-01"},
                         {"resourceType": "Nonsense", "id": "n"}]
    assert findings(structure, appt) == {
        ("Appointment.status.extension[0]", "Extension.url"),
        ("Appointment.contained[0].birthDate", "Patient.birthDate"),
        ("Appointment.contained[1]", "structure"),
    }


def test_recursive_elements_and_repeating_primitives(structure: StructureValidator) -> None:
    questionnaire = {"resourceType": "Questionnaire", "status": "draft",
                     "item": [{"linkId": "1", "type": "group",
                               "item": [{"linkId": "1.1", "type": "string", "item": [{"type": "display"}]}]}]}
    assert findings(structure, questionnaire) == {("Questionnaire.item[0].item[0].item[0]",
                                                   "Questionnaire.item.linkId")}
    patient = {"resourceType": "Patient", "name": [{"given": ["Ann", None], "_given": [None, {"id": "g2"}]}]}
    assert structure.check(patient).ok
    patient["name"][0]["_given"] = [None]  # not one for one: the null value then stands alone
    assert findings(structure, patient) == {("Patient.name[0].given", "HumanName.given"),
                                            ("Patient.name[0].given[1]", "HumanName.given")}


def test_not_a_resource(structure: StructureValidator) -> None:
    assert structure.check([]).issues[0].diagnostics == "A resource must be a JSON object"
    assert structure.check({"status": "booked"}).issues[0].diagnostics == "Missing resourceType"
    wrong = structure.check({"resourceType": "Patient"}, "Appointment")
    assert wrong.issues[0].expression == "resourceType"
    empty = copy.deepcopy(fut_example("Appointment-videoappointment01.json"))
    empty["meta"] = {}
    assert findings(structure, empty) == {("Appointment.meta", "structure")}


def test_base64_is_checked_natively_in_the_language_of_its_regex(structure: StructureValidator) -> None:
    """base64Binary's native check (the written policy) accepts exactly what R4's own regex accepts."""
    definition = structure.definition("base64Binary")
    assert isinstance(definition, _Primitive) and definition.regex is not None
    assert definition.native is is_base64
    rng = random.Random(7)
    samples = ["QUJD", "QUJDRA==", " QU JD\n", "QUJ", "QUJDR", "QUJD QUJ", "\vQUJD\f", "QUJ\xa0D", "QU-D", "===="]
    for _ in range(3000):  # runs of base64 characters between whitespace, now and then a character of neither
        runs = ["".join(rng.choice("Az09+/=-_é") if rng.random() < 0.02 else rng.choice("Az09+/=")
                        for _ in range(rng.choice((1, 3, 4, 4, 8, 9)))) for _ in range(rng.randint(1, 4))]
        samples.append("".join(rng.choice(("", " ", "\n", "\t\r", "\f\v", "\xa0")) + run for run in runs))
    for text in samples:
        assert is_base64(text) == (definition.regex.fullmatch(text) is not None), repr(text)
    assert 300 < sum(is_base64(t) for t in samples) < 2700  # both kinds are met
    attachment = {"resourceType": "Binary", "contentType": "text/plain", "data": "QUJD QUJD\nQUJ"}
    assert [i.diagnostics for i in structure.check(attachment).issues] == [
        "Invalid value: 'QUJD QUJD\nQUJ' is not a valid base64Binary"]
