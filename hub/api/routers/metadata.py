"""`GET /fhir/metadata`: the CapabilityStatement of what the hub supports today."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request, Response

from hub import __version__
from hub.api.deps import base_url, fhir_response, services
from hub.api.security import NEEDS
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
            "security": security(base_url(request, svc.settings)),
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


def security(base: str) -> dict[str, object]:
    """SMART on FHIR: the token endpoint (the oauth-uris extension, and `/.well-known/smart-configuration`), and
    the scope each endpoint needs (`hub.api.security`)."""
    needs = "; ".join(f"{method} {path}: {scope}" for (method, path), scope in NEEDS.items())
    return {
        "cors": False,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}]}],
        "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                       "extension": [{"url": "token", "valueUri": f"{base}/auth/token"}]}],
        "description": "OAuth2 bearer tokens (JWT): client credentials at /auth/token (client_secret_basic or "
                       "private_key_jwt), or a configured issuer's. SMART v2 system scopes; the hub's named scopes "
                       f"for operations and messaging. What each endpoint needs: {needs}.",
    }
