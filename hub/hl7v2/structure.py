"""The strict structure check of an HL7 v2 message for its version, with hl7apy, as ERR findings.

hl7apy checks the message against its version's message structure (segments, groups, their order and
cardinality, required fields, data types, lengths) and stops at the first problem; the hub turns that problem
into one finding with HL7 table 0357's code and, where hl7apy's text or the value tells, the segment and field:
a missing segment is 100, a missing required field 101, a value of the wrong type or length 102, a version
hl7apy does not know 203. Z-segments are allowed where the structure allows them.

Written policy: hl7apy knows 2.1–2.8.2 but for 2.7.1, a technical correction of 2.7 with the same message
structures; a 2.7.1 message is checked against 2.7's.
"""

from __future__ import annotations

import re

from hl7apy import exceptions as hl7apy_errors
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from hub.hl7v2.ack import Finding
from hub.hl7v2.message import Hl7Message

_MISSING = re.compile(r"Missing required child (?:[A-Z0-9_]+\.)*([A-Z][A-Z0-9]{2})(?:_(\d+))?$")
_VALUE = re.compile(r"^(.*?) is not an HL7 valid")


CHECKED_AS = {"2.7.1": "2.7"}  # versions hl7apy lacks → the version whose structures they keep


def structure_findings(message: Hl7Message) -> list[Finding]:
    text = message.text
    if message.version in CHECKED_AS:
        sep = message.separators.field
        msh = list(message.fields[0][2:])  # MSH-2 onwards, as sent: [10] is MSH-12
        msh[10] = msh[10].replace(message.version, CHECKED_AS[message.version], 1)
        text = sep.join(["MSH", *msh]) + text[text.index("\r"):] if "\r" in text else sep.join(["MSH", *msh])
    try:
        parsed = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        parsed.validate()
    except hl7apy_errors.UnsupportedVersion as exc:
        return [Finding("203", str(exc), "MSH", 1, 12)]
    except hl7apy_errors.ValidationError as exc:
        text = str(exc)
        missing = _MISSING.search(text)
        if missing and missing.group(2):
            return [Finding("101", text, missing.group(1), 1, int(missing.group(2)))]
        if missing:
            return [Finding("100", text, missing.group(1))]
        return [Finding("100", text)]
    except (ValueError, hl7apy_errors.InvalidDataType, hl7apy_errors.InvalidDateFormat,
            hl7apy_errors.InvalidDateOffset, hl7apy_errors.MaxLengthReached) as exc:
        return [_located(message, "102", str(exc))]
    except hl7apy_errors.HL7apyException as exc:
        return [Finding("100", str(exc))]
    return []


def _located(message: Hl7Message, code: str, text: str) -> Finding:
    """A finding about a value, placed at the first field that holds that value."""
    value = _VALUE.match(text)
    if value:
        wanted = value.group(1)
        counts: dict[str, int] = {}
        for segment in message.fields:
            name = segment[0]
            counts[name] = counts.get(name, 0) + 1
            for number in range(1, len(segment)):
                if wanted and wanted in [*segment[number].split(message.separators.component), segment[number]]:
                    return Finding(code, text, name, counts[name], number)  # MSH-n is [n] there too
    return Finding(code, text)
