"""Every endpoint but the public ones needs a bearer token, and the scope this table names for it.

Deny by default: a route the table does not name is refused (403) even with a token, so a new endpoint is closed
until it is given its scope here (and a test checks every route has one). No token, or one the verifier refuses:
`401` with an OperationOutcome and `WWW-Authenticate: Bearer`; a token without the scope: `403` naming it.
Tokens already verified are remembered until they expire, so a client reusing its token pays for one signature
check, not one a request.
"""

from __future__ import annotations

import threading
import time

from fastapi import Request

from hub.auth import scopes
from hub.auth.tokens import Principal, Refused, Verifier
from hub.core.errors import HubError
from hub.core.outcome import single

# (method, route) → the scope it needs. SMART v2 resource scopes for the FHIR REST interactions, the hub's named
# scopes (hub.auth.scopes) for operations, messaging and operations' endpoints.
NEEDS: dict[tuple[str, str], str] = {
    ("POST", "/fhir/Appointment"): "system/Appointment.c",
    ("GET", "/fhir/Appointment/{appointment_id}"): "system/Appointment.r",
    ("PUT", "/fhir/Appointment/{appointment_id}"): "system/Appointment.u",
    ("PATCH", "/fhir/Appointment/{appointment_id}"): "system/Appointment.u",
    ("GET", "/fhir/Appointment"): "system/Appointment.s",
    ("GET", "/fhir/Appointment/{appointment_id}/$booking-confirmation"): "hub/booking-confirmation",
    ("GET", "/fhir/Encounter"): "system/Encounter.s",
    ("GET", "/fhir/Encounter/{encounter_id}"): "system/Encounter.r",
    ("POST", "/fhir/$process-message"): "hub/process-message",
    ("POST", "/fhir/$validate"): "hub/validate",
    ("POST", "/fhir/{resource_type}/$validate"): "hub/validate",
    ("POST", "/medcom/oioxml"): "hub/oioxml",
    ("POST", "/medcom/vans"): "hub/vans",
    ("GET", "/metrics"): "hub/metrics",
    ("GET", "/fhir/AuditEvent"): "system/AuditEvent.s",
}


class Unauthorized(HubError):
    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(single("login", f"A valid bearer token is required: {reason}"), 401)
        self.headers = {"WWW-Authenticate": f'Bearer realm="hub", error="invalid_token", '
                                            f'error_description="{reason}"'}


class Forbidden(HubError):
    status = 403

    def __init__(self, need: str) -> None:
        super().__init__(single("forbidden", f"The token does not grant the scope this needs: {need}"), 403)
        self.headers = {"WWW-Authenticate": f'Bearer realm="hub", error="insufficient_scope", scope="{need}"'}


class Gate:
    """Checks a request's token and scope; one per app."""

    def __init__(self, verifier: Verifier | None = None) -> None:
        self.verifier = verifier or Verifier([])  # the app's, set at start-up
        self._known: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def principal(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("no bearer token")
        now = time.time()
        with self._lock:
            known = self._known.get(token)
        if known is not None and known[1] > now:
            return known[0]
        try:
            found = self.verifier.verify(token)
        except Refused as exc:
            raise Unauthorized(str(exc)) from None
        with self._lock:
            if len(self._known) > 10_000:
                self._known = {t: v for t, v in self._known.items() if v[1] > now}
            self._known[token] = (found, found.expires_at)
        return found

    async def __call__(self, request: Request) -> Principal:
        """The dependency every protected router has: the principal, on `request.state.principal` too."""
        principal = self.principal(request.headers.get("authorization"))
        request.state.principal = principal  # known from here on: a refusal below is audited as this client's
        route = request.scope.get("route")
        need = NEEDS.get((request.method, getattr(route, "path", "")))
        if need is None or not scopes.permits(principal.grants, need):
            raise Forbidden(need or f"(none defined for {request.method} {getattr(route, 'path', '?')})")
        if not principal.organisation:  # what a client may see is its organisation's: without one, nothing
            raise Forbidden("a token that names the client's organisation")
        return principal

