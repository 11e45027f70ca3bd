"""CPR numbers: the format, the birth date with its century from the 7th digit, the age on a day."""

from __future__ import annotations

from datetime import date

import pytest

from hub.core import cpr


@pytest.mark.parametrize("value, born", [
    ("0101801234", date(1980, 1, 1)),   # 7th digit 1 → 1900s
    ("010110-4321", date(2010, 1, 1)),  # 4 and year ≤ 36 → 2000s
    ("010150-4321", date(1950, 1, 1)),  # 4 and year > 36 → 1900s
    ("010157-5321", date(2057, 1, 1)),  # 5–8 and year ≤ 57 → 2000s
    ("010158-5321", date(1858, 1, 1)),  # 5–8 and year > 57 → 1800s
    ("290200-4000", date(2000, 2, 29)),
])
def test_cpr_birth_date_century(value: str, born: date) -> None:
    assert cpr.birth_date(value) == born


def test_cpr_age_on_birthday_edges() -> None:
    assert cpr.age_on("0101091234", date(2026, 12, 31)) == 117  # 7th digit 1: born 1909
    assert cpr.age_on("010108-4321", date(2025, 12, 31)) == 17
    assert cpr.age_on("010108-4321", date(2026, 1, 1)) == 18


@pytest.mark.parametrize("bad", ["3213801234", "12345", "0101801234x", "290201-1234"])
def test_cpr_invalid(bad: str) -> None:
    with pytest.raises(cpr.InvalidCpr):
        cpr.normalise(bad)
