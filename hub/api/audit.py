"""The audit trail of the REST edge: one event per access to the FHIR API, the MedCom endpoints and the token
endpoint — successful, refused (401, 403) or failed — written to `hub.store.audit`, and `GET /fhir/AuditEvent`
to read an organisation's own as FHIR R4 AuditEvents (IHE Basic Audit Log Patterns as the model: type `rest`,
the RESTful interaction as subtype, the client as the requesting agent with its network address, the resource and
the patient as entities: the patient named by a search, or whose appointment was read).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.types import Scope

from hub.api.access import masked_target

AUDITED = ("/fhir/", "/medcom/", "/auth/token")
_SUBTYPES = {"POST": ("create", "C"), "PUT": ("update", "U"), "PATCH": ("patch", "U"), "DELETE": ("delete", "D")}


def _what(method: str, route: str) -> tuple[str, str, str]:
    """(kind, subtype, action) of a request by its route template."""
    if route == "/auth/token":
        return "token", "token", "E"
    if route.startswith("/medcom/") or route.endswith("$process-message"):
        return "messaging", route.rsplit("/", 1)[-1], "C"
    last = route.rsplit("/", 1)[-1]
    if last.startswith("$"):
        return "operation", last, "R" if method == "GET" else "E"
    if method == "GET":
        return ("rest", "read", "R") if last.startswith("{") else ("rest", "search-type", "E")
    subtype, action = _SUBTYPES.get(method, ("operation", "E"))
    return "rest", subtype, action


def event(scope: Scope, status: int, location: str | None) -> dict[str, Any] | None:
    """The event a request makes, or None for what is not audited (health, metrics, the CapabilityStatement)."""
    path: str = scope.get("path", "")
    if not path.startswith(AUDITED) or path == "/fhir/metadata":
        return None
    method: str = scope.get("method", "")
    route = getattr(scope.get("route"), "path", path)
    state = scope.get("state", {})
    principal = state.get("principal")
    client, organisation = (principal.client_id, principal.organisation) if principal else state.get(
        "audit_client", (None, None))
    kind, subtype, action = _what(method, route)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    patient = state.get("audit_patient") or next(
        (v[0] for k, v in query.items() if k in ("patient:identifier", "patient") and "|" in v[0]), None)
    entity = None
    if location:
        parts = urlsplit(location).path.split("/")
        entity = "/".join(parts[parts.index("fhir") + 1:][:2]) if "fhir" in parts else None
    elif "{" in route:
        entity = "/".join(path.split("/")[2:4])
    return {"id": str(uuid.uuid4()), "recorded": datetime.now(UTC), "kind": kind, "subtype": subtype,
            "action": action, "outcome": "0" if status < 400 else "4" if status < 500 else "8", "client_id": client,
            "organisation": organisation, "address": (scope.get("client") or ("", 0))[0] or None, "method": method,
            "path": masked_target(scope)[:500], "entity": entity, "patient": patient,
            "correlation": state.get("correlation_id")}


def resource(row: Any, base: str) -> dict[str, Any]:
    """An event as an R4 AuditEvent."""
    rest = "http://terminology.hl7.org/CodeSystem/audit-event-type"
    subtype = ({"system": "http://hl7.org/fhir/restful-interaction", "code": row.subtype}
               if row.kind == "rest" else {"system": "urn:hub:audit-subtype", "code": row.subtype})
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110150",
                             "display": "Application"}]},
        "who": {"identifier": {"system": f"{base}/auth/clients", "value": row.client_id or "unknown"}},
        "requestor": True}
    if row.address:
        agent["network"] = {"address": row.address, "type": "2"}
    entities: list[dict[str, Any]] = []
    if row.entity:
        entities.append({"what": {"reference": row.entity}})
    if row.patient:
        system, _, value = row.patient.partition("|")
        entities.append({"what": {"identifier": {"system": system, "value": value}},
                         "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1"}})
    recorded = row.recorded if row.recorded.tzinfo else row.recorded.replace(tzinfo=UTC)
    return {"resourceType": "AuditEvent", "id": row.id,
            "type": {"system": rest, "code": "rest"}, "subtype": [subtype], "action": row.action,
            "recorded": recorded.isoformat(), "outcome": row.outcome,
            "outcomeDesc": f"{row.method} {row.path}", "agent": [agent],
            "source": {"observer": {"display": "hub"}}, **({"entity": entities} if entities else {})}
