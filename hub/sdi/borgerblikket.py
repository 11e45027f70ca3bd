"""What the citizen may see in Borgerblikket / Mit Overblik: the hub's policy, decided centrally (pure).

KOMBIT's material has no rule for minors or for when a municipality opens a KLE area to citizens; these are
the hub's, from configuration:
- **Age**: a citizen's cases are shown from `minimum_age` (18 by default), or from the age an override gives for
  a KLE area (the longest matching prefix of the case's KLE number wins: `27` social service, `27.36` one
  group). The age comes from the CPR number (century from its 7th digit, `hub.core.cpr`), on the day asked.
- **History**: whether what happened before the citizen reached that age is shown once they have
  (`show_history_before_age`), per the same setting.
- **Opening**: per municipality (CVR), from which date each KLE area is shown; a case created before that date is
  not, and an area without a date is not opened.
A case that must not be shown gets the Visningsklasse "Visning undtaget for borger" (its class UUID from
configuration) in the index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from hub.core.cpr import age_on, birth_date

VISNING_UNDTAGET = "Visning undtaget for borger"


def _longest(prefixes: Mapping[str, object], kle: str) -> str | None:
    """The longest key of `prefixes` that `kle` starts with, as whole KLE levels (`27` matches `27.36.04`)."""
    matches = [p for p in prefixes if kle == p or kle.startswith(p + ".")]
    return max(matches, key=len) if matches else None


@dataclass(frozen=True)
class AgePolicy:
    minimum_age: int = 18
    overrides: dict[str, int] = field(default_factory=dict)  # KLE prefix → age
    show_history_before_age: bool = False

    def age_for(self, kle: str) -> int:
        prefix = _longest(self.overrides, kle)
        return self.overrides[prefix] if prefix is not None else self.minimum_age

    def hidden(self, cpr: str, kle: str, on: date) -> bool:
        """Whether a case about this citizen is hidden from them on `on`: below the age for the case's area."""
        return age_on(cpr, on) < self.age_for(kle)

    def shown_from(self, cpr: str, kle: str) -> date:
        """The day the citizen reaches the age for the case's area; one born on 29 February turns a year older on
        1 March in the years without one (as `age_on` counts)."""
        born = birth_date(cpr)
        year = born.year + self.age_for(kle)
        try:
            return born.replace(year=year)
        except ValueError:
            return date(year, 3, 1)

    def history_shown(self, cpr: str, kle: str, happened: date, on: date) -> bool:
        """Whether something that happened on `happened` is shown on `on`: never while hidden; from the age on,
        what happened before it only if the policy shows history."""
        if self.hidden(cpr, kle, on):
            return False
        return self.show_history_before_age or age_on(cpr, happened) >= self.age_for(kle)


@dataclass(frozen=True)
class Openings:
    """Per municipality (CVR), from which date each KLE area is shown to citizens."""

    dates: dict[str, dict[str, date]] = field(default_factory=dict)

    def opened(self, cvr: str, kle: str, created: date) -> bool:
        areas = self.dates.get(cvr, {})
        prefix = _longest(areas, kle)
        return prefix is not None and created >= areas[prefix]
