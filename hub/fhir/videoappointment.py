"""What booking checks: FUT's `ehealth-videoappointment` profile through the hub's validator, then the
hub's own business rules, which the profile does not state.

The profile (cardinalities, slices, bindings, fixed codes, `responsible-1`, `app-1`,
`single-patient-appointment` as FUT writes it, and everything R4 core adds) is checked by `hub.fhir.validator`
from the official packages. The business rules here are named as the hub's (README, "Validation policy"):
- `single-patient-appointment` (the hub's reading): FUT's expression only counts references containing
  `/Patient`, so a relative `Patient/1` escapes it. The hub also applies the rule as its text says, to every
  form of reference (relative, absolute, contained, logical by CPR). FUT's own example `videoappointment01`
  names two patients and is therefore refused.
- `cpr`: dk-core's CPR pattern (read from dk-core's `cpr` constraint) holds for every CPR identifier a
  participant carries, also where the profile does not apply dk-core's identifier profile.
- `hub-period`: start must be before end.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from hub.core import cpr
from hub.core.outcome import Outcome
from hub.fhir.packages import PackageSet
from hub.fhir.references import contained_by_id, distinct_targets, identifiers_of, target_type
from hub.fhir.validator import Validator

PROFILE = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-videoappointment"
CPR_IDENTIFIER_PROFILE = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-cpr-identifier"


def _constraints(sd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for e in sd["snapshot"]["element"] for c in e.get("constraint", [])}


def parse_datetime(value: str) -> datetime | None:
    """A FHIR instant/dateTime with a time zone, or None."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else None


class VideoAppointmentRules:
    """Checks an Appointment that passed the structure check; build once, use for every request (thread-safe)."""

    def __init__(self, packages: PackageSet, validator: Validator) -> None:
        self.validator = validator
        sd, fut = packages.require(PROFILE, "StructureDefinition")
        self.constraints = _constraints(sd)
        cpr_sd, _ = packages.require(CPR_IDENTIFIER_PROFILE, "StructureDefinition", context=fut)  # FUT's dk-core
        cpr_rule = _constraints(cpr_sd)["cpr"]
        m = re.search(r"matches\('(.*)'\)", cpr_rule["expression"])
        if not m:
            raise LookupError("dk-core's cpr constraint no longer uses matches(): update the CPR rule")
        self.cpr_pattern = re.compile(m.group(1))
        self.cpr_human = cpr_rule["human"]
        self.context = fut

    def check(self, appt: dict[str, Any], out: Outcome | None = None) -> Outcome:
        """The profile's findings, then the business rules' (added to `out` when given)."""
        out = self.validator.check_profiles(appt, [PROFILE], self.context, out)
        contained = contained_by_id(appt)
        self._period(appt, out)
        self._patients(appt, contained, out)
        return out

    # --- the hub's business rules ------------------------------------------------------------------------

    def _period(self, appt: dict[str, Any], out: Outcome) -> None:
        start, end = (parse_datetime(appt[k]) if isinstance(appt.get(k), str) else None for k in ("start", "end"))
        if start and end and start >= end:
            out.error("invariant", "start must be before end", "Appointment.end", rule="hub-period")

    def _patients(self, appt: dict[str, Any], contained: dict[str, dict[str, Any]], out: Outcome) -> None:
        patients = []
        for i, p in enumerate(appt.get("participant", [])):
            actor = p.get("actor")
            if target_type(actor, contained) == "Patient":
                patients.append(actor)
            for ident in identifiers_of(actor, contained):
                self._cpr(ident, f"Appointment.participant[{i}].actor", out)
        said = any(i.rule == "single-patient-appointment" for i in out.issues)
        if distinct_targets(patients, contained) > 1 and not said:
            out.error("invariant", str(self.constraints["single-patient-appointment"]["human"]),
                      "Appointment.participant", rule="single-patient-appointment")

    def _cpr(self, ident: dict[str, Any], where: str, out: Outcome) -> None:
        if ident.get("system") != cpr.CPR_SYSTEM:
            return
        value = str(ident.get("value", ""))
        if not self.cpr_pattern.match(value):
            out.error("value", f"{self.cpr_human}: {cpr.mask(value)} is not a valid CPR number", where, rule="cpr")
