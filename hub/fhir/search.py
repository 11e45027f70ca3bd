"""FHIR search parameter values: dates with prefixes and precision, tokens.

A date without a time zone is a Danish date: it is read in Europe/Copenhagen (DESIGN: store UTC, show local).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hub.core.errors import InvalidInput
from hub.core.model import DateBound
from hub.core.outcome import single

LOCAL = ZoneInfo("Europe/Copenhagen")
_DATE = re.compile(r"^(eq|ne|lt|le|gt|ge|sa|eb)?(\d{4})(?:-(\d{2})(?:-(\d{2})(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?$")


def parse_date(param: str) -> DateBound:
    m = _DATE.match(param.strip())
    if not m:
        raise InvalidInput(single("invalid", f"Bad date search value '{param}'", "date"))
    prefix, year, month, day, time_part, tz = m.groups()
    prefix = prefix or "eq"
    try:
        if time_part:
            value = datetime.fromisoformat(f"{year}-{month}-{day}{time_part}".replace("Z", "+00:00"))
            low = value if value.tzinfo else value.replace(tzinfo=LOCAL)
            high = low + timedelta(seconds=1)
        else:
            low = datetime(int(year), int(month or 1), int(day or 1), tzinfo=LOCAL)
            if day:
                high = low + timedelta(days=1)
            elif month:
                high = low.replace(year=low.year + (low.month == 12), month=low.month % 12 + 1)
            else:
                high = low.replace(year=low.year + 1)
    except ValueError:
        raise InvalidInput(single("invalid", f"Bad date search value '{param}'", "date")) from None
    return DateBound(prefix, low.astimezone(UTC), high.astimezone(UTC))


def split_token(value: str) -> tuple[str | None, str]:
    """`system|code` → (system, code); `code` → (None, code); `|code` → ("", code)."""
    if "|" in value:
        system, _, code = value.partition("|")
        return system, code
    return None, value
