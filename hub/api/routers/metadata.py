"""`GET /fhir/metadata`: the CapabilityStatement of what the hub supports today."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response

from hub import __version__
from hub.api.deps import fhir_response, services
from hub.fhir.videoappointment import PROFILE
from hub.wiring import Services

router = APIRouter(prefix="/fhir", tags=["metadata"])


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request, svc: Services = Depends(services)) -> Response:
    cs = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).date().isoformat(),
        "kind": "instance",
        "software": {"name": "hub", "version": __version__},
        "implementation": {"description": "Interoperability hub: FHIR, MedCom, HL7 v2, VDX, SF1470"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "patchFormat": ["application/json-patch+json"],
        "implementationGuide": [f"{name}|{version}" for name, version in svc.packages.packages
                                if name != "hl7.fhir.r4.core"],
        "rest": [{
            "mode": "server",
            "resource": [{
                "type": "Appointment",
                "supportedProfile": [PROFILE],
                "interaction": [{"code": c} for c in ("read", "create", "update", "patch", "search-type")],
                "versioning": "versioned-update",
                "conditionalCreate": True,
                "searchParam": [
                    {"name": "patient", "type": "reference"},
                    {"name": "date", "type": "date"},
                    {"name": "status", "type": "token"},
                    {"name": "identifier", "type": "token"},
                ],
            }],
            "operation": [{"name": "validate",
                           "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}],
        }],
    }
    return fhir_response(request, cs)
