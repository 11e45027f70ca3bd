"""Danish CPR numbers: format check, birth date and age, and masking.

CPR numbers are personal data: everything the hub logs or shows goes through `mask` / `mask_text`.
The modulus-11 check is deliberately not applied: CPR numbers issued since 2007 need not satisfy it.
"""

from __future__ import annotations

import re
from datetime import date

CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"

_CPR = re.compile(r"^(\d{2})(\d{2})(\d{2})-?(\d{4})$")
# Ten digits (optionally ddmmyy-xxxx) standing alone in free text.
_CPR_IN_TEXT = re.compile(r"(?<!\d)(\d{6})-?(\d{4})(?!\d)")


class InvalidCpr(ValueError):
    """Not a well-formed CPR number; the message says why without repeating the number."""


def _century(year2: int, digit7: int) -> int:
    # CPR rule: the 7th digit together with the two-digit year gives the century.
    if digit7 in (0, 1, 2, 3):
        return 1900
    if digit7 in (4, 9):
        return 2000 if year2 <= 36 else 1900
    return 2000 if year2 <= 57 else 1800


def normalise(value: str) -> str:
    """Ten digits without the hyphen; raises InvalidCpr."""
    m = _CPR.match(value.strip())
    if not m:
        raise InvalidCpr("a CPR number is ten digits (ddmmyy-xxxx)")
    digits = "".join(m.groups())
    birth_date(digits)
    return digits


def birth_date(value: str) -> date:
    """The birth date encoded in a CPR number; raises InvalidCpr for an impossible date."""
    m = _CPR.match(value.strip())
    if not m:
        raise InvalidCpr("a CPR number is ten digits (ddmmyy-xxxx)")
    dd, mm, yy, serial = m.groups()
    year = _century(int(yy), int(serial[0])) + int(yy)
    try:
        return date(year, int(mm), int(dd))
    except ValueError as exc:
        raise InvalidCpr("the first six digits of a CPR number are a date (ddmmyy)") from exc


def age_on(value: str, on: date) -> int:
    """Age in whole years on a given day."""
    born = birth_date(value)
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def mask(value: str) -> str:
    """`010180-****`: the birth date stays readable, the serial does not."""
    digits = re.sub(r"\D", "", value)
    return f"{digits[:6]}-****" if len(digits) >= 6 else "******-****"


def mask_text(text: str) -> str:
    """Mask every CPR-shaped number in a piece of free text (log lines, error messages)."""
    return _CPR_IN_TEXT.sub(lambda m: f"{m.group(1)}-****", text)
