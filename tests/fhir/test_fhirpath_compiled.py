"""Compiled FHIRPath against fhirpathpy: the same results on the same input, fallbacks where raw JSON cannot
decide, and every official example validated both ways with the same findings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.conformance.files import collect, package_context, validate_file
from hub.fhir.fhirpath import InvariantEngine
from hub.fhir.fhirpath_compiled import Env, Fallback, NotCompiled, compile_expression
from hub.fhir.packages import Terminology
from hub.fhir.validator import Validator
from tests.conftest import FUT_EXAMPLES, SHARED

PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "id": "p1",
    "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0101801234"},
                   {"system": "urn:x", "value": "42", "period": {"start": "2020-01-01"}}],
    "name": [{"family": "Jensen", "given": ["Anne", "Sofie"]}],
    "active": True, "multipleBirthInteger": 2, "birthDate": "1980-01-01",
    "extension": [{"url": "urn:e1", "valueString": "a"}, {"url": "urn:e2", "valueQuantity": {"value": 3}}],
    "contained": [{"resourceType": "Organization", "id": "o1", "name": "Klinik"}],
    "managingOrganization": {"reference": "#o1"},
}

EXPRESSIONS = [
    "name.given.count() = 2", "name.given = 'Anne'", "name.given != 'Anne'", "name.family.exists()",
    "identifier.where(system = 'urn:x').value = '42'", "identifier.all(system.exists())",
    "identifier.exists(value.matches('^[0-9]{10}$'))", "identifier.select(value).count()",
    "active and name.exists()", "active.not()", "deceased.exists() or active", "{} and true", "{} or true",
    "{} implies false", "false implies {}", "true xor false", "{} xor true", "gender.empty()",
    "multipleBirth.ofType(integer) + 1 = 3", "multipleBirth is integer", "multipleBirth.as(boolean).exists()",
    "contained.ofType(Organization).name", "contained.is(Resource)", "Patient.name.given.first()",
    "name.given.last()", "name.given.tail()", "name.given[1]", "name.given[5].empty()",
    "extension('urn:e2').value.ofType(Quantity).value > 2", "extension.url.isDistinct()",
    "extension.value.ofType(string) | extension.value.ofType(string)", "(name.given | name.family).count()",
    "name.given.combine(name.given).count()", "name.given.intersect('Anne')", "name.given.exclude('Anne')",
    "identifier.value.first().substring(0, 2).toInteger() * 3 mod 4", "7 div 2 - 1", "-(2)",
    "'#' + id", "id & '-' & {}", "name.family.startsWith('Jen') and name.family.endsWith('sen')",
    "name.family.contains('ns')", "name.family.length() < 10", "'a' < 'b'", "id in contained.id",
    "contained.id contains 'o1'", "iif(active, 'yes', 'no')", "iif(deceased.exists(), 1)",
    "managingOrganization.reference.resolve().name = 'Klinik'", "managingOrganization.resolve().name.exists()",
    "name.given.where($this.startsWith('S')).count() = 1", "name.given.all($this.length() > 3)",
    "name.given.trace('x').count()", "%resource.id = id", "%rootResource.id", "%ucum",
    "identifier.value.hasValue()", "birthDate.hasValue()", "name.hasValue()", "id.hasValue().not()",
    "-7 div 2", "7 div -2", "7 mod 2", "7 div 0", "7 mod 0", "('a' | 'b' | 'a').count()", "(1 | 2 | 1).isDistinct()",
    "identifier.period.start.isDistinct()", "name.given.first().substring(1, 2)", "name.family.substring(2)",
    "identifier.value.first().substring(%resource.id.length(), 3)", "htmlChecks()",
]


@pytest.fixture(scope="module")
def engine(packages: Any) -> InvariantEngine:
    return InvariantEngine(Terminology(packages))


def _plain(result: list[Any]) -> list[Any]:
    return [getattr(v, "data", v) for v in result]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_compiled_expressions_give_what_fhirpathpy_gives(engine: InvariantEngine, expression: str) -> None:
    found = engine.closure(expression)
    assert found is not None, expression
    closure = found[0].fn
    env = Env(PATIENT, PATIENT, [PATIENT], engine._resolve, engine._member_of, engine._conforms_to, [PATIENT])
    engine._local.root, engine._local.unresolved = PATIENT, []
    compiled = closure([PATIENT], env)
    assert compiled == _plain(engine._interpreted(expression, PATIENT, PATIENT, PATIENT, None)), expression


def test_raw_json_that_cannot_be_decided_falls_back_to_fhirpathpy(engine: InvariantEngine) -> None:
    period = {"start": "2020-01-02", "end": "2020-01-01T10:00:00+01:00"}
    env = Env(period, period, [period], engine._resolve, engine._member_of, engine._conforms_to, [period])
    for expression in ("start <= end", "start = end"):  # dates of different precision: fhirpathpy decides
        closure = compile_expression(expression).fn
        with pytest.raises(Fallback):
            closure([period], env)
        assert engine.evaluate(expression, period, period, period, "Period") == [False]
    with_extension = {"birthDate": "1980", "_birthDate": {"extension": [{"url": "u", "valueString": "x"}]}}
    with pytest.raises(Fallback):
        compile_expression("birthDate.exists()").fn([with_extension], env)
    with pytest.raises(Fallback):  # a collection where a Boolean is expected: fhirpathpy's error, not a guess
        compile_expression("(1 | 2) and true").fn([{}], env)


@pytest.mark.parametrize(("start", "end"), [
    ("2021-07-16T09:00:00.000+00:00", "2021-07-16T11:00:00.000+00:00"), ("2021-08-23T15:22:44+02:00",
     "2021-08-19T15:22:44+02:00"), ("2021-01-01T10:00:00Z", "2021-01-01T10:00:00Z"), ("2020-02-01", "2020-01-31")])
def test_dates_written_alike_are_decided_compiled_as_fhirpathpy_decides(engine: InvariantEngine, start: str,
                                                                       end: str) -> None:
    period = {"start": start, "end": end}
    env = Env(period, period, [period], engine._resolve, engine._member_of, engine._conforms_to, [period])
    for expression in ("start <= end", "start > end", "start = end", "start != end"):
        compiled = compile_expression(expression).fn([period], env)  # no Fallback
        assert compiled == _plain(engine._interpreted(expression, period, period, period, "Period")), expression


def test_the_guard_names_what_an_expression_reads_of_its_focus(engine: InvariantEngine) -> None:
    """A focus object with none of the names in the guard gives the result of an empty object, so the engine
    answers without evaluating; what can read more of the focus has no guard."""
    guard = compile_expression("a.b.exists() or value.where(c = 1).exists() or iif(d, e, f.g)").guard
    assert guard is not None and {"a", "_a", "valueString", "_valueQuantity", "d", "e", "f"} <= guard
    assert not {"b", "c", "g"} & guard
    assert "x" in (compile_expression("exists(x.y)").guard or ())
    for opened in ("Bundle.entry", "%resource.id", "$this.a", "extension('u').exists()", "resolve().exists()",
                   "where(a).exists()", "a.exists() and %rootResource.b.exists()"):
        assert compile_expression(opened).guard is None, opened
    expression = "contained.contained.empty()"
    assert engine.evaluate(expression, {"id": "x"}, {}, {}) == [True]
    assert engine.evaluate(expression, {"contained": [{"contained": [{"id": "y"}]}]}, {}, {}) == [False]


def test_mod_is_the_remainder_of_truncated_division() -> None:
    """FHIRPath (and the HL7 Java validator) define `mod` by truncated division: -7 mod 2 is -1. fhirpathpy
    uses Python's floored `%` and says 1; the compiled form follows the specification."""
    env = Env({}, {}, [{}], lambda items: [], lambda items, vs: [], lambda items, url: [], [{}])
    assert compile_expression("-7 mod 2").fn([{}], env) == [-1]
    assert compile_expression("7 mod -2").fn([{}], env) == [1]
    assert compile_expression("-7 div 2").fn([{}], env) == [-3]


def test_the_validator_is_told_what_it_need_not_evaluate(engine: InvariantEngine) -> None:
    """A constant expression holds everywhere; an expression that holds on an empty object holds on every
    object without the names it reads; one that fails on an empty object must always be evaluated."""
    assert engine.always_holds("htmlChecks()") and not engine.always_holds("1 = 2")
    assert not engine.always_holds("name.exists()")
    assert engine.holds_without("contained.meta.security.empty()") == {"contained", "_contained"}
    assert engine.holds_without("name.exists()") is None  # false on an empty object
    assert engine.holds_without("%resource.id.exists() or a.empty()") is None  # reads more than its focus
    interpreted = InvariantEngine(engine.terminology, compiled=False)
    assert interpreted.holds_without("contained.empty()") is None and not interpreted.always_holds("htmlChecks()")


def test_this_at_the_top_is_the_context(engine: InvariantEngine) -> None:
    env = Env(PATIENT, PATIENT, [PATIENT], engine._resolve, engine._member_of, engine._conforms_to, [PATIENT])
    assert compile_expression("$this.id = 'p1'").fn([PATIENT], env) == [True]


@pytest.mark.parametrize("expression", ["($this as dateTime).toString()", "a ~ b", "children().count()",
                                        "%vs-x", "@2020-01-01 < today()", "1 / 2"])
def test_what_is_not_compiled_is_left_to_fhirpathpy(expression: str) -> None:
    with pytest.raises(NotCompiled):
        compile_expression(expression)


def test_every_official_example_gets_the_same_findings_compiled_and_interpreted(packages: Any) -> None:
    compiled, interpreted = Validator(packages), Validator(packages, compiled_invariants=False)
    loaded = {f"{n}#{v}" for n, v in packages.packages}
    folders = [*sorted(SHARED.glob("medcom/fhir/*/*/package/example")), FUT_EXAMPLES,
               SHARED / "medcom/fhir/medcom.fhir.dk.carecommunication/examples/SendExamples"]
    checked = 0
    for path in collect(folders):
        context = package_context(path, loaded)
        a = validate_file(compiled, path, context=context).outcome.issues
        b = validate_file(interpreted, path, context=context).outcome.issues
        assert a == b, path
        checked += 1
    assert checked >= 260
    assert sum(fn is not None for fn in compiled.invariants._closures.values()) >= 90


def test_broken_invariants_are_found_the_same_way(packages: Any) -> None:
    """Variants that break invariants: the compiled form reports what fhirpathpy reports."""
    bundle = json.loads(sorted((SHARED / "medcom/fhir/medcom.fhir.dk.carecommunication/5.0.2/package/example")
                               .glob("Bundle-*.json"))[0].read_text(encoding="utf-8"))
    header = bundle["entry"][0]["resource"]
    header["definition"] = "http://example.org/no-such-definition"  # a pattern invariant on the definition
    bundle["entry"][1]["fullUrl"] = "https://x.org/Communication/1/_history/2"  # bdl: no versioned fullUrl
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Communication":  # category `other` asks for a topic
            entry["resource"]["category"][0]["coding"][0]["code"] = "other"
            entry["resource"].pop("topic", None)
    a = Validator(packages).validate(bundle).issues
    b = Validator(packages, compiled_invariants=False).validate(bundle).issues
    assert a == b
    assert len({i.rule for i in a if i.severity == "error"}) >= 3
