"""The bounds a profile puts on values: minValue[x], maxValue[x], maxLength and the minLength extension.

Pure: each check takes the element's `Limits` and one value as JSON holds it, and returns what is wrong in words
(`None` when it keeps its bounds). Values are compared as their types order them:
- numbers (`integer`, `decimal`, `positiveInt`, `unsignedInt`) as numbers;
- `date`, `dateTime`, `instant` and `time` at the precision both have (`2020` against `2020-06-01` compares the
  year), with time zones where both carry a time;
- a Quantity against a Quantity bound in the bound's unit, converted by UCUM where the codes differ (`g`
  against `kg`); units that cannot be converted leave the bound unchecked, and say so;
- a date against a Duration bound (`minValueQuantity` as a Duration, or the `minValueDuration` the Java
  validator reads): the bound is today minus (min) or plus (max) that duration.
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal, InvalidOperation
from typing import Any

from hub.fhir.profile import Limits

UCUM = "http://unitsofmeasure.org"
_NUMBERS = frozenset({"Integer", "Decimal", "PositiveInt", "UnsignedInt", "Integer64"})
_TIMES = frozenset({"Date", "DateTime", "Instant", "Time"})


class Unchecked(Exception):
    """A bound that cannot be compared with the value (units UCUM cannot convert); a warning, not an error."""


def check(limits: Limits, value: Any) -> list[str]:
    """What `value` breaks of `limits`, in words (`Unchecked` when a bound cannot be compared)."""
    found = []
    if isinstance(value, str):
        if limits.max_length is not None and len(value) > limits.max_length:
            found.append(f"the value is {len(value)} characters long, more than the maximum length "
                         f"{limits.max_length}")
        if limits.min_length is not None and len(value) < limits.min_length:
            found.append(f"the value '{value}' is shorter than the minimum length {limits.min_length}")
    for bound, below in ((limits.min_value, True), (limits.max_value, False)):
        if bound is None:
            continue
        name, limit = bound
        order = _compare(name.removeprefix("minValue").removeprefix("maxValue"), value, limit, -1 if below else 1)
        if order is not None and (order < 0 if below else order > 0):
            found.append(f"the value {_shown(value)} is {'less' if below else 'greater'} than the "
                         f"{'minimum' if below else 'maximum'} {_shown(limit)}")
    return found


def _compare(kind: str, value: Any, limit: Any, direction: int) -> int | None:
    """-1, 0 or 1 as `value` is below, at or above `limit`; None when the two are not of comparable kinds.
    `direction`: a duration bound lies back from today for a minimum (-1), ahead for a maximum (1)."""
    if kind in _NUMBERS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _sign(Decimal(str(value)) - Decimal(str(limit)))
    if kind in _TIMES and isinstance(value, str) and isinstance(limit, str):
        return _compare_times(value, limit)
    if kind in ("Quantity", "Duration") and isinstance(limit, dict):
        if isinstance(value, str):  # a date against a duration from today
            return _compare_times(value, _from_today(limit, direction, value))
        if isinstance(value, dict) and "value" in value:
            return _compare_quantities(value, limit)
    return None


def _sign(d: Decimal) -> int:
    return (d > 0) - (d < 0)


def _compare_times(value: str, limit: str) -> int:
    if ("T" in value and "T" in limit) or (":" in value[:3] and ":" in limit[:3]):  # both with a time
        try:
            a, b = dt.datetime.fromisoformat(value.replace("Z", "+00:00")), \
                dt.datetime.fromisoformat(limit.replace("Z", "+00:00"))
            if (a.tzinfo is None) == (b.tzinfo is None):
                return (a > b) - (a < b)
        except ValueError:
            pass
    n = min(len(value.split("T")[0]), len(limit.split("T")[0]))
    a_s, b_s = value[:n], limit[:n]
    return (a_s > b_s) - (a_s < b_s)


def _from_today(duration: dict[str, Any], direction: int, value: str) -> str:
    """The date, at the value's precision, `duration` back from today (`direction` -1) or ahead of it (1)."""
    seconds = float(_to_unit(duration, "s"))
    return (dt.date.today() + dt.timedelta(seconds=direction * seconds)).isoformat()[:len(value)]


def _compare_quantities(value: dict[str, Any], limit: dict[str, Any]) -> int:
    if (value.get("system"), value.get("code")) == (limit.get("system"), limit.get("code")) or not limit.get("code"):
        return _sign(Decimal(str(value["value"])) - Decimal(str(limit.get("value", 0))))
    if value.get("system") != UCUM or limit.get("system") != UCUM:
        raise Unchecked(f"{_shown(value)} and {_shown(limit)} are not both UCUM units")
    converted = _to_unit(value, str(limit["code"]))
    return _sign(converted - Decimal(str(limit.get("value", 0))))


def _to_unit(quantity: dict[str, Any], code: str) -> Decimal:
    """The quantity's value in the UCUM unit `code`."""
    registry = _registry()
    try:
        amount = Decimal(str(quantity.get("value", 0)))
        converted = (float(amount) * registry.from_ucum(str(quantity.get("code")))).to(registry.from_ucum(code))
        return Decimal(str(converted.magnitude))
    except (InvalidOperation, ValueError, TypeError, ArithmeticError) as exc:
        raise Unchecked(f"{quantity.get('code')} cannot be converted to {code}") from exc
    except Exception as exc:  # noqa: BLE001 - pint's and lark's own errors for units they do not know
        raise Unchecked(f"{quantity.get('code')} cannot be converted to {code} ({type(exc).__name__})") from exc


@functools.cache
def _registry() -> Any:
    """UCUM through ucumvert's pint registry, loaded the first time two units must be converted (0.6 s)."""
    from ucumvert import PintUcumRegistry

    return PintUcumRegistry()


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value.get('value')} {value.get('code') or value.get('unit') or ''}".strip()
    return str(value)
