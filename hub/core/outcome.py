"""Findings about a message, collected into one FHIR OperationOutcome.

Every check in the hub adds `Issue`s to an `Outcome` instead of raising on the first problem, so a sender
sees all that is wrong with a message at once, and the same verdict is stored with the raw bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding: FHIR issue severity and IssueType code, where it is, and what is wrong."""

    severity: Severity
    code: str
    diagnostics: str
    expression: str | None = None
    rule: str | None = None

    def to_fhir(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.rule:
            # The rule that raised the issue (a profile constraint key or an element id), as the HL7 validator
            # reports it: as issue.details.coding.
            out["details"] = {
                "coding": [{"system": "urn:hub:rule", "code": self.rule}],
                "text": self.rule,
            }
        if self.expression:
            out["expression"] = [self.expression]
            out["location"] = [self.expression]
        return out


@dataclass(slots=True)
class Outcome:
    """The verdict on one input: an ordered list of issues."""

    issues: list[Issue] = field(default_factory=list)

    def add(
        self,
        severity: Severity,
        code: str,
        diagnostics: str,
        expression: str | None = None,
        rule: str | None = None,
    ) -> None:
        self.issues.append(Issue(severity, code, diagnostics, expression, rule))

    def error(self, code: str, diagnostics: str, expression: str | None = None, rule: str | None = None) -> None:
        self.add("error", code, diagnostics, expression, rule)

    def extend(self, other: Outcome) -> None:
        self.issues.extend(other.issues)

    @property
    def ok(self) -> bool:
        return not any(i.severity in ("fatal", "error") for i in self.issues)

    def to_fhir(self) -> dict[str, Any]:
        issues = [i.to_fhir() for i in self.issues] or [
            {"severity": "information", "code": "informational", "diagnostics": "No issues found"}
        ]
        return {"resourceType": "OperationOutcome", "issue": issues}


def single(code: str, diagnostics: str, expression: str | None = None, severity: Severity = "error") -> Outcome:
    """An outcome with one issue, for failures that are not about the message's content."""
    out = Outcome()
    out.add(severity, code, diagnostics, expression)
    return out
