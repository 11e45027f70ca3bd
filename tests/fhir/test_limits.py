"""A profile's bounds on values (`hub.fhir.limits`): numbers, times, quantities across UCUM units, durations
from today, and string lengths."""

from __future__ import annotations

import datetime as dt

import pytest

from hub.fhir.limits import Unchecked, check
from hub.fhir.profile import Limits

KG = {"value": 0, "system": "http://unitsofmeasure.org", "code": "kg"}


@pytest.mark.parametrize(("limits", "value", "broken"), [
    (Limits(max_value=("maxValueDecimal", 999)), 1000, True),
    (Limits(max_value=("maxValueDecimal", 999)), 999, False),
    (Limits(min_value=("minValueInteger", 1)), 0, True),
    (Limits(min_value=("minValueDate", "2020-06-01")), "2020-05-31", True),
    (Limits(min_value=("minValueDate", "2020-06-01")), "2020", False),  # compared at the precision both have
    (Limits(max_value=("maxValueDateTime", "2020-06-01T10:00:00+02:00")), "2020-06-01T09:30:00Z", True),
    (Limits(min_value=("minValueQuantity", KG)), {"value": -1, "system": KG["system"], "code": "g"}, True),
    (Limits(max_value=("maxValueQuantity", KG)), {"value": 11000, "system": KG["system"], "code": "g"}, True),
    (Limits(max_value=("maxValueQuantity", {**KG, "value": 11})), {"value": 10999, "system": KG["system"],
                                                                    "code": "g"}, False),
    (Limits(min_length=5), "abcd", True),
    (Limits(max_length=3), "abcd", True),
    (Limits(max_length=4), "abcd", False),
])
def test_values_out_of_their_bounds_are_found(limits: Limits, value: object, broken: bool) -> None:
    assert bool(check(limits, value)) is broken


def test_a_duration_bound_counts_from_today() -> None:
    hundred_years = ("minValueDuration", {"value": 100, "system": KG["system"], "code": "a"})
    assert check(Limits(min_value=hundred_years), "1850-01-01")
    assert check(Limits(min_value=hundred_years), (dt.date.today() - dt.timedelta(days=365)).isoformat()) == []
    ten_years = ("maxValueDuration", {"value": 10, "system": KG["system"], "code": "a"})
    assert check(Limits(max_value=ten_years), "2100-01-01")


def test_units_that_cannot_be_converted_leave_the_bound_unchecked() -> None:
    with pytest.raises(Unchecked):
        check(Limits(min_value=("minValueQuantity", KG)), {"value": 1, "system": KG["system"], "code": "mL"})
    with pytest.raises(Unchecked):
        check(Limits(min_value=("minValueQuantity", KG)), {"value": 1, "system": "urn:other", "code": "lb"})
