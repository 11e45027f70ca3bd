"""References: the same target in different reference forms counts once."""

from __future__ import annotations

from hub.fhir.references import distinct_targets


def test_same_patient_in_different_reference_forms_counts_once() -> None:
    contained = {"p": {"resourceType": "Patient", "id": "p",
                       "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0101801234"}]}}
    refs = [{"reference": "#p"}, {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101801234"}},
            {"reference": "https://x.dk/fhir/Patient/7"}, {"reference": "Patient/7"}]
    assert distinct_targets(refs, contained) == 2
