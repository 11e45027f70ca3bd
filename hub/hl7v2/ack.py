"""HL7 v2 acknowledgements: the ACK the hub answers every message with.

- MSA-1: `AA` accepted, `AE` error (the message was understood but not taken), `AR` rejected (not understood,
  or a type, version or processing id the hub does not take). In enhanced mode (the sender gave MSH-15/16) the
  answer on the connection is the accept acknowledgement, `CA`/`CE`/`CR`.
- MSA-2 is the message's MSH-10, always (empty only when there is no MSH to read it from).
- One ERR segment per finding, with HL7 table 0357's code and where it is: from v2.5 ERR-2 (segment^sequence^
  field), ERR-3 (code^text^HL70357) and ERR-4 (severity); before v2.5, ERR-1 (segment^sequence^field^code&text).
- The ACK goes from the message's receiver to its sender (MSH-3/4 ⇄ MSH-5/6), in the message's version and
  character set (MSH-18 echoed), with the message's trigger event in MSH-9.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.hl7v2.message import COPENHAGEN, Hl7Message

SEVERITIES = ("E", "W", "I")
ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}
# HL7 table 0357, the codes the hub gives (their texts as the table names them)
TABLE_0357 = {
    "0": "Message accepted", "100": "Segment sequence error", "101": "Required field missing",
    "102": "Data type error", "103": "Table value not found", "200": "Unsupported message type",
    "201": "Unsupported event code", "202": "Unsupported processing id", "203": "Unsupported version id",
    "204": "Unknown key identifier", "205": "Duplicate key identifier", "206": "Application record locked",
    "207": "Application internal error",
}


@dataclass(frozen=True)
class Finding:
    """One ERR segment: HL7 table 0357's code, the text for people, and where (segment, its occurrence, field)."""

    code: str
    text: str
    segment: str | None = None
    sequence: int = 1
    field: int | None = None
    severity: str = "E"


def acknowledgement(message: Hl7Message | None, code: str, findings: Sequence[Finding] = (),
                    now: datetime | None = None, control_id: str | None = None, application: bool = False) -> bytes:
    """The ACK for `message` (None: bytes that had no readable MSH) with MSA-1 `code`: AA, AE, AR; in enhanced
    mode, unless it is the `application` acknowledgement, the accept acknowledgement's CA, CE, CR."""
    when = (now or datetime.now(UTC)).astimezone(COPENHAGEN).strftime("%Y%m%d%H%M%S%z")
    version = (message.version if message else "") or "2.5"
    get = message.get if message is not None else (lambda _: "")
    msa_code = ENHANCED[code] if message is not None and message.enhanced and not application else code
    msh = ["MSH", "^~\\&", get("MSH.5"), get("MSH.6"), get("MSH.3"), get("MSH.4"), when, "",
           _message_type(get("MSH.9.2"), version), control_id or uuid.uuid4().hex[:20].upper(),
           get("MSH.11") or "P", version]
    charset = get("MSH.18")
    if charset:
        msh += ["", "", "", "", "", charset]
    segments = ["|".join(msh), "|".join(["MSA", msa_code, get("MSH.10"), _escape(findings[0].text)[:80]
                                         if findings else ""]).rstrip("|")]
    segments += [_err(finding, version) for finding in findings]
    encoding = message.charset if message is not None else "utf-8"
    return ("\r".join(segments) + "\r").encode(encoding, errors="replace")


def _message_type(trigger: str, version: str) -> str:
    """ACK^<trigger>^ACK; MSH-9 has its third component (the message structure) from v2.3.1."""
    if not trigger:
        return "ACK"
    return f"ACK^{trigger}^ACK" if version >= "2.3.1" else f"ACK^{trigger}"


def _err(finding: Finding, version: str) -> str:
    where = "^".join([finding.segment or "", str(finding.sequence) if finding.segment else "",
                      str(finding.field) if finding.field else ""]).rstrip("^")
    text = _escape(finding.text)
    if version >= "2.5":
        return "|".join(["ERR", "", where, f"{finding.code}^{_escape(TABLE_0357.get(finding.code, ''))}^HL70357",
                         finding.severity, "", "", "", text])
    location = "^".join([finding.segment or "", str(finding.sequence) if finding.segment else "",
                         str(finding.field) if finding.field else "",
                         f"{finding.code}&{_escape(finding.text, sub=True)}&HL70357"])
    return f"ERR|{location}"


def _escape(text: str, sub: bool = False) -> str:
    """Text inside a field: HL7's escape sequences for the separators, line ends as `\\.br\\`."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("~", "\\R\\")
    out = out.replace("&", "\\T\\")
    return "\\.br\\".join(out.splitlines()) if not sub else " ".join(out.splitlines())
