"""What the case index needs to know of a booked meeting, read from the stored Appointment (pure).

A meeting is indexed for its citizen only: an appointment whose patient has no CPR number is not indexed. The
course of care it belongs to is the Appointment's `supportingInformation` (FUT's EpisodeOfCare or CarePlan),
else its `basedOn` (a ServiceRequest); without either, the hub's rule is one case per citizen and KLE emne. The
service, which gives the case its KLE emne, is a coding of the hub's `urn:hub:legal-basis` system in FUT's
`ehealth-legalBasis` extension (FUT's own codes, `healthcare-act` and `service-act`, are too coarse to choose an
emne by), else the configured default.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub.core.cpr import CPR_SYSTEM, InvalidCpr, normalise
from hub.sdi.kle import LEGAL_BASIS

LEGAL_BASIS_EXTENSION = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-legalBasis"
RESPONSIBLE_ORGANIZATION = "http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-responsible-organization"


@dataclass(frozen=True)
class MeetingFacts:
    appointment: str
    status: str  # the FHIR Appointment.status
    start: datetime
    end: datetime
    cpr: str
    course: str | None  # the course of care's reference, when the appointment names one
    legal_basis: str | None  # a urn:hub:legal-basis code
    responsible_organization: str | None  # the FHIR reference of the organisation responsible

    @property
    def ordering_key(self) -> str:
        """The outbox key that keeps this meeting's index updates in order behind its case's others. Without a
        course the case is the citizen's per emne, so the citizen is the key: coarser, never out of order. Hashed,
        so no CPR number sits in the outbox."""
        return "sdi:" + hashlib.sha256((self.course or f"cpr:{self.cpr}").encode()).hexdigest()[:32]


def meeting_facts(appointment_id: str, resource: dict[str, Any], patient_identifier: str | None) -> MeetingFacts | None:
    """The facts of a stored appointment, or None when it has no citizen to index it for.

    `patient_identifier` is the stored `system|value` of the patient (hub.store.models.Appointment)."""
    system, _, value = (patient_identifier or "").partition("|")
    if system != CPR_SYSTEM:
        return None
    try:
        cpr = normalise(value)
    except InvalidCpr:
        return None
    course = next((r.get("reference") for key in ("supportingInformation", "basedOn")
                   for r in resource.get(key) or [] if r.get("reference")), None)
    return MeetingFacts(appointment_id, str(resource.get("status")), datetime.fromisoformat(resource["start"]),
                        datetime.fromisoformat(resource["end"]), cpr, course, _legal_basis(resource),
                        _extension_reference(resource, RESPONSIBLE_ORGANIZATION))


def _legal_basis(resource: dict[str, Any]) -> str | None:
    for extension in resource.get("extension") or []:
        if extension.get("url") == LEGAL_BASIS_EXTENSION:
            for coding in (extension.get("valueCodeableConcept") or {}).get("coding") or []:
                if coding.get("system") == LEGAL_BASIS and coding.get("code"):
                    return str(coding["code"])
    return None


def _extension_reference(resource: dict[str, Any], url: str) -> str | None:
    found = next((e.get("valueReference") or {} for e in resource.get("extension") or [] if e.get("url") == url), {})
    return found.get("reference")
