"""The hub's local case index over real HTTP (issue 6): SOAP 1.1 requests checked against the XSDs and the anvisning
rules, cases and documents kept so fremsoeg finds them (by UUID or by search), a Master that never changes, opdater
merged by Virkning, fjern by UUID or search, a security check in front, and answers valid against the contract."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from hub.api.server_thread import ServerThread
from hub.sdi.contract import request_schema
from hub.sdi.local.service import REQUEST_HEADER, SOAP, create_sdi_app
from hub.sdi.rules import NS, roles
from tests.conftest import SHARED
from tests.sdi.test_rules import (
    DECLARATIONS,
    DOCUMENT,
    ROLE,
    START,
    document_xml,
    ends,
    fragment,
    relation,
    virkning,
)

EXAMPLES = SHARED / "kombit/examples/authored"
CASE = "6f1c2d3e-4a5b-4c6d-8e7f-90a1b2c3d4e5"  # the example case's UUID


@pytest.fixture
def sdi(data_root: Path) -> Iterator[ServerThread]:
    with ServerThread(create_sdi_app(data_root / "standards")) as server:
        yield server


def body(name: str) -> etree._Element:
    return etree.parse(str(EXAMPLES / name)).getroot()


def call(server: ServerThread, operation: etree._Element, transaction: str | None = "auto") -> etree._Element:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
    header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    if transaction is not None:
        request_header = etree.SubElement(header, f"{{{REQUEST_HEADER}}}RequestHeader")
        etree.SubElement(request_header, f"{{{REQUEST_HEADER}}}TransactionUUID").text = \
            str(uuid.uuid4()) if transaction == "auto" else transaction
    etree.SubElement(envelope, f"{{{SOAP}}}Body").append(copy.deepcopy(operation))
    answer = httpx.post(f"{server.url}/sdi", content=etree.tostring(envelope), headers={"Content-Type": "text/xml"})
    assert answer.status_code == 200, answer.text
    return etree.fromstring(answer.content)


def output(answer: etree._Element, data_root: Path) -> etree._Element:
    (found,) = answer.find(f"{{{SOAP}}}Body")
    assert request_schema(data_root / "standards").validate(etree.ElementTree(copy.deepcopy(found))), \
        "the answer breaks the contract"
    return found  # type: ignore[no-any-return]


def statuses(found: etree._Element) -> list[tuple[int, str]]:
    return [(int(r.findtext(f"{{{NS['sd']}}}StatusKode") or 0), r.findtext(f"{{{NS['sd']}}}FejlbeskedTekst") or "")
            for r in found]


def test_a_case_is_imported_found_and_removed(sdi: ServerThread, data_root: Path) -> None:
    transaction = "7d1b1d0a-0000-4000-8000-000000000001"
    answer = call(sdi, body("SF1470-v6-importer-minimal-sag.body.xml"), transaction=transaction)
    assert answer.findtext(f".//{{{REQUEST_HEADER}}}TransactionUUID") == transaction  # echoed
    assert statuses(output(answer, data_root)) == [(20, "OK")]

    found = output(call(sdi, body("SF1470-v6-fremsoeg-sag-by-uuid.body.xml")), data_root)
    snapshots = found.findall(f"{{{NS['sdi']}}}SagFiltreretOejebliksbillede")
    assert [s.findtext(f".//{{{NS['sd']}}}UUIDIdentifikator") for s in snapshots] == [CASE]
    assert snapshots[0].findtext(f".//{{{NS['sag']}}}Sagsnummer") == "HUB-2026-000123"

    assert statuses(output(call(sdi, body("SF1470-v6-fjern-sag.body.xml")), data_root)) == [(20, "OK")]
    found = output(call(sdi, body("SF1470-v6-fremsoeg-sag-by-uuid.body.xml")), data_root)
    assert found.findall(f"{{{NS['sdi']}}}SagFiltreretOejebliksbillede") == []
    assert statuses(output(call(sdi, body("SF1470-v6-fjern-sag.body.xml")), data_root))[0][0] == 44


def test_what_the_index_must_not_take_is_answered_40_with_the_reason(sdi: ServerThread, data_root: Path) -> None:
    importer = body("SF1470-v6-importer-minimal-sag.body.xml")
    assert statuses(output(call(sdi, importer), data_root))[0][0] == 20

    other_master = copy.deepcopy(importer)
    master = {name: key for key, name in roles().items()}["Master"]
    other_master.xpath(f".//si:SagsitsystemRelation[gd:Rolle/sd:UUIDIdentifikator='{master}']"
                       "/gd:ReferenceID/sd:UUIDIdentifikator", namespaces=NS)[0].text = str(uuid.uuid4())
    (refused,) = statuses(output(call(sdi, other_master), data_root))
    assert refused[0] == 40 and "a Master never changes" in refused[1]

    renamed = copy.deepcopy(importer)
    renamed.xpath(".//sag:Sagsnummer", namespaces=NS)[0].text = "ANDET-NUMMER"
    (refused,) = statuses(output(call(sdi, renamed), data_root))
    assert refused[0] == 40 and "BrugervendtNoegle must be the Sagsnummer" in refused[1] and "§3.3" in refused[1]

    secret = copy.deepcopy(importer)
    secret.xpath(".//si:Foelsomhed", namespaces=NS)[0].text = "MEGET_HEMMELIG"
    (refused,) = statuses(output(call(sdi, secret), data_root))
    assert refused[0] == 40 and "XSD" in refused[1] and "Foelsomhed" in refused[1]

    (refused,) = statuses(output(call(sdi, importer, transaction=None), data_root))
    assert refused == (40, "RequestHeader/TransactionUUID is required")

    update = body("SF1470-v6-opdater-afslut-sag.body.xml")
    update.xpath(".//sdi:OpdaterSagIndeks/sd:UUIDIdentifikator", namespaces=NS)[0].text = str(uuid.uuid4())
    assert statuses(output(call(sdi, update), data_root))[0][0] == 44


def test_what_is_not_soap_gets_a_fault(sdi: ServerThread) -> None:
    for content in (b"not xml", b"<x/>", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'):
        answer = httpx.post(f"{sdi.url}/sdi", content=content)
        assert answer.status_code == 400 and b"soap:Client" in answer.content and b"root:" not in answer.content


# --- documents, merge, search, security (issue 6, second part) ------------------------------------------------------

OTHER_CASE = "8e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b"
SHARED_DOCUMENT = "9d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"
CASE_START = "2026-03-02T09:15:00.000+01:00"  # the example case's Virkning


def request(operation: str, content: str) -> etree._Element:
    return etree.fromstring(f"<sdi:{operation} {DECLARATIONS}>{content}</sdi:{operation}>")


def a_case(case: str = CASE, number: str = "HUB-2026-000123", title: str = "Genoptræning via video",
           cpr: str = "0101011234", documents: tuple[str, ...] = ()) -> etree._Element:
    """The example case with another UUID, number, title or citizen, and Journalposts to `documents`."""
    (sag,) = body("SF1470-v6-importer-minimal-sag.body.xml").xpath("sdi:SagIndeks", namespaces=NS)
    values = {"sd:UUIDIdentifikator": case, ".//sag:BrugervendtNoegle": number, ".//sag:Sagsnummer": number,
              ".//sag:Titel": title, ".//sag:Sagspart/gd:ReferenceID/sd:URNIdentifikator": f"urn:oio:cpr-nr:{cpr}"}
    for path, value in values.items():
        sag.xpath(path, namespaces=NS)[0].text = value
    for number_, document in enumerate(documents, 1):
        sag.xpath(".//sag:Sagspart", namespaces=NS)[0].addnext(
            fragment(relation("sag:Journalpost", "Tilakteret", document, indeks=str(number_))))
    return sag


def a_document(document: str = DOCUMENT, number: str = "HUB-DOK-0001", **values: str) -> etree._Element:
    return etree.fromstring(document_xml(document, number, **values))


def importer(*objects: etree._Element) -> etree._Element:
    operation = request("ImporterSagDokumentIndeksInput", "")
    operation.extend(copy.deepcopy(o) for o in objects)
    return operation


def returs(found: etree._Element) -> list[tuple[int, str | None, str | None]]:
    """Each UnikRetur's StatusKode, Type and UUID."""
    return [(int(r.findtext(f"{{{NS['sd']}}}StatusKode") or 0), r.findtext(f"{{{NS['sd']}}}Type"),
             r.findtext(f"{{{NS['sd']}}}UUIDIdentifikator")) for r in found]


def fremsoeg(server: ServerThread, data_root: Path, content: str) -> etree._Element:
    return output(call(server, request("FremsoegSagDokumentIndeksInput", content)), data_root)


def found_uuids(found: etree._Element, element: str = "SagFiltreretOejebliksbillede") -> list[str]:
    return [s.xpath("string(*[local-name()='ObjektType']/sd:UUIDIdentifikator)", namespaces=NS)
            for s in found.findall(f"{{{NS['sdi']}}}{element}")]


def soeg(kind: str = "Sag", properties: str = "", states: str = "", relations: str = "", before: str = "",
         term: str = "") -> str:
    """A SoegSag or SoegDokument (or `term`): `properties` inside its Egenskaber, `states` and `relations` as
    given."""
    prefix, term = ("sag" if kind == "Sag" else "di"), term or f"Soeg{kind}"
    egenskaber = f"<{prefix}:Egenskaber>{properties}</{prefix}:Egenskaber>" if properties else ""
    return (f"<sdi:{term}>{before}<{prefix}:AttributListe>{egenskaber}</{prefix}:AttributListe>"
            f"<{prefix}:TilstandListe>{states}</{prefix}:TilstandListe>"
            f"<{prefix}:RelationListe>{relations}</{prefix}:RelationListe></sdi:{term}>")


def by_number(number: str) -> str:
    return soeg(properties=f"<sag:Sagsnummer>{number}</sag:Sagsnummer>")


def party(cpr: str) -> str:
    return soeg(relations="<sag:Sagspart><gd:ReferenceID><sd:URNIdentifikator>"
                          f"urn:oio:cpr-nr:{cpr}</sd:URNIdentifikator></gd:ReferenceID></sag:Sagspart>")


def search(*terms: str, operation: str = "", tag: str = "SoegUdtryk") -> str:
    """A SoegUdtryk (or a NOT) of `terms`."""
    return f"<sdi:{tag}>{f'<sdi:operation>{operation}</sdi:operation>' if operation else ''}{''.join(terms)}" \
           f"</sdi:{tag}>"


def test_documents_are_kept_with_the_cases_that_name_them(sdi: ServerThread, data_root: Path) -> None:
    # the case comes first in the request: the index keeps a request's documents before its cases
    answer = output(call(sdi, importer(a_case(documents=(DOCUMENT, SHARED_DOCUMENT)), a_document(),
                                       a_document(SHARED_DOCUMENT, "HUB-DOK-0002"))), data_root)
    assert returs(answer) == [(20, "Sag", CASE), (20, "Dokument", DOCUMENT), (20, "Dokument", SHARED_DOCUMENT)]
    other = a_case(OTHER_CASE, "HUB-2026-000124", documents=(SHARED_DOCUMENT,))
    assert returs(output(call(sdi, importer(other)), data_root)) == [(20, "Sag", OTHER_CASE)]

    found = fremsoeg(sdi, data_root, f"<sdi:DokumentUuid>{DOCUMENT}</sdi:DokumentUuid>")
    assert found_uuids(found, "DokumentFiltreretOejebliksbillede") == [DOCUMENT]
    assert found.findtext(f".//{{{NS['di']}}}Titel") == "Indkaldelse til videomøde"
    assert found.findtext(f".//{{{NS['gd']}}}StsTidspunkt")  # the index's own time of the registration

    # the case goes with the document only it names; the shared one stays with the other case
    fjern = request("FjernSagDokumentIndeksInput", f"<sdi:SagUuid><sd:UUIDIdentifikator>{CASE}</sd:UUIDIdentifikator>"
                                                   "</sdi:SagUuid>")
    assert returs(output(call(sdi, fjern), data_root)) == [(20, "Sag", CASE), (20, "Dokument", DOCUMENT)]
    found = fremsoeg(sdi, data_root, f"<sdi:DokumentUuid>{DOCUMENT}</sdi:DokumentUuid>"
                                     f"<sdi:DokumentUuid>{SHARED_DOCUMENT}</sdi:DokumentUuid>")
    assert found_uuids(found, "DokumentFiltreretOejebliksbillede") == [SHARED_DOCUMENT]

    # EfterladSagsloeseDokumenter leaves it without a case, where SoegSagsloeseDokumenter finds it
    fjern = request("FjernSagDokumentIndeksInput", f"<sdi:SagUuid><sd:UUIDIdentifikator>{OTHER_CASE}"
                    "</sd:UUIDIdentifikator></sdi:SagUuid><sdi:EfterladSagsloeseDokumenter>true"
                    "</sdi:EfterladSagsloeseDokumenter>")
    assert returs(output(call(sdi, fjern), data_root)) == [(20, "Sag", OTHER_CASE)]
    found = fremsoeg(sdi, data_root, search(soeg("Dokument", term="SoegSagsloeseDokumenter")))
    assert found_uuids(found, "DokumentFiltreretOejebliksbillede") == [SHARED_DOCUMENT]


def test_a_document_breaking_its_rules_or_a_case_naming_no_document_is_refused(sdi: ServerThread,
                                                                               data_root: Path) -> None:
    wrong = a_document()
    wrong.xpath(".//di:DokumentklasseLokalUdvidelse/di:BrugervendtNoegle", namespaces=NS)[0].text = "29.21"
    (refused,) = statuses(output(call(sdi, importer(wrong)), data_root))
    assert refused[0] == 40 and "KLE number xx.xx.xx" in refused[1] and "anvisning dokument v1.7 §3.8" in refused[1]

    (refused,) = statuses(output(call(sdi, importer(a_case(documents=(DOCUMENT,)))), data_root))
    assert refused[0] == 40 and f"names documents the index does not hold: {DOCUMENT}" in refused[1]

    update = request("OpdaterSagDokumentIndeksInput", f"<sdi:OpdaterDokumentIndeks><sd:UUIDIdentifikator>{DOCUMENT}"
                     f"</sd:UUIDIdentifikator><sdi:Tidspunkt>{START}</sdi:Tidspunkt></sdi:OpdaterDokumentIndeks>")
    assert returs(output(call(sdi, update), data_root)) == [(44, "Dokument", DOCUMENT)]


def case_update(content: str, case: str = CASE) -> etree._Element:
    return request("OpdaterSagDokumentIndeksInput", f"<sdi:OpdaterSagIndeks><sd:UUIDIdentifikator>{case}"
                   f"</sd:UUIDIdentifikator>{content}<sdi:Tidspunkt>2026-06-01T12:00:00.000+02:00</sdi:Tidspunkt>"
                   "</sdi:OpdaterSagIndeks>")


def snapshot(server: ServerThread, data_root: Path, case: str = CASE) -> bytes:
    found = fremsoeg(server, data_root, f"<sdi:SagUuid>{case}</sdi:SagUuid>")
    return bytes(etree.tostring(found.find(f"{{{NS['sdi']}}}SagFiltreretOejebliksbillede")))


def test_opdater_merges_by_virkning(sdi: ServerThread, data_root: Path) -> None:
    assert statuses(output(call(sdi, importer(a_case())), data_root)) == [(20, "OK")]

    # the example update closes Opstaaet and adds Afsluttet: the history keeps both
    assert statuses(output(call(sdi, body("SF1470-v6-opdater-afslut-sag.body.xml")), data_root)) == [(20, "OK")]
    found = fremsoeg(sdi, data_root, f"<sdi:SagUuid>{CASE}</sdi:SagUuid>")
    progress = [(p.findtext(f"{{{NS['sag']}}}FremdriftStatusKode"),
                 p.findtext(f".//{{{NS['sd']}}}TilTidspunkt/{{{NS['sd']}}}TidsstempelDatoTid"))
                for p in found.iterfind(f".//{{{NS['sag']}}}Fremdrift")]
    assert progress == [("Opstaaet", "2026-04-20T14:00:00.000+02:00"), ("Afsluttet", None)]
    assert found.findtext(f".//{{{NS['sd']}}}NoteTekst") == "Forløb afsluttet"

    # a new title from 1 May: the old Egenskaber ends there, and a search finds the case by the new title only
    retitle = case_update("<sag:AttributListe><sag:Egenskaber>" + virkning("sag", "2026-05-01T09:00:00.000+02:00")
                          + "<sag:BrugervendtNoegle>HUB-2026-000123</sag:BrugervendtNoegle><sag:Sagsnummer>"
                          "HUB-2026-000123</sag:Sagsnummer><sag:Titel>Genoptræning efter operation</sag:Titel>"
                          "</sag:Egenskaber></sag:AttributListe>")
    assert statuses(output(call(sdi, retitle), data_root)) == [(20, "OK")]
    found = fremsoeg(sdi, data_root, f"<sdi:SagUuid>{CASE}</sdi:SagUuid>")
    assert [e.findtext(f"{{{NS['sag']}}}Titel") for e in found.iterfind(f".//{{{NS['sag']}}}Egenskaber")] == \
        ["Genoptræning via video", "Genoptræning efter operation"]
    for title, expected in (("Genoptræning efter operation", [CASE]), ("Genoptræning via video", [])):
        criterion = search(soeg(properties=f"<sag:Titel>{title}</sag:Titel>"))
        assert found_uuids(fremsoeg(sdi, data_root, criterion)) == expected

    # what would leave the case breaking a rule is refused, and the case stays as it was
    before = snapshot(sdi, data_root)
    other_master = case_update("<sag:RelationListe><gd:LokalUdvidelseListe>" + relation(
        "si:SagsitsystemRelation", ROLE["Master"], str(uuid.uuid4()), start="2026-06-01T00:00:00.000+02:00",
        after="<si:SystemNavn>Et andet system</si:SystemNavn>") + "</gd:LokalUdvidelseListe></sag:RelationListe>")
    (refused,) = statuses(output(call(sdi, other_master), data_root))
    assert refused[0] == 40 and "a Master never changes" in refused[1]
    owner = a_case().xpath(f".//sag:Sagsaktoer[gd:Rolle/sd:UUIDIdentifikator='{ROLE['Ejer']}']", namespaces=NS)[0]
    ends(owner, "2026-06-01T00:00:00.000+02:00")  # with the start it had: the Ejer would end, without a successor
    ended_owner = case_update(f"<sag:RelationListe>{etree.tostring(owner, encoding='unicode')}</sag:RelationListe>")
    (refused,) = statuses(output(call(sdi, ended_owner), data_root))
    assert refused[0] == 40 and "Exactly one Ejer (found 0 from 2026-06-01T00:00:00+02:00)" in refused[1]
    assert snapshot(sdi, data_root) == before


def test_a_document_is_retitled_by_opdater(sdi: ServerThread, data_root: Path) -> None:
    assert returs(output(call(sdi, importer(a_document())), data_root)) == [(20, "Dokument", DOCUMENT)]
    retitle = request("OpdaterSagDokumentIndeksInput", f"<sdi:OpdaterDokumentIndeks><sd:UUIDIdentifikator>{DOCUMENT}"
                      "</sd:UUIDIdentifikator><di:AttributListe><di:Egenskaber>"
                      + virkning("di", "2026-05-01T09:00:00.000+02:00")
                      + "<di:BrugervendtNoegle>HUB-DOK-0001</di:BrugervendtNoegle><di:Titel>Videomødet er flyttet"
                      "</di:Titel><di:Dokumentnummer>HUB-DOK-0001</di:Dokumentnummer><di:Foelsomhed>"
                      "FOELSOMME_PERSONOPLYSNINGER</di:Foelsomhed><di:Type>Brev, udgaaende</di:Type></di:Egenskaber>"
                      "</di:AttributListe><sdi:Tidspunkt>2026-05-01T09:00:01.000+02:00</sdi:Tidspunkt>"
                      "</sdi:OpdaterDokumentIndeks>")
    assert returs(output(call(sdi, retitle), data_root)) == [(20, "Dokument", DOCUMENT)]
    found = fremsoeg(sdi, data_root, search(soeg("Dokument", "<di:Titel>Videomødet er flyttet</di:Titel>")))
    assert found_uuids(found, "DokumentFiltreretOejebliksbillede") == [DOCUMENT]
    assert found.findtext(f".//{{{NS['sd']}}}Tidspunkt") == "2026-05-01T09:00:01.000+02:00"


def test_search_and_fjern_by_search(sdi: ServerThread, data_root: Path) -> None:
    second_document = "4b5c6d7e-8f9a-4b0c-9d1e-2f3a4b5c6d7e"
    objects = (a_document(), a_document(second_document, "HUB-DOK-0002", cpr="0202021234"),
               a_case(documents=(DOCUMENT,)),
               a_case(OTHER_CASE, "HUB-2026-000124", "Hjemmesygepleje via video", "0202021234", (second_document,)))
    assert [r[0] for r in returs(output(call(sdi, importer(*objects)), data_root))] == [20, 20, 20, 20]

    first, second = by_number("HUB-2026-000123"), by_number("HUB-2026-000124")
    for expression, expected in ((search(first), [CASE]),
                                 (search(party("0202021234")), [OTHER_CASE]),
                                 (search(first, party("0202021234"), operation="OR"), [CASE, OTHER_CASE]),
                                 (search(first, party("0202021234")), []),
                                 (search(search(first, tag="NOT")), [OTHER_CASE]),
                                 (search(search(first, second, operation="OR"),
                                         soeg(states="<sag:Fremdrift><sag:FremdriftStatusKode>Opstaaet"
                                                     "</sag:FremdriftStatusKode></sag:Fremdrift>")),
                                  [CASE, OTHER_CASE])):
        assert found_uuids(fremsoeg(sdi, data_root, expression)) == expected, expression

    # SagUuid and the search's matches together, documents by their own search
    found = fremsoeg(sdi, data_root, f"<sdi:SagUuid>{OTHER_CASE}</sdi:SagUuid>" + search(
        first, soeg("Dokument", "<di:BrugervendtNoegle>HUB-DOK-0002</di:BrugervendtNoegle>"), operation="OR"))
    assert found_uuids(found) == [OTHER_CASE, CASE]
    assert found_uuids(found, "DokumentFiltreretOejebliksbillede") == [second_document]

    # what the index does not search is refused, naming it
    unsupported = search(soeg(properties="<sag:Beskrivelse>video</sag:Beskrivelse>",
                              before="<sd:MaksimalAntalKvantitet>10</sd:MaksimalAntalKvantitet>"))
    found = fremsoeg(sdi, data_root, unsupported)
    (refused,) = statuses(found)
    assert refused[0] == 40 and "SoegSag/MaksimalAntalKvantitet" in refused[1] and \
        "SoegSag/AttributListe/Egenskaber/Beskrivelse" in refused[1]
    assert found_uuids(found) == []

    # fjern: a document by a document search goes alone; a case by a case search with its documents
    fjern = request("FjernSagDokumentIndeksInput", search(soeg("Dokument", "<di:BrugervendtNoegle>HUB-DOK-0001"
                                                                           "</di:BrugervendtNoegle>")))
    assert returs(output(call(sdi, fjern), data_root)) == [(20, "Dokument", DOCUMENT)]
    fjern = request("FjernSagDokumentIndeksInput", search(party("0202021234")))
    assert returs(output(call(sdi, fjern), data_root)) == [(20, "Sag", OTHER_CASE), (20, "Dokument", second_document)]
    assert found_uuids(fremsoeg(sdi, data_root, search(first, second, operation="OR"))) == [CASE]
    assert statuses(output(call(sdi, request("FjernSagDokumentIndeksInput", search(second))), data_root))[0][0] == 44


def test_a_call_the_security_check_refuses_gets_a_ws_security_fault(data_root: Path) -> None:
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

    def signed(envelope: etree._Element) -> str | None:
        return None if envelope.find(f".//{{{wsse}}}Security") is not None else "The call carries no wsse:Security"

    with ServerThread(create_sdi_app(data_root / "standards", check_security=signed)) as server:
        answer = httpx.post(f"{server.url}/sdi", content=b"<soap:Envelope xmlns:soap='" + SOAP.encode() +
                            b"'><soap:Body/></soap:Envelope>")
        assert answer.status_code == 500
        fault = etree.fromstring(answer.content).find(f".//{{{SOAP}}}Fault")
        code = fault.findtext("faultcode")
        assert code == "wsse:FailedAuthentication" and fault.find("faultcode").nsmap["wsse"] == wsse
        assert fault.findtext("faultstring") == "The call carries no wsse:Security"

        signed_call = etree.fromstring(
            f"<soap:Envelope xmlns:soap='{SOAP}'><soap:Header><wsse:Security xmlns:wsse='{wsse}'/>"
            f"<RequestHeader xmlns='{REQUEST_HEADER}'><TransactionUUID>{uuid.uuid4()}</TransactionUUID>"
            "</RequestHeader></soap:Header><soap:Body/></soap:Envelope>")
        signed_call[1].append(request("FremsoegSagDokumentIndeksInput", f"<sdi:SagUuid>{CASE}</sdi:SagUuid>"))
        answer = httpx.post(f"{server.url}/sdi", content=etree.tostring(signed_call))
        assert answer.status_code == 200
        assert statuses(output(etree.fromstring(answer.content), data_root)) == [(20, "OK")]


def test_an_update_ties_a_document_to_its_case_and_ends_the_tie(sdi: ServerThread, data_root: Path) -> None:
    assert [r[0] for r in returs(output(call(sdi, importer(a_case(), a_document())), data_root))] == [20, 20]
    tied_since = "2026-03-05T10:00:00.000+01:00"
    tie = relation("sag:Journalpost", "Tilakteret", DOCUMENT, indeks="1", start=tied_since)
    assert statuses(output(call(sdi, case_update(f"<sag:RelationListe>{tie}</sag:RelationListe>")), data_root)) == \
        [(20, "OK")]
    by_document = search(soeg(relations=f"<sag:Journalpost><gd:ReferenceID><sd:UUIDIdentifikator>{DOCUMENT}"
                                        "</sd:UUIDIdentifikator></gd:ReferenceID></sag:Journalpost>"))
    assert found_uuids(fremsoeg(sdi, data_root, by_document)) == [CASE]  # the answer is valid: Journalpost in place
    caseless = search(soeg("Dokument", term="SoegSagsloeseDokumenter"))
    assert found_uuids(fremsoeg(sdi, data_root, caseless), "DokumentFiltreretOejebliksbillede") == []

    # the anvisning's AM-02: the relation with its start and an end is the relation ended
    ended = relation("sag:Journalpost", "Tilakteret", DOCUMENT, indeks="1", start=tied_since,
                     end="2026-04-01T10:00:00.000+02:00")
    assert statuses(output(call(sdi, case_update(f"<sag:RelationListe>{ended}</sag:RelationListe>")), data_root)) == \
        [(20, "OK")]
    assert found_uuids(fremsoeg(sdi, data_root, by_document)) == []
    assert found_uuids(fremsoeg(sdi, data_root, caseless), "DokumentFiltreretOejebliksbillede") == [DOCUMENT]
    found = fremsoeg(sdi, data_root, f"<sdi:SagUuid>{CASE}</sdi:SagUuid>")
    assert len(found.findall(f".//{{{NS['sag']}}}Journalpost")) == 1  # replaced, not added


def test_a_document_keeps_one_of_its_it_systems(sdi: ServerThread, data_root: Path) -> None:
    """Its Master never changes; without role UUIDs for a document the index sees only that both may not change."""
    assert returs(output(call(sdi, importer(a_document())), data_root)) == [(20, "Dokument", DOCUMENT)]
    since, system = "2026-06-01T00:00:00.000+02:00", "<di:SystemNavn>Et andet system</di:SystemNavn>"

    def replacing(*roles_: str) -> etree._Element:
        systems = "".join(relation("di:DokumentitsystemRelation", r, "5e5e5e5e-6666-4777-8888-99990000aaaa",
                                   after=system, start=since) for r in roles_)
        return request("OpdaterSagDokumentIndeksInput", f"<sdi:OpdaterDokumentIndeks><sd:UUIDIdentifikator>{DOCUMENT}"
                       f"</sd:UUIDIdentifikator><di:RelationListe><gd:LokalUdvidelseListe>{systems}"
                       f"</gd:LokalUdvidelseListe></di:RelationListe><sdi:Tidspunkt>{since}</sdi:Tidspunkt>"
                       "</sdi:OpdaterDokumentIndeks>")

    (refused,) = statuses(output(call(sdi, replacing("Master", "Afsender")), data_root))
    assert refused[0] == 40 and "a Master never changes (anvisning dokument v1.7 §3.9)" in refused[1]
    assert returs(output(call(sdi, replacing("Afsender")), data_root)) == [(20, "Dokument", DOCUMENT)]
    (refused,) = statuses(output(call(sdi, replacing("Master")), data_root))
    assert refused[0] == 40
