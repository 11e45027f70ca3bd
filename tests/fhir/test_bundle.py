"""Bundle rules beyond the definitions (`hub.fhir.bundle`): every entry's fullUrl, as the HL7 validator checks it."""

from __future__ import annotations

from typing import Any

import pytest

from hub.core.outcome import Outcome
from hub.fhir.bundle import check_bundle

RESOURCE_TYPES = {"Patient", "Observation", "Composition"}


def findings(bundle: dict[str, Any]) -> list[tuple[str | None, str]]:
    out = Outcome()
    check_bundle(bundle, out, RESOURCE_TYPES.__contains__)
    return [(i.expression, i.diagnostics or "") for i in out.issues if i.severity == "error"]


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


PATIENT = {"resourceType": "Patient", "id": "p1"}


@pytest.mark.parametrize("full_url", ["urn:uuid:0b1f4f6e-0c1a-4f51-9b1e-1d9a3c2f0a11", "urn:oid:1.2.3",
                                      "http://example.org/fhir/Patient/p1",
                                      "http://example.org/fhir/Patient/p1/_history/2",
                                      "http://example.org/test/Obervation/p1"])  # no resource type: not RESTful
def test_an_absolute_fullurl_naming_its_resource_passes(full_url: str) -> None:
    assert findings(bundle("collection", {"fullUrl": full_url, "resource": PATIENT})) == []


def test_a_missing_fullurl_is_an_error_except_in_transactions_and_batches() -> None:
    [(where, said)] = findings(bundle("document", {"resource": PATIENT}))
    assert where == "Bundle.entry[0]" and said.startswith("Except for transactions and batches")
    for kind in ("transaction", "batch", "transaction-response", "batch-response"):
        assert findings(bundle(kind, {"resource": PATIENT})) == []
    assert findings(bundle("searchset", {"search": {"mode": "outcome"}})) == []  # no resource: nothing to name


def test_a_fullurl_naming_another_resource_is_an_error_and_a_relative_one_a_warning() -> None:
    found = bundle("message", {"fullUrl": "urn:uuid:1", "resource": PATIENT},
                   {"fullUrl": "Patient/p1", "resource": PATIENT},
                   {"fullUrl": "http://example.org/fhir/Observation/p1", "resource": PATIENT})
    assert findings(found) == [("Bundle.entry[2]", "The fullUrl 'http://example.org/fhir/Observation/p1' does not "
                                                   "match the entry's resource Patient/p1")]
    out = Outcome()
    check_bundle(found, out, RESOURCE_TYPES.__contains__)
    # the written policy: MedCom's own fixtures write relative fullUrls, so the reference's error is a warning
    assert [(i.severity, i.expression, i.diagnostics) for i in out.issues if i.severity == "warning"] == [
        ("warning", "Bundle.entry[1]", "The fullUrl must be an absolute URL (not 'Patient/p1')")]
