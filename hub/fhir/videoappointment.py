"""The rules of FUT's `ehealth-videoappointment` profile that booking depends on.

Until the package-driven profile validator lands, these checks are explicit code, each named by the rule the
profile itself uses (a constraint key such as `responsible-1`, or an element id such as
`Appointment.appointmentType`), so they can be swapped for the validator one by one. What they check is read
from the official packages at start-up: cardinalities, bindings, fixed codes and the constraints' own wording
come from the StructureDefinition snapshot; value sets from the packages. Nothing is transcribed.

Written policies (README, "Validation policy"):
- `single-patient-appointment`: the profile's expression only counts references containing `/Patient`, so a
  relative `Patient/1` escapes it. The hub applies the rule as its text says, to every form of reference
  (relative, absolute, contained, logical by CPR). FUT's own example `videoappointment01` names two patients
  and is therefore refused.
- `responsible-1`: the responsible party matches a participant by literal reference or by a shared
  identifier, so logical references are judged too.
- `hub-period`: start must be before end (a business rule the profile does not state).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.core import cpr
from hub.core.outcome import Outcome
from hub.fhir.packages import PackageSet, Terminology
from hub.fhir.references import contained_by_id, distinct_targets, identifiers_of, same_target, target_type

PROFILE = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-videoappointment"
CPR_IDENTIFIER_PROFILE = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-cpr-identifier"


@dataclass(frozen=True, slots=True)
class _Element:
    id: str
    min: int
    max: str
    valueset: str | None
    strength: str | None
    fixed_code: str | None
    profile: str | None


def _elements(sd: dict[str, Any]) -> dict[str, _Element]:
    out = {}
    for e in sd["snapshot"]["element"]:
        binding = e.get("binding", {})
        types = e.get("type") or [{}]
        out[e["id"]] = _Element(
            e["id"],
            int(e.get("min", 0)),
            str(e.get("max", "*")),
            binding.get("valueSet"),
            binding.get("strength"),
            e.get("fixedCode"),
            (types[0].get("profile") or [None])[0],
        )
    return out


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
    """Checks an Appointment dict against the video-appointment rules; build once, use for every request."""

    def __init__(self, packages: PackageSet) -> None:
        self.terminology = Terminology(packages)
        sd, fut = packages.require(PROFILE, "StructureDefinition")
        self.el = _elements(sd)
        self.constraints = _constraints(sd)
        cpr_sd, _ = packages.require(CPR_IDENTIFIER_PROFILE, "StructureDefinition", context=fut)  # FUT's dk-core
        cpr_rule = _constraints(cpr_sd)["cpr"]
        m = re.search(r"matches\('(.*)'\)", cpr_rule["expression"])
        if not m:
            raise LookupError("dk-core's cpr constraint no longer uses matches(): update the CPR rule")
        self.cpr_pattern = re.compile(m.group(1))
        self.cpr_human = cpr_rule["human"]
        self.extension_url = {
            eid.split(":", 1)[1]: e.profile
            for eid, e in self.el.items()
            if eid.startswith("Appointment.extension:") and "." not in eid.split(":", 1)[1] and e.profile
        }
        # Fail at start-up, not on the first request, if a bound value set cannot be read.
        for e in self.el.values():
            if e.strength == "required" and e.valueset and e.id.count(".") <= 2:
                self.terminology.codes(e.valueset)

    def human(self, key: str) -> str:
        return str(self.constraints[key]["human"])

    def check(self, appt: dict[str, Any]) -> Outcome:
        out = Outcome()
        contained = contained_by_id(appt)
        self._period(appt, out)
        self._codes(appt, out)
        self._service_type(appt, out)
        self._responsible(appt, contained, out)
        self._participants(appt, contained, out)
        return out

    # --- rules -------------------------------------------------------------------------------------------

    def _period(self, appt: dict[str, Any], out: Outcome) -> None:
        times = {}
        for name in ("start", "end"):
            eid = f"Appointment.{name}"
            if self.el[eid].min and not appt.get(name):
                out.error("required", f"{name} is required for a video appointment", eid, rule=eid)
            elif appt.get(name):
                times[name] = parse_datetime(appt[name])
                if times[name] is None:
                    out.error("value", f"{name} must be an instant with a time zone", eid, rule=eid)
        start, end = times.get("start"), times.get("end")
        if start and end and start >= end:
            out.error("invariant", "start must be before end", "Appointment.end", rule="hub-period")

    def _in_valueset(self, coding: dict[str, Any], valueset: str) -> bool:
        return (coding.get("system"), coding.get("code")) in self.terminology.codes(valueset)

    def _bound(self, eid: str, concept: dict[str, Any] | None, where: str, out: Outcome) -> None:
        vs = self.el[eid].valueset
        if not vs or concept is None:
            return
        codings = concept.get("coding", [])
        if not any(self._in_valueset(c, vs) for c in codings):
            shown = ", ".join(f"{c.get('system')}#{c.get('code')}" for c in codings) or "no coding"
            out.error("code-invalid", f"{shown} is not in the required value set {vs}", where, rule=eid)

    def _codes(self, appt: dict[str, Any], out: Outcome) -> None:
        eid = "Appointment.appointmentType"
        if appt.get("appointmentType") is None:
            if self.el[eid].min:
                out.error("required", "appointmentType is required", eid, rule=eid)
        else:
            self._bound(eid, appt["appointmentType"], eid, out)
        reasons = appt.get("reasonCode", [])
        if self.el["Appointment.reasonCode"].max == "1" and len(reasons) > 1:
            out.error("structure", "At most one reasonCode", "Appointment.reasonCode", rule="Appointment.reasonCode")
        for i, reason in enumerate(reasons):
            self._bound("Appointment.reasonCode", reason, f"Appointment.reasonCode[{i}]", out)
        status_vs = self.el["Appointment.status"].valueset
        if status_vs and ("http://hl7.org/fhir/appointmentstatus", appt.get("status")) not in (
            self.terminology.codes(status_vs)
        ):
            out.error("code-invalid", f"Unknown status '{appt.get('status')}'", "Appointment.status",
                      rule="Appointment.status")

    def _service_type(self, appt: dict[str, Any], out: Outcome) -> None:
        eid = "Appointment.serviceType:appointmentType"
        coding_el = self.el[f"{eid}.coding"]
        fixed = self.el[f"{eid}.coding.code"].fixed_code
        matches = [
            st
            for st in appt.get("serviceType", [])
            if any(c.get("code") == fixed for c in st.get("coding", []))
        ]
        if len(matches) < self.el[eid].min:
            out.error("required", f"A serviceType with code '{fixed}' is required", "Appointment.serviceType",
                      rule=eid)
        elif len(matches) > 1 and self.el[eid].max == "1":
            out.error("structure", f"Only one serviceType with code '{fixed}' is allowed",
                      "Appointment.serviceType", rule=eid)
        for st in matches:
            for c in st.get("coding", []):
                if c.get("code") == fixed and coding_el.valueset and not self._in_valueset(c, coding_el.valueset):
                    out.error("code-invalid", f"serviceType code '{fixed}' must use system of {coding_el.valueset}",
                              "Appointment.serviceType", rule=f"{eid}.coding")

    def _responsible(self, appt: dict[str, Any], contained: dict[str, dict[str, Any]], out: Outcome) -> None:
        eid = "Appointment.extension:responsible"
        url = self.extension_url["responsible"]
        found = [e for e in appt.get("extension", []) if e.get("url") == url]
        if len(found) < self.el[eid].min:
            out.error("required", "The responsible party (ehealth-responsible) is required", "Appointment.extension",
                      rule=eid)
            return
        if len(found) > 1:
            out.error("structure", "Only one responsible party is allowed", "Appointment.extension", rule=eid)
        responsible = found[0].get("valueReference")
        if not isinstance(responsible, dict):
            out.error("required", "ehealth-responsible needs a valueReference", "Appointment.extension", rule=eid)
            return
        careteam_url = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-ext-careteam"
        candidates = []
        for p in appt.get("participant", []):
            candidates.append(p.get("actor"))
            candidates += [e.get("valueReference") for e in p.get("extension", []) if e.get("url") == careteam_url]
        if not any(same_target(responsible, c, contained) for c in candidates if c):
            out.error("invariant", self.human("responsible-1"), "Appointment", rule="responsible-1")

    def _participants(self, appt: dict[str, Any], contained: dict[str, dict[str, Any]], out: Outcome) -> None:
        participants = appt.get("participant", [])
        if len(participants) < self.el["Appointment.participant"].min:
            out.error("required", "At least one participant is required", "Appointment.participant",
                      rule="Appointment.participant")
        status_vs = self.el["Appointment.participant.status"].valueset
        patients = []
        for i, p in enumerate(participants):
            where = f"Appointment.participant[{i}]"
            if not p.get("type") and not p.get("actor"):
                out.error("invariant", self.human("app-1"), where, rule="app-1")
            if status_vs and ("http://hl7.org/fhir/participationstatus", p.get("status")) not in (
                self.terminology.codes(status_vs)
            ):
                out.error("code-invalid", f"Unknown participant status '{p.get('status')}'", f"{where}.status",
                          rule="Appointment.participant.status")
            actor = p.get("actor")
            if target_type(actor, contained) == "Patient":
                patients.append(actor)
            for ident in identifiers_of(actor, contained):
                self._cpr(ident, f"{where}.actor", out)
        if distinct_targets(patients, contained) > 1:
            out.error("invariant", self.human("single-patient-appointment"), "Appointment.participant",
                      rule="single-patient-appointment")

    def _cpr(self, ident: dict[str, Any], where: str, out: Outcome) -> None:
        if ident.get("system") != cpr.CPR_SYSTEM:
            return
        value = str(ident.get("value", ""))
        if not self.cpr_pattern.match(value):
            out.error("value", f"{self.cpr_human}: {cpr.mask(value)} is not a valid CPR number", where, rule="cpr")
