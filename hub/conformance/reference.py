"""The HL7 validator's own regression suite, run on the hub's validator: where do the verdicts agree?

`../shared/reference/fhir-test-cases/validator/` holds the R4 cases of HL7's `fhir-test-cases` with the Java
reference validator's outcome for each (`manifest-r4.json`, `outcomes/java/`). Each case is an instance, the
conformance resources to load first (`supporting`, `profiles`, and the profile of `profile.source`), and the
expected outcome: of the instance alone, and, for a case with `profile`, of the instance against that profile too.
The profile and its own `profile.supporting` are loaded for the check against the profile only, as the Java
validator's runner loads them. A case's resources go into a package of their own (depending on R4 core), so they
resolve as the Java validator loads them.

What is compared: the verdict (any `error` or `fatal` issue, or none) first, then, where both have errors, their
places (`expression`, with the Java validator's `.ofType(T)` written as FHIR's element names). Terminology cases
(`tx`, `tx-advanced`) are reported apart: the reference had a full terminology server, the hub has the packages.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.core.errors import HubError
from hub.fhir.options import ValidationOptions
from hub.fhir.packages import PackageSet, write_package
from hub.fhir.validator import Validator

MANIFEST = "manifest-r4.json"
CORE_DEPENDENCY = {"hl7.fhir.r4.core": "4.0.1"}
TERMINOLOGY = frozenset({"tx", "tx-advanced"})
_CRUMB = re.compile(r"/\*[^*]*\*/")  # the Java validator's `/*Type/id*/` crumbs in an expression
_OF_TYPE = re.compile(r"\.(?!resource\.)(\w+)\.ofType\((\w)(\w*)\)")  # `resource` holds a resource, no choice


@dataclass(frozen=True)
class Result:
    """One comparison: a case's instance alone (`against` None), or against the case's profile."""

    name: str
    module: str
    against: str | None
    expected: bool  # the reference found an error
    got: bool | None  # the hub found an error; None when it failed to answer (a defect)
    expected_places: frozenset[str]
    got_places: frozenset[str]
    detail: str = ""  # the hub's first error, or why it could not answer

    @property
    def agrees(self) -> bool:
        return self.got is self.expected

    @property
    def same_places(self) -> bool:
        return self.agrees and self.expected_places == self.got_places


def place(expression: str) -> str:
    """A Java validator's expression in FHIR's element names: `Observation.value.ofType(integer)` is
    `Observation.valueInteger` (a choice element); `entry[0].resource.ofType(Patient)` stays as it is; the
    comments naming the resource on the way (`entry[0].resource/*Patient/pat1*/.name`) are dropped."""
    return _OF_TYPE.sub(lambda m: f".{m.group(1)}{m.group(2).upper()}{m.group(3)}", _CRUMB.sub("", expression))


def _expected(suite: Path, java: Any) -> tuple[bool, frozenset[str]]:
    if isinstance(java, dict):  # an inline outcome: its count of errors
        return int(java.get("errorCount", 0)) > 0, frozenset()
    outcome = json.loads((suite / "outcomes" / java).read_text(encoding="utf-8"))
    errors = [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]
    return bool(errors), frozenset(place(e["expression"][0]) for e in errors if e.get("expression"))


def _read(path: Path, validator: Validator, definition: bool = False) -> dict[str, Any]:
    """A case's file; a `definition` (a profile, a value set) read as the Java validator loads one, leniently."""
    if path.suffix == ".xml":
        return validator.reader.read(path.read_bytes(), lenient=definition)
    return validator.parse(path.read_bytes(), "application/fhir+json")


def _options(case: dict[str, Any]) -> ValidationOptions:
    """The Java validator's options a case sets, as the hub's validator takes them (`hub.fhir.options`); where
    the hub's defaults differ from the Java validator's, the Java validator's."""
    profile = case.get("profile") or {}
    bundle = case.get("bundle-param") or {}
    return ValidationOptions(
        security_checks=bool(case.get("security-checks")),
        html_in_markdown="error" if case.get("noHtmlInMarkdown") else "warning",
        example_urls=case.get("examples", True) is not False,
        rest_types=bool(profile.get("assumeValidRestReferences", case.get("assumeValidRestReferences"))),
        resolve_references=str(case.get("validateReference", "")).startswith("CHECK_EXISTS"),
        bundle_profiles=((bundle["rule"], bundle["profile"]),) if bundle.get("rule") else (),
        contained=case.get("validateContains") != "IGNORE",
    )


_PLAIN = ValidationOptions(rest_types=False)  # the Java validator's defaults


class Suite:
    """The suite at `suite` (the `validator/` folder), validated with R4 core from `core` (its package folder)."""

    def __init__(self, suite: Path, core: Path) -> None:
        self.suite = suite
        self.core = core
        self.manifest = json.loads((suite / MANIFEST).read_text(encoding="utf-8"))
        self._base = Validator(PackageSet([core]), options=_PLAIN)  # cases with no resources or options of their own

    @property
    def cases(self) -> list[dict[str, Any]]:
        return list(self.manifest["test-cases"])

    def run(self) -> list[Result]:
        results: list[Result] = []
        for case in self.cases:
            results.extend(self.case(case))
        return results

    def case(self, case: dict[str, Any]) -> Iterator[Result]:
        with tempfile.TemporaryDirectory() as folder:
            validator, _ = self._validator(case, Path(folder) / "alone", with_profile=False)
            yield self._compare(case, validator, None, case["java"])
            if case.get("profile"):
                validator, profile_url = self._validator(case, Path(folder) / "profile", with_profile=True)
                yield self._compare(case, validator, profile_url, case["profile"]["java"])

    def _validator(self, case: dict[str, Any], folder: Path, with_profile: bool) -> tuple[Validator, str | None]:
        """The validator seeing the case's own conformance resources, and the url of its profile. As the Java
        validator's runner does, the profile (`profile.source`) and what it needs (`profile.supporting`) are
        loaded only for the check against the profile (`with_profile`), not for the instance alone."""
        names = [*case.get("supporting", []), *case.get("supporting5", []), *case.get("profiles", [])]
        source = (case.get("profile") or {}).get("source") if with_profile else None
        if source:
            names.extend([*case["profile"].get("supporting", []), source])
        options = _options(case)
        if not names:
            return (Validator(PackageSet([self.core]), options=options) if options != _PLAIN else self._base), None
        resources, profile_url = [], None
        for name in dict.fromkeys(names):
            try:
                resource = _read(self.suite / name, self._base, definition=True)
            except (HubError, OSError):
                continue  # reported where it is used: the profile is then unknown
            if name == source:
                profile_url = resource.get("url")
            resources.append(resource)
        folder.mkdir(parents=True, exist_ok=True)
        # The packages the Java runner loads for the case (`profile.packages`) are not in the store: named as
        # dependencies, what they define is known to be left out (`PackageSet.missing`), not missing indeed.
        named = (case.get("profile") or {}).get("packages", []) if with_profile else []
        write_package(folder, "reference.case", resources,
                      {**CORE_DEPENDENCY, **dict(p.split("#", 1) for p in named if "#" in p)})
        return Validator(PackageSet([self.core, folder]), options=options), profile_url

    def _compare(self, case: dict[str, Any], validator: Validator, profile: str | None, java: Any) -> Result:
        expected, expected_places = _expected(self.suite, java)
        got: bool | None
        try:
            outcome = validator.validate(_read(self.suite / case["file"], validator), [profile] if profile else [])
            errors = [i for i in outcome.issues if i.severity in ("error", "fatal")]
            got, places = bool(errors), frozenset(i.expression for i in errors if i.expression)
            detail = errors[0].diagnostics or "" if errors else ""
        except HubError as exc:  # not readable at all: the reader's error is the verdict
            got, places, detail = True, frozenset(), str(exc)
        except Exception as exc:  # noqa: BLE001 - a defect of the hub's validator, counted as one
            got, places, detail = None, frozenset(), f"{type(exc).__name__}: {exc}"
        return Result(case["name"], case["module"], profile, expected, got, expected_places, places, detail)


def table(results: list[Result]) -> dict[str, Counter[str]]:
    """Per module: agree, disagree, and of those that agree with errors whose places the reference gives, at the
    same places."""
    counts: dict[str, Counter[str]] = {}
    for r in results:
        c = counts.setdefault(r.module, Counter())
        c["agree" if r.agrees else "disagree"] += 1
        if r.agrees and r.expected and r.expected_places:  # an inline outcome gives a count, no places
            c["same places" if r.same_places else "other places"] += 1
    return dict(sorted(counts.items()))


def agreement(results: list[Result], terminology: bool = False) -> tuple[int, int]:
    """(agreeing, all) of the comparisons outside the terminology modules (or of those only)."""
    chosen = [r for r in results if (r.module in TERMINOLOGY) == terminology]
    return sum(r.agrees for r in chosen), len(chosen)


def main() -> None:  # pragma: no cover - a report for people: `python -m hub.conformance.reference`
    import logging
    import sys

    from hub.core import standards
    from hub.core.config import Settings

    logging.disable(logging.WARNING)
    settings = Settings()
    suite = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.standards_dir.parent / "reference" / \
        "fhir-test-cases" / "validator"
    core = next(d for d in standards.package_dirs(settings.standards_store) if "hl7.fhir.r4.core#4.0.1" in str(d))
    results = Suite(suite, core).run()
    print(f"{'module':<14}{'agree':>7}{'disagree':>10}{'same places':>13}{'other places':>14}")
    for module, c in table(results).items():
        print(f"{module:<14}{c['agree']:>7}{c['disagree']:>10}{c['same places']:>13}{c['other places']:>14}")
    for terminology in (False, True):
        agree, total = agreement(results, terminology)
        print(f"{'terminology' if terminology else 'non-terminology'}: {agree}/{total} agree "
              f"({100 * agree / max(total, 1):.1f}%)")
    for r in results:
        if not r.agrees:
            against = f" against {r.against}" if r.against else ""
            print(f"  {r.module}/{r.name}{against}: reference {'error' if r.expected else 'ok'}, hub "
                  f"{'error' if r.got else 'ok' if r.got is False else 'failed'} {r.detail[:120]}")


if __name__ == "__main__":
    main()
