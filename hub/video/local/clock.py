"""Time for the hub's VDX-compatible service: a movable clock and the API's date-time format.

VDX derives a meeting's provisioning state from the wall clock (the room is provisioned
`vmrAvailableBefore` minutes before start and deprovisioned after end). Tests and demos must be able
to move through those states without waiting, so the service reads time from a `VdxClock` whose offset
from real time can be set or advanced.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone

# RFC 3339 date-time. The year group takes any number of digits so that a too-long year can be reported
# with VDX's own code 25 instead of a generic format error. A space in place of the offset sign is read
# as "+": an unencoded "+" in a query string arrives as a space (the VDX spec warns about exactly this).
_RFC3339 = re.compile(
    r"^(?P<year>\d{4,})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.\d+)?"
    r"(?P<offset>[Zz]|[+\- ]\d{2}:?\d{2})$"
)


class VdxTimeError(ValueError):
    """A date-time the VDX API would reject; `year_too_long` selects error code 25 over code 10."""

    def __init__(self, message: str, *, year_too_long: bool = False) -> None:
        super().__init__(message)
        self.year_too_long = year_too_long


class VdxClock:
    """A UTC clock that runs with real time plus an adjustable offset (0 by default).

    The offset model keeps time flowing after `set`, so a service under test behaves like a live one,
    just shifted. Thread-safe: the HTTP server and a test may move and read it concurrently.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        if start is not None:
            self.set(start)

    def now(self) -> datetime:
        """The current (possibly shifted) time, timezone-aware in UTC."""
        with self._lock:
            return datetime.now(UTC) + self._offset

    def set(self, dt: datetime) -> None:
        """Make `now()` return `dt` from this moment on; a naive `dt` is taken as UTC."""
        target = dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
        with self._lock:
            self._offset = target - datetime.now(UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, for a negative value) by `seconds`."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)


def parse_vdx_time(value: str) -> datetime:
    """Parse an RFC 3339 date-time as VDX accepts it: offset required, fractional seconds ignored.

    Returns an aware UTC datetime truncated to whole seconds; raises `VdxTimeError` otherwise.
    """
    match = _RFC3339.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise VdxTimeError(f"'{value}' is not an RFC 3339 date-time such as 2027-03-12T09:00:00Z")
    if len(match["year"]) > 4:
        raise VdxTimeError("Date format is wrong, year must only have 4 digits", year_too_long=True)
    try:
        local = datetime(
            int(match["year"]), int(match["month"]), int(match["day"]),
            int(match["hour"]), int(match["minute"]), int(match["second"]),
            tzinfo=_offset(match["offset"]),
        )
    except ValueError as exc:
        raise VdxTimeError(f"'{value}' is not a valid date-time: {exc}") from exc
    return local.astimezone(UTC)


def format_vdx_time(dt: datetime) -> str:
    """Format as VDX v2 responds ("yyyy-MM-dd'T'HH:mm:ssXXX"), always in UTC, e.g. 2027-03-12T09:00:00Z."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _offset(text: str) -> timezone:
    """The tzinfo for an RFC 3339 offset ("Z", "+01:00", "-0130", " 0100")."""
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text.strip()} out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
