"""The FastAPI application: the routers, the error answers, and the services `hub.wiring` builds at start-up.

Every error leaves as a FHIR OperationOutcome with a 4xx (or 502/503 when a service the hub depends on is
down); an unexpected exception is logged and answered with an OperationOutcome too, never a bare 500 page.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.api import audit, auth, balance, kept, metrics
from hub.api.access import AccessLog, correlation_id
from hub.api.balance import ConnectionBalancer
from hub.api.bulkhead import Bulkhead
from hub.api.deps import BodyTooLarge, outcome_response
from hub.api.health import readiness
from hub.api.routers import (
    appointment,
    booking_confirmation,
    encounter,
    messaging,
    metadata,
    oioxml,
    validate,
    vans,
)
from hub.api.routers import (
    audit as audit_events,
)
from hub.api.security import Gate
from hub.core.config import Settings
from hub.core.errors import HubError, UpstreamError
from hub.core.outcome import single
from hub.store.audit import AuditTrail
from hub.wiring import build_services, start_background

log = logging.getLogger("hub.api")
RETRY_AFTER_SECONDS = 30  # a 503's `Retry-After`: VDX or the case index did not answer


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    gate = Gate()  # its verifier set at start-up, with the services

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = build_services(settings)
        gate.verifier = app.state.services.auth.verifier
        # Few threads beat many: the flow is short CPU bursts between I/O waits, and under the GIL a large pool
        # spends its time handing the lock around.
        to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        app.state.vdx_bulkhead = Bulkhead(settings.vdx_concurrency)  # what may call VDX runs on threads of its own
        # What start-up loaded (packages, models, rules: some 140,000 objects) lives as long as the process.
        # Freezing it keeps it out of the collector's sight: a full collection over it takes ~130 ms here, a
        # pause every request in flight would feel.
        gc.collect()
        gc.freeze()
        app.state.background = background = start_background(settings, app.state.services)
        app.state.audit = AuditTrail(app.state.services.flow.engine)
        yield
        background.stop()
        app.state.audit.stop()

    app = FastAPI(title="hub", version="0.1.0", lifespan=lifespan,
                  description="FHIR R4 video appointments booked in VDX; MedCom FHIR messages, OIOXML letters "
                              "and VANS envelopes; HL7 v2 over MLLP beside it; the citizens' cases kept in the "
                              "SF1470 case index.")
    if balance.worker_slot is not None:
        app.add_middleware(ConnectionBalancer, counts=balance.worker_slot[0], index=balance.worker_slot[1])
    def record(scope: Any, status: int, location: str | None) -> None:  # each access, once answered
        trail: AuditTrail | None = getattr(app.state, "audit", None)
        found = audit.event(scope, status, location) if trail is not None else None
        if trail is not None and found is not None:
            trail.record(found)

    app.add_middleware(AccessLog, audit=record)  # outermost: it sees every answer, the balancer's and errors' too
    app.include_router(metadata.router)  # public, as are the token endpoint, its keys and discovery
    app.include_router(auth.router)
    protected = [Depends(gate)]  # a bearer token and the route's scope (hub.api.security)
    app.include_router(validate.router, dependencies=protected)
    app.include_router(booking_confirmation.router, dependencies=protected)  # before appointment: more specific
    app.include_router(appointment.router, dependencies=protected)
    app.include_router(messaging.router, dependencies=protected)
    app.include_router(oioxml.router, dependencies=protected)
    app.include_router(vans.router, dependencies=protected)
    app.include_router(encounter.router, dependencies=protected)
    app.include_router(metrics.router, dependencies=protected)
    app.include_router(audit_events.router, dependencies=protected)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> Response:
        await run_in_threadpool(kept.keep, request.app.state.services, request, exc.head, exc.outcome, 413, cut=True)
        return outcome_response(request, exc.outcome, 413)

    @app.exception_handler(HubError)
    async def hub_error(request: Request, exc: HubError) -> Response:
        response = outcome_response(request, exc.outcome, exc.status)
        response.headers.update(getattr(exc, "headers", None) or {})  # 401/403: WWW-Authenticate
        if isinstance(exc, UpstreamError) and exc.status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return outcome_response(request, single("invalid", str(exc)), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return outcome_response(request, single(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        # One log line and the answer share an id, so an operator finds the one from the other; the connection is
        # closed, as the server drops it after a 500 anyway (a client's next request must not meet a reset).
        correlation = correlation_id(request.scope)
        log.exception("unexpected error %s on %s %s", correlation, request.method, request.url.path)
        outcome = single("exception", f"The hub failed to process the request; it has been logged as {correlation}")
        raw = getattr(request.state, "raw_body", None)
        if raw is not None:
            await run_in_threadpool(kept.keep, request.app.state.services, request, raw, outcome, 500, cut=False)
        response = outcome_response(request, outcome, 500)
        # sent past the middleware (Starlette answers it outermost), so the id is put here too
        response.headers.update({"Connection": "close", "X-Correlation-Id": correlation})
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz(request: Request) -> Response:
        """Ready: every part the API depends on is there (`hub.api.health`); 503 naming what is not."""
        services = request.app.state.services
        circuits = request.app.state.background.circuits()
        ready, results = readiness(services.settings, services.sessions, circuits)
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": results, "circuits": circuits},
                            status_code=200 if ready else 503)

    return app
