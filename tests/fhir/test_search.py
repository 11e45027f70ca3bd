"""FHIR search values: a date without a time zone is a Danish day."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.fhir.search import parse_date


def test_date_search_values_are_danish_days() -> None:
    b = parse_date("2027-03-12")
    assert (b.prefix, b.low, b.high) == ("eq", datetime(2027, 3, 11, 23, tzinfo=UTC),
                                         datetime(2027, 3, 12, 23, tzinfo=UTC))
    assert parse_date("ge2027-07").low == datetime(2027, 6, 30, 22, tzinfo=UTC)  # summer time
    assert parse_date("lt2027-03-12T10:00:00Z").low == datetime(2027, 3, 12, 10, tzinfo=UTC)
