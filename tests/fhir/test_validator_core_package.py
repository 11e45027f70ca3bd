"""The R4 core package's own resources (4,578 StructureDefinitions, ValueSets, CodeSystems, SearchParameters,
…) validate against the base definitions, but for defects of the package itself, each listed here and in the
README ("Validation policy"). The package's separate examples (hl7.fhir.r4.examples) are not in the store."""

from __future__ import annotations

import json
from typing import Any

from hub.fhir.validator import Validator

CORE = "hl7.fhir.r4.core#4.0.1"
# Defects of hl7.fhir.r4.core 4.0.1: the finding stands, the test records it.
KNOWN_DEFECTS: dict[str, set[str]] = {
    # v2 code systems with an extension that has neither a value nor extensions
    **{f"CodeSystem-v2-{n}.json": {"ext-1"} for n in ("0207", "0229", "0241", "0254", "0280")},
    "CodeSystem-v2-0550.json": {"CodeSystem.concept.code"},  # a concept whose code is an empty string
    # search parameters on extensions, published without the base resource they search
    **{f"SearchParameter-{vs}-extensions-{t}-{p}.json": {"SearchParameter.base"}
       for vs, t in (("codesystem", "CodeSystem"), ("valueset", "ValueSet"))
       for p in ("author", "effective", "end", "keyword", "workflow")},
    # an id longer than the 64 characters an id may have
    "SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json": {"SearchParameter.id"},
    # the workflow patterns: logical models, not abstract, without a baseDefinition
    **{f"StructureDefinition-{n}.json": {"sdf-4"} for n in ("Definition", "Event", "FiveWs", "Request")},
}


def test_r4_core_package_resources_validate_against_the_base_definitions(data_root: Any, packages: Any) -> None:
    validator = Validator(packages)
    folder = data_root / "standards" / "packages" / f"{CORE}" / "package"
    found: dict[str, set[str]] = {}
    checked = 0
    for path in sorted(folder.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if path.name.startswith(".") or "resourceType" not in resource:
            continue
        checked += 1
        rules = {i.rule or "" for i in validator.validate(resource, context=CORE).issues
                 if i.severity in ("error", "fatal")}
        if rules:
            found[path.name] = rules
    assert checked >= 4500
    assert found == KNOWN_DEFECTS
