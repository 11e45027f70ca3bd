"""What goes into the case index about the citizen (issue 6, first part): the KLE emne of a service, checked on
the KLE list in the store, and Borgerblikket's policy for minors and opening dates at their edges."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hub.core.mappings import MAPPINGS, code_maps
from hub.sdi.borgerblikket import AgePolicy, Openings
from hub.sdi.kle import LEGAL_BASIS, KleList, UnknownKle

# born 24 November 2009: 7th digit 4, year 09 → 2000s (the CPR rule); fictitious
MINOR = "2411094321"
BORN_1937 = "0101374321"  # 7th digit 4, year 37 → 1900s


@pytest.fixture(scope="module")
def kle(data_root: Path) -> KleList:
    return KleList.load(data_root / "standards")


def test_every_service_has_an_emne_on_the_kle_list(kle: KleList) -> None:
    services = code_maps(MAPPINGS / "kle-services.json").codes(LEGAL_BASIS, "urn:hub:kle")
    assert len(services) == 6
    for legal_basis, number in services.items():
        assert kle.for_service(legal_basis).number == number
    assert kle.for_service("sundhedsloven-140").title == "Genoptræning efter sundhedsloven"


def test_an_unknown_or_retired_emne_is_refused(kle: KleList) -> None:
    with pytest.raises(UnknownKle, match="not on the KLE list"):
        kle.emne("99.99.99")
    retired = next(e for e in kle.emner.values() if e.retired_in is not None)
    with pytest.raises(UnknownKle, match="retired"):
        kle.emne(retired.number)
    with pytest.raises(UnknownKle, match="No KLE emne"):
        kle.for_service("serviceloven-999")


def test_a_minors_cases_are_hidden_until_the_day_they_reach_the_age() -> None:
    policy = AgePolicy(minimum_age=18)
    assert policy.hidden(MINOR, "29.21.04", date(2027, 11, 23))  # the day before the 18th birthday
    assert not policy.hidden(MINOR, "29.21.04", date(2027, 11, 24))  # the birthday itself
    assert not policy.hidden(BORN_1937, "29.21.04", date(2027, 1, 1))


def test_an_override_per_kle_area_wins_by_its_longest_prefix() -> None:
    policy = AgePolicy(minimum_age=18, overrides={"27": 15, "27.36": 16})
    on = date(2025, 11, 24)  # 16 that day
    assert policy.age_for("27.35.20") == 15 and policy.age_for("27.36.04") == 16 and policy.age_for("29.21.04") == 18
    assert not policy.hidden(MINOR, "27.36.04", on) and policy.hidden(MINOR, "29.21.04", on)
    assert policy.hidden(MINOR, "27.36.04", date(2025, 11, 23))
    assert policy.age_for("273.1") == 18  # whole KLE levels only


def test_history_from_before_the_age_is_shown_only_if_the_policy_says_so() -> None:
    happened, later = date(2026, 5, 1), date(2028, 1, 1)  # at 16, seen at 18
    assert not AgePolicy(show_history_before_age=False).history_shown(MINOR, "29.21.04", happened, later)
    assert AgePolicy(show_history_before_age=True).history_shown(MINOR, "29.21.04", happened, later)
    assert not AgePolicy(show_history_before_age=True).history_shown(MINOR, "29.21.04", happened,
                                                                      date(2027, 11, 23))  # still hidden


def test_a_kle_area_is_shown_from_the_municipalitys_opening_date() -> None:
    openings = Openings({"29189919": {"29": date(2027, 1, 1), "29.21": date(2027, 6, 1)}})
    assert not openings.opened("29189919", "29.18.00", date(2026, 12, 31))
    assert openings.opened("29189919", "29.18.00", date(2027, 1, 1))
    assert not openings.opened("29189919", "29.21.04", date(2027, 5, 31))  # its group opens later
    assert openings.opened("29189919", "29.21.04", date(2027, 6, 1))
    assert not openings.opened("29189919", "27.36.04", date(2030, 1, 1))  # never opened
    assert not openings.opened("11111111", "29.18.00", date(2030, 1, 1))  # another municipality
