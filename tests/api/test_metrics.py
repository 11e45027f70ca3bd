"""`/metrics` is Prometheus text and counts what was sent: requests by route, messages by channel and outcome,
VDX calls, the outbox's rows and the circuits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from hub.delivery.outbox import outbox_row
from hub.store.statements import INSERT_OUTBOX
from tests.appointments import video_appointment
from tests.flows.test_appointment import FHIR, book


def _samples(hub: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = hub.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def _get(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_was_sent(hub: Any) -> None:
    before = _samples(hub)  # the counters are the process's: other tests' hubs counted too
    for _ in range(2):
        assert book(hub, video_appointment()).status_code == 201
    bad = video_appointment(patient={"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "3213804321"}})
    assert hub.client.post("/fhir/Appointment", json=bad, headers=FHIR).status_code == 422
    after = _samples(hub)

    def grew(name: str, **labels: str) -> float:
        return _get(after, name, **labels) - _get(before, name, **labels)

    route = {"method": "POST", "route": "/fhir/Appointment"}
    assert grew("hub_http_request_duration_seconds_count", **route, status="201") == 2
    assert grew("hub_http_request_duration_seconds_count", **route, status="422") == 1
    assert grew("hub_messages_total", channel="fhir-rest", direction="in", outcome="accepted") == 2
    assert grew("hub_messages_total", channel="fhir-rest", direction="in", outcome="rejected") == 1
    assert grew("hub_downstream_call_duration_seconds_count", downstream="VDX", outcome="ok") >= 2
    assert _get(after, "hub_circuit_state", downstream="vdx") == 0  # closed


def test_metrics_show_the_outbox_as_it_is(hub: Any) -> None:
    engine = hub.server.config.app.state.services.flow.engine
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as conn:  # rows of a topic nothing here delivers: they stay as written
        conn.execute(INSERT_OUTBOX, [outbox_row("test.topic", "k1", {}, an_hour_ago),
                                     outbox_row("test.topic", "k2", {}, datetime.now(UTC) + timedelta(hours=1))])
    samples = _samples(hub)
    assert _get(samples, "hub_outbox_rows", topic="test.topic", status="pending") == 2
    assert 3500 < _get(samples, "hub_outbox_oldest_due_seconds", topic="test.topic") < 7200  # the due one's age
