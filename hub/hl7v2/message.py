"""Reading an HL7 v2 message as real senders write it.

Real senders end segments with CR, LF or CRLF, put a byte-order mark in front, leave empty segments at the end,
and write Danish letters in ISO-8859-1 or UTF-8. The hub reads all of that; it refuses (AR) only what cannot be
understood at all: no MSH segment first, or encoding characters that cannot be right.

Character set (MSH-18): the bytes are decoded as MSH-18 says (`8859/1`, `8859/15`, `UNICODE UTF-8`, `ASCII`, …);
without MSH-18 (HL7's default is ASCII, which has no æøå) as UTF-8 when the bytes are UTF-8, else as
ISO-8859-1, which is what Danish systems that leave it out write. An MSH-18 the hub does not know is refused.
Values are read unescaped (`\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\X..\\`).

HL7's explicit null, `""`, says "delete this value" (HL7 v2 2.5 §2.5.3). Every event the hub makes of a message
states the whole of what it is about (the stay as it stands), so a deleted value is one the new state lacks:
`get` reads a null as empty, as a value not sent; neither is an error. A refusal names what can be read of MSH
(`NotHl7.header`): MSH-10 and the sender answer in MSA-2 and the ACK's MSH-5/6 even when the rest is unreadable.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import hl7

BOM = b"\xef\xbb\xbf"
COPENHAGEN = ZoneInfo("Europe/Copenhagen")
CHARSETS = {
    "ASCII": "ascii",
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",  # seen in the wild for UTF-8
    "UTF-8": "utf-8",
}
_SEGMENT_END = re.compile(r"\r\n|\n|\r")
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
# A segment that follows MSH, after a space on MSH's line: the message's line ends were lost on the way
_AFTER_MSH = " (?:SFT|UAC|EVN|PID|PD1|NK1|PV1|MRG|SCH|TQ1|RGS|ARQ|NTE|MSA|OBX)"


@functools.lru_cache(maxsize=16)
def _after_msh(separator: str) -> re.Pattern[str]:
    return re.compile(_AFTER_MSH + re.escape(separator))
NULL = '""'  # HL7's explicit null
ACK_TYPES = ("AL", "NE", "ER", "SU")  # HL7 table 0155: MSH-15 and MSH-16


class Unmappable(ValueError):
    """What a message lacks for the hub to act on it, or cannot be read there: answered AE, naming the field."""

    def __init__(self, text: str, segment: str, field: int, code: str = "101") -> None:
        super().__init__(text)
        self.text, self.segment, self.field, self.code = text, segment, field, code  # code: HL7 table 0357


class NotHl7(ValueError):
    """The bytes cannot be understood as an HL7 v2 message: answered AR, with what `header` could be read."""

    def __init__(self, text: str, code: str = "100", field: int | None = None,
                 header: Hl7Message | None = None) -> None:
        super().__init__(text)
        self.text, self.code, self.field = text, code, field  # code: HL7 table 0357
        self.header = header  # the MSH fields that could be read, for the ACK (MSH-10, sender, version)


@dataclass(frozen=True)
class Separators:
    """MSH-1 and MSH-2: what splits fields, components, repetitions and subcomponents, and what escapes."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    # python-hl7's names, for its unescape (hl7.util.unescape reads `separators` and `esc`)
    @property
    def separators(self) -> str:
        return "\r" + self.field + self.repetition + self.component + self.subcomponent

    @property
    def esc(self) -> str:
        return self.escape


@dataclass(frozen=True)
class Hl7Message:
    """A message split into segments and fields, and no further until a value is asked for: building the whole
    tree of components (as python-hl7's parse does) costs more than the listener's budget for a message."""

    raw: bytes
    text: str  # decoded, segments ended by CR
    charset: str  # the Python codec the bytes were decoded with
    separators: Separators
    fields: tuple[tuple[str, ...], ...]  # per segment: its id, then its fields as sent (MSH: [1] is MSH-1)

    def segments(self, segment_id: str) -> list[tuple[str, ...]]:
        """The segments with this id, each as (id, field 1, field 2, …), values as sent (escaped)."""
        return [f for f in self.fields if f[0] == segment_id]

    @property
    def segment_ids(self) -> list[str]:
        return [f[0] for f in self.fields]

    def get(self, path: str, occurrence: int = 1) -> str:
        """A value by HL7 path, unescaped; '' when absent. `PID.5.1` is segment, field, component (and a fourth
        number the subcomponent), of the field's first repetition; `PID.5` its first component; `occurrence`
        picks the n-th such segment."""
        segment_id, *numbers = path.split(".")
        found = self.segments(segment_id)
        if len(found) < occurrence or not numbers or len(found[occurrence - 1]) <= int(numbers[0]):
            return ""
        value = found[occurrence - 1][int(numbers[0])]
        if segment_id == "MSH" and int(numbers[0]) <= 2:
            return value  # the separators themselves
        value = self.component(value, *(int(n) for n in numbers[1:3]))
        return "" if value == NULL else self.unescape(value)

    def component(self, field: str, component: int = 1, subcomponent: int | None = None) -> str:
        """One component (and subcomponent) of a field's first repetition, as sent."""
        parts = field.split(self.separators.repetition)[0].split(self.separators.component)
        value = parts[component - 1] if len(parts) >= component else ""
        if subcomponent is not None:
            subs = value.split(self.separators.subcomponent)
            value = subs[subcomponent - 1] if len(subs) >= subcomponent else ""
        return value

    def repetitions(self, segment_id: str, field: int, occurrence: int = 1) -> list[list[str]]:
        """Each repetition of a field of the first such segment (or the `occurrence`-th), as its components,
        unescaped."""
        found = self.segments(segment_id)[occurrence - 1:occurrence]
        if not found or len(found[0]) <= field or not found[0][field]:
            return []
        return [["" if c == NULL else self.unescape(c) for c in repetition.split(self.separators.component)]
                for repetition in found[0][field].split(self.separators.repetition)]

    def unescape(self, value: str) -> str:
        """HL7's escape sequences (`\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\X..\\`, formatting), by python-hl7."""
        return str(hl7.util.unescape(self.separators, value)) if self.separators.escape in value else value

    def time(self, path: str, occurrence: int = 1) -> datetime | None:
        """A time the hub acts on, by HL7 path (of the `occurrence`-th such segment): absent or null (`""`) is
        None, present but unreadable is `Unmappable` (102)."""
        value = self.get(path, occurrence)
        moment = hl7_time(value)
        if value and moment is None:
            segment, field = path.split(".")[:2]
            raise Unmappable(f"{segment}-{field} is not an HL7 date and time: {value!r}", segment, int(field), "102")
        return moment

    @property
    def control_id(self) -> str:
        return self.get("MSH.10")

    @property
    def sender(self) -> str:
        """Sending application and facility (MSH-3, MSH-4): with MSH-10, what makes a message the same again."""
        return f"{self.get('MSH.3')}^{self.get('MSH.4')}"

    @property
    def message_type(self) -> str:
        return self.get("MSH.9.1")

    @property
    def trigger(self) -> str:
        return self.get("MSH.9.2")

    @property
    def version(self) -> str:
        return self.get("MSH.12.1")

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgement mode: the sender gave MSH-15 or MSH-16 (HL7 v2 2.9.2) as HL7 table 0155 has
        them. Values outside the table are answered in original mode (`unknown_ack_types` says which)."""
        asked = (self.get("MSH.15"), self.get("MSH.16"))
        return any(asked) and all(a in ACK_TYPES or not a for a in asked)

    @property
    def unknown_ack_types(self) -> list[int]:
        """The fields of MSH-15 and MSH-16 whose value is not one of HL7 table 0155's."""
        return [n for n in (15, 16) if self.get(f"MSH.{n}") not in ("", *ACK_TYPES)]


def read(raw: bytes) -> Hl7Message:
    body = raw[len(BOM):] if raw.startswith(BOM) else raw
    body = body.lstrip(b" \t\r\n")
    if not body.startswith(b"MSH"):
        raise NotHl7("The message does not start with an MSH segment")
    if len(body) < 8:
        raise NotHl7("The MSH segment is cut short", field=2)
    sep = body[3:4].decode("latin-1")
    first_line = _SEGMENT_END.split(body[:4096].decode("latin-1"), maxsplit=1)[0]
    msh = first_line.split(sep)
    encoding = msh[1] if len(msh) > 1 else ""
    try:
        lost = _after_msh(sep).search(first_line)
        if lost is not None:
            raise NotHl7(f"The segments are not separated by carriage returns (a segment {lost.group()[1:4]} "
                         "follows on MSH's line: were the line ends lost on the way?)")
        _check_separators(sep, encoding)
        charset = _charset(msh[17].strip() if len(msh) > 17 else "", body)
        try:
            text = body.decode(charset)
        except UnicodeDecodeError as exc:
            raise NotHl7(f"The message is not {charset} as MSH-18 says: byte {exc.start} cannot be read",
                         code="102", field=18) from None
        segments = [s for s in _SEGMENT_END.split(text) if s.strip()]
        for number, segment in enumerate(segments, 1):
            if not _SEGMENT_ID.fullmatch(segment[:3]) or (len(segment) > 3 and segment[3] != sep):
                raise NotHl7(f"Segment {number} does not start with a segment id and the field separator: "
                             f"{segment[:10]!r}")
    except NotHl7 as exc:
        exc.header = _header(raw, sep, msh)
        raise
    separators = Separators(sep, *(encoding + "&")[:4]) if len(encoding) >= 4 else Separators(sep)
    split = [tuple(segment.split(sep)) for segment in segments]
    fields = ((split[0][0], sep, *split[0][1:]), *split[1:])  # MSH-1 is the field separator itself: MSH-n is [n]
    return Hl7Message(raw, "\r".join(segments), charset, separators, fields)


def _header(raw: bytes, separator: str, fields: list[str]) -> Hl7Message | None:
    """MSH as far as it can be read without trusting its encoding characters or character set: its fields up to
    MSH-17 (MSH-18, unreadable or not, is not echoed), split by the field separator alone, for the ACK. A value
    is taken up to the first space where the segments' line ends were lost on the way (`2.5 EVN|…`)."""
    if not separator or separator.isalnum() or separator in "\r\n ":
        return None
    kept = [f.split(" ")[0] if n in (9, 10, 11) else f for n, f in enumerate(fields[:17])]
    msh = ("MSH", separator, *kept[1:])
    return Hl7Message(raw, separator.join(kept), "latin-1", Separators(separator), (msh,))


def _check_separators(field: str, encoding: str) -> None:
    """MSH-1 and MSH-2: one field separator and 4 (5 from v2.7) encoding characters, all different, none a
    letter, digit or line end."""
    chars = field + encoding
    if not 4 <= len(encoding) <= 5 or len(set(chars)) != len(chars) or any(c.isalnum() or c in "\r\n " for c in
                                                                            chars):
        raise NotHl7(f"MSH-1/MSH-2 are not usable separators: {field!r} and {encoding!r}", code="102", field=2)


def _charset(msh18: str, body: bytes) -> str:
    if msh18:
        found = CHARSETS.get(msh18.split("^")[0].upper())
        if found is None:
            raise NotHl7(f"MSH-18 names a character set the hub does not read: {msh18}", code="102", field=18)
        return found
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "iso-8859-1"
    return "utf-8"


def hl7_time(value: str) -> datetime | None:
    """An HL7 DTM/TS (`YYYYMMDD[HHMM[SS[.S…]]][+ZZZZ]`) as an aware datetime in UTC (the canonical model's
    times); Danish time without an offset."""
    value = value.split("^")[0].strip()
    if len(value) < 8 or not value[:8].isdigit():
        return None
    zone = None
    for sign in "+-":
        if sign in value[8:]:
            at = value.index(sign, 8)
            value, zone = value[:at], value[at:]
    digits = value.split(".")[0]
    try:
        moment = datetime.strptime(digits.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    if zone and len(zone) == 5:
        return datetime.fromisoformat(moment.isoformat() + f"{zone[:3]}:{zone[3:]}").astimezone(UTC)
    return moment.replace(tzinfo=COPENHAGEN).astimezone(UTC)
