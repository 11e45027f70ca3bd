"""Errors the flows raise; each carries the Outcome the edge turns into a standard answer."""

from __future__ import annotations

from hub.core.outcome import Outcome, single


class HubError(Exception):
    """A request the hub cannot carry out; `status` is the HTTP status the REST edge answers with."""

    status = 400

    def __init__(self, outcome: Outcome | str, status: int | None = None, code: str = "processing") -> None:
        self.outcome = outcome if isinstance(outcome, Outcome) else single(code, outcome)
        if status is not None:
            self.status = status
        super().__init__("; ".join(i.diagnostics for i in self.outcome.issues))


class InvalidInput(HubError):
    """The message could not be parsed or breaks a rule (4xx)."""

    status = 400


class NotFound(HubError):
    status = 404

    def __init__(self, what: str) -> None:
        super().__init__(single("not-found", f"{what} not found"), 404)


class Conflict(HubError):
    status = 409


class UpstreamError(HubError):
    """A service the hub depends on (VDX, case index) failed or refused; the request may be retried."""

    status = 502
