"""Meetings into the case index over real HTTP (issue 6): the hub books, answers at once, and its outbox takes
each change to the local index, signed with OIOIDWS and a token from the local STS; every request it sends is
checked against the contract's XSDs and the anvisning rules; the index away for a while gets every update once,
in order, when it is back; what cannot be indexed is dead with its reason."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine

from hub.api.server_thread import ServerThread, free_port
from hub.core.cpr import CPR_SYSTEM
from hub.delivery.worker import rows
from hub.sdi.contract import validation_outcome
from hub.sdi.local.app import LocalCredentials, create_local_app
from hub.sdi.local.service import CaseIndex
from hub.sdi.meeting import LEGAL_BASIS_EXTENSION
from hub.sdi.rules import NS
from tests.appointments import video_appointment

FHIR = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
CPR = "0101804321"  # fictitious
DI = "{urn:oio:sts:sagdok:dokumentindeks:6}"


class Recorder:
    """The index's app, keeping each request to it and the answer's body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[tuple[str, bytes, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)  # type: ignore[no-any-return]
        chunks: list[bytes] = []
        answer: list[bytes] = []

        async def receiving() -> Any:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receiving, sending)
        self.calls.append((scope["path"], b"".join(chunks), b"".join(answer)))

    def sdi(self) -> list[tuple[etree._Element, etree._Element]]:
        return [(etree.fromstring(request), etree.fromstring(answer)) for path, request, answer in self.calls
                if path == "/sdi"]


def appointment(source: str, course: str = "EpisodeOfCare/7", legal_basis: str | None = "sundhedsloven-140",
                **changes: Any) -> dict[str, Any]:
    appt = video_appointment(source_id=source, patient={"identifier": {"system": CPR_SYSTEM, "value": CPR}})
    appt["supportingInformation"] = [{"reference": course}]
    if legal_basis:
        appt["extension"].append({"url": LEGAL_BASIS_EXTENSION, "valueCodeableConcept": {"coding": [
            {"system": "http://ehealth.sundhed.dk/cs/jurisdiction", "code": "healthcare-act"},
            {"system": "urn:hub:legal-basis", "code": legal_basis}]}})
        # FUT's responsible-2: with a legal basis, both organisations
        appt["extension"] += [{"url": f"http://ehealth.sundhed.dk/fhir/StructureDefinition/ehealth-{kind}-organization",
                               "valueReference": {"reference": "Organization/7"}} for kind in ("responsible",
                                                                                             "performing")]
    return appt | changes


def settle(engine: Engine, count: int, timeout: float = 30.0) -> list[Any]:
    """The index's outbox rows once `count` of them are settled (delivered or dead)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(engine, topic="sdi.meeting", limit=None)
        if len(found) >= count and all(r.status in ("delivered", "dead") for r in found):
            return sorted(found, key=lambda r: r.id)
        time.sleep(0.1)
    raise AssertionError(f"the index rows did not settle: {[(r.id, r.status, r.last_error) for r in found]}")


def operations(recorder: Recorder) -> list[str]:
    return [etree.QName(request.find(f"{{{NS_SOAP}}}Body")[0]).localname for request, _ in recorder.sdi()]


NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


@pytest.fixture
def index_settings(tmp_path: Path) -> Callable[[str, LocalCredentials | None], dict[str, Any]]:
    def settings(url: str, credentials: LocalCredentials | None) -> dict[str, Any]:
        base = {"sdi_url": f"{url}/sdi", "sdi_local": True, "outbox_first_delay_seconds": 0.2,
                "outbox_max_delay_seconds": 0.5}
        if credentials is None:
            return base | {"sdi_security": "none"}
        folder = credentials.folder
        return base | {"sdi_security": "oioidws", "sdi_sts_url": f"{url}/sts",
                       "sdi_audience": "http://stoettesystemerne.dk/service/sagdokumentindeks/6",
                       "sdi_certificate": folder / "hub.cert.pem", "sdi_key": folder / "hub.key.pem",
                       "sdi_sts_certificate": folder / "sts.cert.pem",
                       "sdi_service_certificate": folder / "sdi.cert.pem"}
    return settings


@pytest.fixture
def signed_index(data_root: Path, tmp_path: Path) -> Iterator[tuple[ServerThread, CaseIndex, Recorder,
                                                                      LocalCredentials]]:
    credentials = LocalCredentials.in_folder(tmp_path / "sdi", "11111111")
    index = CaseIndex()
    recorder = Recorder(create_local_app(data_root / "standards", credentials, index))
    with ServerThread(recorder) as server:
        yield server, index, recorder, credentials


def test_meetings_reach_the_index_signed_and_valid(messaging_hub: Any, signed_index: Any, index_settings: Any,
                                                   data_root: Path) -> None:
    server, index, recorder, credentials = signed_index
    hub = messaging_hub([], **index_settings(server.url, credentials))
    first = hub.client.post("/fhir/Appointment", json=appointment("m1"), headers=FHIR)
    assert first.status_code == 201, first.text  # answered at once, whatever the index does
    second = hub.client.post("/fhir/Appointment", json=appointment("m2"), headers=FHIR).json()
    moved = copy.deepcopy(second)
    moved["start"], moved["end"] = "2031-03-12T09:00:00Z", "2031-03-12T09:30:00Z"
    assert hub.client.put(f"/fhir/Appointment/{second['id']}", json=moved, headers=FHIR).status_code == 200
    assert [r.status for r in settle(hub.engine, 3)] == ["delivered"] * 3

    assert operations(recorder) == ["ImporterSagDokumentIndeksInput", "ImporterSagDokumentIndeksInput",
                                    "OpdaterSagDokumentIndeksInput", "OpdaterSagDokumentIndeksInput"]
    for request, answer in recorder.sdi():
        assert request.find(f"{{{NS_SOAP}}}Header/{{*}}Security") is not None  # signed, with the STS's token
        assert validation_outcome(etree.tostring(request), data_root / "standards").ok
        assert [s.text for s in answer.iter(f"{{{NS['sd']}}}StatusKode")] == ["20"] * len(
            list(answer.iter(f"{{{NS['sd']}}}StatusKode")))
    assert [path for path, _, _ in recorder.calls].count("/sts") == 1  # the token is kept while it lasts

    (case,) = index.cases.values()
    assert len(case.xpath(".//sag:Journalpost", namespaces=NS)) == 2  # one case, both meetings on it
    titles = [t.text for d in index.documents.values() for t in d.iter(f"{DI}Titel")]
    assert "Indkaldelse til videomøde 12. marts 2031" in titles  # the moved meeting, retitled
    assert len(titles) == 3  # the first meeting's title, and the moved one's before and after


def test_the_index_away_gets_every_update_once_in_order_when_back(messaging_hub: Any, data_root: Path,
                                                                   index_settings: Any) -> None:
    port = free_port()
    hub = messaging_hub([], **index_settings(f"http://127.0.0.1:{port}", None))
    booked = hub.client.post("/fhir/Appointment", json=appointment("d1"), headers=FHIR).json()
    moved = copy.deepcopy(booked)
    moved["start"], moved["end"] = "2031-04-02T09:00:00Z", "2031-04-02T09:30:00Z"
    moved = hub.client.put(f"/fhir/Appointment/{booked['id']}", json=moved, headers=FHIR).json()
    cancelled = moved | {"status": "cancelled"}
    assert hub.client.put(f"/fhir/Appointment/{booked['id']}", json=cancelled, headers=FHIR).status_code == 200
    deadline = time.monotonic() + 15
    while not any(r.attempts >= 2 for r in rows(hub.engine, topic="sdi.meeting", limit=None)):
        assert time.monotonic() < deadline, "the outbox did not try the index"
        time.sleep(0.1)
    waiting = rows(hub.engine, topic="sdi.meeting", limit=None)
    assert all(r.status in ("pending", "sending") for r in waiting)
    assert any("did not answer" in (r.last_error or "") for r in waiting)

    index = CaseIndex()
    recorder = Recorder(create_local_app(data_root / "standards", None, index))
    with ServerThread(recorder, port=port):
        assert [r.status for r in settle(hub.engine, 3)] == ["delivered"] * 3
    assert operations(recorder) == ["ImporterSagDokumentIndeksInput", "OpdaterSagDokumentIndeksInput",
                                    "OpdaterSagDokumentIndeksInput"]
    (document,) = index.documents.values()
    assert "Aflyst: videomøde 2. april 2031" in [t.text for t in document.iter(f"{DI}Titel")]


def test_a_meeting_that_cannot_be_indexed_is_dead_with_its_reason(messaging_hub: Any, data_root: Path,
                                                                  index_settings: Any) -> None:
    index = CaseIndex()
    with ServerThread(create_local_app(data_root / "standards", None, index)) as server:
        hub = messaging_hub([], **index_settings(server.url, None))
        r = hub.client.post("/fhir/Appointment", json=appointment("x1", legal_basis=None), headers=FHIR)
        assert r.status_code == 201
        (row,) = settle(hub.engine, 1)
        assert row.status == "dead" and "names no service" in row.last_error
        assert index.cases == {}
