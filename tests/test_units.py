"""Pure parts: CPR numbers, log masking, the standards store, FHIR search values, references."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.core import cpr, standards
from hub.core.logging import JsonFormatter
from hub.fhir.references import distinct_targets
from hub.fhir.search import parse_date
from tests.conftest import SHARED


@pytest.mark.parametrize("value, born", [
    ("0101801234", date(1980, 1, 1)),   # 7th digit 1 → 1900s
    ("010110-4321", date(2010, 1, 1)),  # 4 and year ≤ 36 → 2000s
    ("010150-4321", date(1950, 1, 1)),  # 4 and year > 36 → 1900s
    ("010157-5321", date(2057, 1, 1)),  # 5–8 and year ≤ 57 → 2000s
    ("010158-5321", date(1858, 1, 1)),  # 5–8 and year > 57 → 1800s
    ("290200-4000", date(2000, 2, 29)),
])
def test_cpr_birth_date_century(value: str, born: date) -> None:
    assert cpr.birth_date(value) == born


def test_cpr_age_on_birthday_edges() -> None:
    assert cpr.age_on("0101091234", date(2026, 12, 31)) == 117  # 7th digit 1: born 1909
    assert cpr.age_on("010108-4321", date(2025, 12, 31)) == 17
    assert cpr.age_on("010108-4321", date(2026, 1, 1)) == 18


@pytest.mark.parametrize("bad", ["3213801234", "12345", "0101801234x", "290201-1234"])
def test_cpr_invalid(bad: str) -> None:
    with pytest.raises(cpr.InvalidCpr):
        cpr.normalise(bad)


def test_cpr_masking_in_text_and_logs() -> None:
    assert cpr.mask("0101801234") == "010180-****"
    assert cpr.mask_text("patient 0101801234 and 020290-4321") == "patient 010180-**** and 020290-****"
    record = logging.LogRecord("t", logging.INFO, "f", 1, "booking for %s", ("0101801234",), None)
    record.cpr = "010180-1234"
    line = JsonFormatter().format(record)
    assert "0101801234" not in line and "1234" not in line
    assert json.loads(line)["message"] == "booking for 010180-****"


def test_sync_checks_checksums(tmp_path: Path) -> None:
    [vdx] = [s for s in standards.load_manifest() if s.kind == "openapi"]
    store = tmp_path / "store"
    standards.sync(SHARED, store, [vdx])
    assert standards.file_path(store, vdx.id).read_bytes() == (SHARED / vdx.path).read_bytes()
    forged = standards.Standard(vdx.id, vdx.version, vdx.kind, vdx.path, "0" * 64, vdx.origin)
    with pytest.raises(standards.SyncError, match="does not match"):
        standards.sync(SHARED, tmp_path / "other", [forged])
    with pytest.raises(standards.SyncError, match="not found"):
        standards.sync(tmp_path / "nowhere", tmp_path / "third", [vdx])


def test_sync_unpacks_fhir_packages_with_every_pinned_version(data_root: Path) -> None:
    dirs = standards.package_dirs(data_root / "standards")
    loaded = {(m["name"], m["version"]) for m in (json.loads((d / "package.json").read_text()) for d in dirs)}
    assert {("hl7.fhir.r4.core", "4.0.1"), ("dk.ehealth.sundhed.fhir.ig.core", "8.0.0"),
            ("medcom.fhir.dk.carecommunication", "5.0.2"), ("medcom.fhir.dk.acknowledgement", "2.0.3"),
            ("medcom.fhir.dk.hospitalnotification", "3.0.2"), ("medcom.fhir.dk.messagedefinitions", "1.0.0")} <= loaded
    # every MedCom / HL7 Denmark version a loaded package pins is loaded too
    for d in dirs:
        pins = json.loads((d / "package.json").read_text()).get("dependencies", {})
        for name, version in pins.items():
            if name.startswith(("medcom.", "hl7.fhir.dk.")):
                assert (name, version) in loaded, (d, name, version)


def test_canonicals_resolve_by_version_context_or_newest(packages: object) -> None:
    from hub.fhir.packages import PackageSet

    assert isinstance(packages, PackageSet)
    cpr = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-cpr-identifier"
    assert packages.locate(cpr)[1] == "hl7.fhir.dk.core#3.7.0"  # type: ignore[index]  # newest
    assert packages.locate(cpr, context="dk.ehealth.sundhed.fhir.ig.core#8.0.0")[1] == "hl7.fhir.dk.core#1.1.0"  # type: ignore[index]
    assert packages.locate(cpr + "|2.0.0")[1] == "hl7.fhir.dk.core#2.0.0"  # type: ignore[index]
    header = "http://medcomfhir.dk/ig/messaging/StructureDefinition/medcom-messaging-messageHeader"
    assert packages.locate(header, context="medcom.fhir.dk.hospitalnotification#3.0.2")[1] == \
        "medcom.fhir.dk.messaging#2.1.0"  # type: ignore[index]  # what HospitalNotification 3.0.2 pins
    assert "dk.ehealth.sundhed.fhir.ig.core#8.0.0" in packages.closure("dk.ehealth.sundhed.fhir.ig.core#8.0.0")
    assert "hl7.fhir.uv.sdc#2.7.0" in packages.missing  # FUT's absent dependency, listed, not fatal


def test_supplements_do_not_hide_core_code_systems(packages: object) -> None:
    cs = packages.get("http://hl7.org/fhir/address-use", "CodeSystem")  # type: ignore[attr-defined]
    assert cs["content"] == "complete" and {c["code"] for c in cs["concept"]} >= {"home", "work", "temp"}


def test_date_search_values_are_danish_days() -> None:
    b = parse_date("2027-03-12")
    assert (b.prefix, b.low, b.high) == ("eq", datetime(2027, 3, 11, 23, tzinfo=UTC),
                                         datetime(2027, 3, 12, 23, tzinfo=UTC))
    assert parse_date("ge2027-07").low == datetime(2027, 6, 30, 22, tzinfo=UTC)  # summer time
    assert parse_date("lt2027-03-12T10:00:00Z").low == datetime(2027, 3, 12, 10, tzinfo=UTC)


def test_same_patient_in_different_reference_forms_counts_once() -> None:
    contained = {"p": {"resourceType": "Patient", "id": "p",
                       "identifier": [{"system": "urn:oid:1.2.208.176.1.2", "value": "0101801234"}]}}
    refs = [{"reference": "#p"}, {"identifier": {"system": "urn:oid:1.2.208.176.1.2", "value": "0101801234"}},
            {"reference": "https://x.dk/fhir/Patient/7"}, {"reference": "Patient/7"}]
    assert distinct_targets(refs, contained) == 2


def test_housekeeping_runs_on_a_timer_and_outlives_a_failing_round() -> None:
    import threading

    from hub.flows.housekeeping import HousekeepingFlow

    rounds: list[int] = []
    third = threading.Event()

    def task() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("first round fails")
        if len(rounds) == 3:
            third.set()

    keeper = HousekeepingFlow(task, interval=0.01)
    keeper.start()
    assert third.wait(5)
    keeper.stop()
    count = len(rounds)
    assert count >= 3
    threading.Event().wait(0.05)
    assert len(rounds) == count  # stopped means stopped


def test_connection_balancer_moves_connections_only_away_from_a_busier_worker() -> None:
    import asyncio

    from hub.api.balance import ConnectionBalancer

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def request(mw: ConnectionBalancer, port: int) -> list[tuple[bytes, bytes]]:
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {"type": "http", "http_version": "1.1", "client": ("127.0.0.1", port)}
        await mw(scope, None, send)  # type: ignore[arg-type]
        return list(sent[0]["headers"])

    counts = [0, 4]  # worker 1 serves four connections
    mw = ConnectionBalancer(app, counts, 0)

    async def scenario() -> None:
        for port in range(5):  # five connections here against four there: even enough
            assert (b"connection", b"close") not in await request(mw, port)
        assert counts[0] == 5
        # Six and more against four: an answer asks its client to reconnect, one per interval, not a stampede.
        closing = [(b"connection", b"close") in await request(mw, port) for port in range(5, 9)]
        assert closing == [True, False, False, False]
        assert counts[0] == 8  # nine seen, the one asked to reconnect no longer counts here

    asyncio.run(scenario())
