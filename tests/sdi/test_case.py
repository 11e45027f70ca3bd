"""A course of care as one case in the index, each meeting a document on it (issue 6): what the hub sends, step
by step, checked against the contract's XSDs and the anvisning rules; the Borgerblikket policy at its edges."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from hub.core.config import Settings
from hub.core.cpr import CPR_SYSTEM
from hub.sdi.borgerblikket import AgePolicy, Openings
from hub.sdi.case import ALWAYS, CaseState, IndexConfig, Step, case_key, document_title, new_case, next_step
from hub.sdi.client import SdiClient
from hub.sdi.config import index_config
from hub.sdi.contract import request_schema
from hub.sdi.kle import Emne, KleList
from hub.sdi.meeting import LEGAL_BASIS_EXTENSION, MeetingFacts, meeting_facts
from hub.sdi.rules import NS, case_findings, document_findings

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
ADULT = "0101804321"  # born 1 January 1980 (7th digit 4, year 80 → 1900s); fictitious


def cpr_born(born: date) -> str:
    """A fictitious CPR number of someone born on `born` (2000–2036: 7th digit 4)."""
    return born.strftime("%d%m%y") + "4321"


@pytest.fixture(scope="module")
def store(data_root: Path) -> Path:
    return data_root / "standards"


@pytest.fixture(scope="module")
def client(store: Path) -> SdiClient:
    return SdiClient(store, "http://127.0.0.1:1/sdi")


@pytest.fixture(scope="module")
def schema(store: Path) -> etree.XMLSchema:
    return request_schema(store)


@pytest.fixture(scope="module")
def emne(store: Path) -> Emne:
    return KleList.load(store).for_service("sundhedsloven-140")


@pytest.fixture(scope="module")
def cfg() -> IndexConfig:
    return index_config(Settings(sdi_legal_basis="sundhedsloven-140"))


def facts(status: str = "booked", appointment: str = "a1", cpr: str = ADULT,
          start: datetime = datetime(2027, 3, 12, 9, 0, tzinfo=UTC)) -> MeetingFacts:
    return MeetingFacts(appointment, status, start, start + timedelta(minutes=30), cpr, "EpisodeOfCare/7",
                        "sundhedsloven-140", None)


def checked(step: Step, client: SdiClient, schema: etree.XMLSchema) -> etree._Element:
    """The step's request body, after checking it as the index would: the XSDs, then the anvisning rules."""
    body = client.envelope(step.operation, step.body).find(f"{SOAP}Body")[0]
    assert schema.validate(etree.ElementTree(copy.deepcopy(body))), schema.error_log
    for sag in body.xpath("sdi:SagIndeks", namespaces=NS):
        assert case_findings(sag) == []
    for dokument in body.xpath("sdi:DokumentIndeks", namespaces=NS):
        assert document_findings(dokument) == []
    return body  # type: ignore[no-any-return]


def run(state: CaseState, meeting: MeetingFacts, cfg: IndexConfig, client: SdiClient,
        schema: etree.XMLSchema) -> tuple[CaseState | None, list[tuple[str, etree._Element]]]:
    sent = []
    current: CaseState | None = state
    while current is not None and (step := next_step(current, meeting, cfg, NOW)) is not None:
        sent.append((step.what, checked(step, client, schema)))
        current = step.after
    return current, sent


def text(body: etree._Element, path: str) -> list[str]:
    return [str(t) for t in body.xpath(path + "/text()", namespaces=NS)]


def test_a_course_of_care_is_one_case_and_its_meetings_documents_on_it(
        cfg: IndexConfig, emne: Emne, client: SdiClient, schema: etree.XMLSchema) -> None:
    state = new_case("EpisodeOfCare/7", facts(), emne, cfg, NOW)
    state2, sent = run(state, facts(), cfg, client, schema)
    assert [what for what, _ in sent] == ["import the case and its first meeting"]
    body = sent[0][1]
    assert [etree.QName(c).localname for c in body] == ["DokumentIndeks", "SagIndeks"]  # the document first
    sag = body.find("sdi:SagIndeks", NS)
    assert text(sag, ".//sag:Titel") == ["Genoptræning efter sundhedsloven"]
    assert text(sag, ".//sag:Sagsnummer") == text(sag, ".//sag:BrugervendtNoegle")
    assert text(sag, ".//si:Foelsomhed") == ["FOELSOMME_PERSONOPLYSNINGER"]
    assert text(sag, ".//sag:Sagspart/gd:ReferenceID/sd:URNIdentifikator") == [f"urn:oio:cpr-nr:{ADULT}"]
    assert "29.21.04" in text(sag, ".//si:SagsklasseLokalUdvidelse/si:BrugervendtNoegle")
    assert text(sag, ".//sag:Fremdrift/sag:FremdriftStatusKode") == ["Opstaaet"]
    assert text(sag, ".//sag:Journalpost/gd:ReferenceID/sd:UUIDIdentifikator") == \
        text(body, "sdi:DokumentIndeks/sd:UUIDIdentifikator")
    document = body.find("sdi:DokumentIndeks", NS)
    assert [t.text for t in document.iter("{urn:oio:sts:sagdok:dokumentindeks:6}Titel")] == \
        ["Indkaldelse til videomøde 12. marts 2027"]
    assert [t.text for t in document.iter("{urn:oio:sts:sagdok:dokumentindeks:6}Type")] == ["Brev, udgaaende"]
    assert state2 is not None

    # a second meeting of the same course: imported, then tied to the same case
    state3, sent = run(state2, facts(appointment="a2"), cfg, client, schema)
    assert [what for what, _ in sent] == ["import the meeting", "tie the meeting to its case"]
    assert text(sent[1][1], ".//sd:UUIDIdentifikator")[0] == state.uuid
    assert state3 is not None and len(state3.documents) == 2

    # moved, then cancelled: the document is retitled each time, and nothing more
    moved = facts(appointment="a2", start=datetime(2027, 3, 14, 23, 30, tzinfo=UTC))  # 15 March in Denmark
    state4, sent = run(state3, moved, cfg, client, schema)
    assert [what for what, _ in sent] == ["retitle the meeting"]
    assert state4 is not None and state4.documents["a2"].title == "Indkaldelse til videomøde 15. marts 2027"
    state5, sent = run(state4, replace(moved, status="cancelled"), cfg, client, schema)
    assert state5 is not None and state5.documents["a2"].title == "Aflyst: videomøde 15. marts 2027"
    assert run(state5, replace(moved, status="cancelled"), cfg, client, schema)[1] == []  # nothing left to send

    # deleted at the source: its Journalpost ended, then the document removed; the case stays for a1
    state6, sent = run(state5, replace(moved, status="entered-in-error"), cfg, client, schema)
    assert [what for what, _ in sent] == ["end the Journalpost of a meeting deleted at the source",
                                          "remove a meeting deleted at the source"]
    assert text(sent[0][1], ".//sag:Journalpost/gd:Virkning/sd:TilTidspunkt/sd:TidsstempelDatoTid")
    assert sent[1][1].xpath("sdi:SoegUdtryk/sdi:SoegDokument//*[local-name()='BrugervendtNoegle']/text()",
                            namespaces=NS) == [state5.documents["a2"].number]
    # the last meeting deleted too: the case goes
    final, sent = run(state6, replace(facts(), status="entered-in-error"), cfg, client, schema)
    assert final is None and [what for what, _ in sent] == ["remove the case of a meeting deleted at the source"]
    assert text(sent[0][1], "sdi:SagUuid/sd:UUIDIdentifikator") == [state.uuid]


@pytest.mark.parametrize(("status", "title"), [("booked", "Indkaldelse til videomøde 12. marts 2027"),
                                                ("fulfilled", "Afholdt videomøde 12. marts 2027"),
                                                ("noshow", "Videomøde 12. marts 2027 blev ikke holdt"),
                                                ("cancelled", "Aflyst: videomøde 12. marts 2027")])
def test_a_meeting_is_titled_for_the_citizen(status: str, title: str) -> None:
    assert document_title(facts(status)) == title


def _visningsklasse(state: CaseState, cfg: IndexConfig, client: SdiClient,
                    schema: etree.XMLSchema, cpr: str) -> list[etree._Element]:
    step = next_step(state, facts(cpr=cpr), cfg, NOW)
    assert step is not None
    body = checked(step, client, schema)
    return [k for k in body.iterfind(".//sag:Sagsklasse", NS)
            if text(k, "gd:Rolle/sd:UUIDIdentifikator") == [cfg.roles["Visningsklasse"]]]


@pytest.mark.parametrize("history", [False, True])
def test_a_minor_s_case_is_hidden_until_the_18th_birthday(
        history: bool, cfg: IndexConfig, emne: Emne, client: SdiClient, schema: etree.XMLSchema) -> None:
    policy = replace(cfg, age=AgePolicy(18, show_history_before_age=history))
    turns_18_tomorrow = cpr_born(date(2009, 3, 2))
    turns_18_today = cpr_born(date(2009, 3, 1))
    hidden = new_case("k", facts(cpr=turns_18_tomorrow), emne, policy, NOW)
    assert hidden.hidden_until == ("2027-03-02" if history else ALWAYS)
    (klasse,) = _visningsklasse(hidden, policy, client, schema, turns_18_tomorrow)
    assert text(klasse, ".//si:Klassetitel") == ["Visning undtaget for borger"]
    until = text(klasse, "gd:Virkning/sd:TilTidspunkt/sd:TidsstempelDatoTid")
    assert until == (["2027-03-02T00:00:00+01:00"] if history else [])  # shown from the birthday, Danish time
    shown = new_case("k", facts(cpr=turns_18_today), emne, policy, NOW)
    assert shown.hidden_until is None and _visningsklasse(shown, policy, client, schema, turns_18_today) == []


def test_without_history_a_citizen_s_meetings_from_the_birthday_go_on_a_new_case(emne: Emne) -> None:
    policy = AgePolicy(18, show_history_before_age=False)
    meeting = facts(cpr=cpr_born(date(2009, 3, 2)))
    assert case_key(meeting, emne, policy, date(2027, 3, 1)) == "EpisodeOfCare/7"
    assert case_key(meeting, emne, policy, date(2027, 3, 2)) == "EpisodeOfCare/7|from-age"
    with_history = AgePolicy(18, show_history_before_age=True)
    assert case_key(meeting, emne, with_history, date(2027, 3, 2)) == "EpisodeOfCare/7"


def test_an_override_per_kle_area_moves_the_age(cfg: IndexConfig, emne: Emne) -> None:
    policy = replace(cfg, age=AgePolicy(18, {"29.21": 15}))
    assert new_case("k", facts(cpr=cpr_born(date(2012, 3, 2))), emne, policy, NOW).hidden_until == ALWAYS
    assert new_case("k", facts(cpr=cpr_born(date(2012, 3, 1))), emne, policy, NOW).hidden_until is None


def test_a_kle_area_is_shown_from_its_opening_date(cfg: IndexConfig, emne: Emne) -> None:
    opened_tomorrow = replace(cfg, openings=Openings({cfg.cvr: {"29.21": date(2027, 3, 2)}}))
    opened_today = replace(cfg, openings=Openings({cfg.cvr: {"29.21": date(2027, 3, 1)}}))
    other_area = replace(cfg, openings=Openings({cfg.cvr: {"27": date(2020, 1, 1)}}))
    assert new_case("k", facts(), emne, opened_tomorrow, NOW).hidden_until == ALWAYS
    assert new_case("k", facts(), emne, opened_today, NOW).hidden_until is None
    assert new_case("k", facts(), emne, other_area, NOW).hidden_until == ALWAYS  # not opened at all
    assert new_case("k", facts(), emne, cfg, NOW).hidden_until is None  # the municipality sets no openings


def _appointment(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Appointment", "status": "booked", "start": "2027-03-12T09:00:00Z",
            "end": "2027-03-12T09:30:00Z", **extra}


def test_the_facts_of_a_meeting() -> None:
    assert meeting_facts("a", _appointment(), None) is None  # no citizen
    assert meeting_facts("a", _appointment(), "urn:oid:1.2.3|0101804321") is None  # not a CPR number
    found = meeting_facts("a", _appointment(
        supportingInformation=[{"reference": "EpisodeOfCare/9"}], basedOn=[{"reference": "ServiceRequest/1"}],
        extension=[{"url": LEGAL_BASIS_EXTENSION, "valueCodeableConcept": {"coding": [
            {"system": "http://ehealth.sundhed.dk/cs/jurisdiction", "code": "healthcare-act"},
            {"system": "urn:hub:legal-basis", "code": "sundhedsloven-138"}]}}]), f"{CPR_SYSTEM}|010180-4321")
    assert found is not None
    assert (found.cpr, found.course, found.legal_basis) == (ADULT, "EpisodeOfCare/9", "sundhedsloven-138")
    assert ADULT not in found.ordering_key and found.ordering_key.startswith("sdi:")
    based = meeting_facts("a", _appointment(basedOn=[{"reference": "ServiceRequest/1"}]), f"{CPR_SYSTEM}|{ADULT}")
    assert based is not None and based.course == "ServiceRequest/1" and based.legal_basis is None
