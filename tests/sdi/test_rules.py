"""KOMBIT's anvisning rules for a case and a document (issue 6): the example case and an authored document keep them
all; each change that breaks one is found, with its element and section; a history keeps them at every time."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable

import pytest
from lxml import etree

from hub.sdi.rules import NS, case_findings, document_findings, roles
from tests.conftest import SHARED

EXAMPLE = SHARED / "kombit/examples/authored/SF1470-v6-importer-minimal-sag.body.xml"
ROLE = {name: uuid for uuid, name in roles().items()}


def case() -> etree._Element:
    (sag,) = etree.parse(str(EXAMPLE)).xpath("//sdi:SagIndeks", namespaces=NS)
    return sag  # type: ignore[no-any-return]


def first(sag: etree._Element, path: str) -> etree._Element:
    return sag.xpath(path, namespaces=NS)[0]  # type: ignore[no-any-return]


def role(sag: etree._Element, name: str) -> etree._Element:
    return first(sag, f".//*[gd:Rolle/sd:UUIDIdentifikator='{ROLE[name]}']")


def set_text(path: str, value: str) -> Callable[[etree._Element], None]:
    def change(sag: etree._Element) -> None:
        first(sag, path).text = value
    return change


def drop_role(name: str) -> Callable[[etree._Element], None]:
    def change(sag: etree._Element) -> None:
        relation = role(sag, name)
        relation.getparent().remove(relation)
    return change


def twice(name: str) -> Callable[[etree._Element], None]:
    def change(sag: etree._Element) -> None:
        relation = role(sag, name)
        relation.addnext(copy.deepcopy(relation))
    return change


def later_state(sag: etree._Element) -> None:
    """A Fremdrift that starts with Oplyst, Opstaaet after it."""
    progress = first(sag, ".//sag:Fremdrift")
    earlier = copy.deepcopy(progress)
    first(earlier, "sag:FremdriftStatusKode").text = "Oplyst"
    first(earlier, ".//sd:TidsstempelDatoTid").text = "2026-01-01T00:00:00.000+01:00"
    progress.addprevious(earlier)


def open_start(sag: etree._Element) -> None:
    start = first(sag, ".//sag:Egenskaber/sag:Virkning/sd:FraTidspunkt")
    start.remove(first(start, "sd:TidsstempelDatoTid"))
    etree.SubElement(start, f"{{{NS['sd']}}}GraenseIndikator").text = "true"


def test_the_example_case_keeps_every_rule() -> None:
    assert case_findings(case()) == []


@pytest.mark.parametrize(("change", "rule", "path"), [
    (set_text(".//sag:Sagsnummer", "HUB-2026-999"), "BrugervendtNoegle must be the Sagsnummer",
     "Egenskaber/BrugervendtNoegle"),
    (set_text(".//sag:Titel", "Genoptræning\nvia video"), "Titel must be one line", "Egenskaber/Titel"),
    (set_text("sag:Registrering/sd:LivscyklusKode", "Opstaaet"), "LivscyklusKode must be Importeret",
     "Registrering/LivscyklusKode"),
    (set_text(".//sag:FremdriftStatusKode", "Afsluttet"), "The Fremdrift history must have Opstaaet",
     "TilstandListe/Fremdrift"),
    (later_state, "Opstaaet must be the first state of the Fremdrift history", "TilstandListe/Fremdrift"),
    (drop_role("Ejer"), "Exactly one Ejer (found 0)", "RelationListe/Ejer"),
    (twice("Ansvarlig"), "Exactly one Ansvarlig (found 2)", "RelationListe/Ansvarlig"),
    (twice("Master"), "Exactly one Master (found 2)", "RelationListe/Master"),
    (drop_role("Handlingsklasse"), "Exactly one Handlingsklasse (found 0)", "RelationListe/Handlingsklasse"),
    (set_text(".//sag:Sagspart/gd:ReferenceID/sd:URNIdentifikator", "urn:oio:cpr-nr:01010112"),
     "The Primær part is named by urn:oio:cpr-nr:<CPR>, never a UUID", "Sagspart[Primær part]/ReferenceID"),
    (set_text(f".//*[gd:Rolle/sd:UUIDIdentifikator='{ROLE['Primær klasse']}']//si:BrugervendtNoegle", "29.21"),
     "The Primær klasse's BrugervendtNoegle is its KLE number xx.xx.xx",
     "Sagsklasse[Primær klasse]/BrugervendtNoegle"),
    (set_text(".//sag:Egenskaber/sag:Virkning/sd:AktoerTypeKode", "Organisation"),
     "A Virkning's AktoerTypeKode is Bruger or ItSystem", "Egenskaber/Virkning/AktoerTypeKode"),
    (open_start, "A Virkning starts at a real time, not a GraenseIndikator", "Egenskaber/Virkning/FraTidspunkt"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_each_broken_rule_is_found_with_its_element_and_section(change: Callable[[etree._Element], None], rule: str,
                                                                path: str) -> None:
    sag = case()
    change(sag)
    findings = case_findings(sag)
    assert [(f.rule, f.path) for f in findings] == [(rule, path)]
    assert findings[0].source.startswith(("anvisning sag v1.7 §", "generel vejledning §"))


# --- documents -----------------------------------------------------------------------------------------------------
# An authored document (no KOMBIT example exists). The material gives no role or type UUIDs for a document, so these
# are the tests' own: the rules take a document's roles as the request names them.

START = "2026-03-02T10:00:00.000+01:00"
SYSTEM = "0a0a0a0a-1111-4222-8333-444455556666"  # the example case's Master and Afsender
DOCUMENT = "7c1d2e3f-4a5b-4c6d-8e7f-90a1b2c3d4e6"
DOCUMENT_ROLE = {name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:hub:test:dokumentrolle:{name}"))
                 for name in ("Ejer", "Ansvarlig", "Parter", "Primær klasse", "Andre klasser", "Master", "Afsender",
                              "Tilakteret")}  # Tilakteret: a case's Journalpost
A_TYPE = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:hub:test:relationstype"))
DECLARATIONS = " ".join(f'xmlns:{prefix}="{ns}"' for prefix, ns in NS.items())


def virkning(prefix: str, start: str = START, end: str | None = None) -> str:
    until = f"<sd:TidsstempelDatoTid>{end}</sd:TidsstempelDatoTid>" if end else \
        "<sd:GraenseIndikator>true</sd:GraenseIndikator>"
    return (f"<{prefix}:Virkning><sd:FraTidspunkt><sd:TidsstempelDatoTid>{start}</sd:TidsstempelDatoTid>"
            f"</sd:FraTidspunkt><sd:TilTidspunkt>{until}</sd:TilTidspunkt><sd:AktoerRef><sd:URNIdentifikator>"
            f"urn:oio:it-system-uuid:{SYSTEM}</sd:URNIdentifikator></sd:AktoerRef>"
            f"<sd:AktoerTypeKode>ItSystem</sd:AktoerTypeKode></{prefix}:Virkning>")


def relation(tag: str, role: str, reference: str, extension: str = "", indeks: str = "", after: str = "",
             start: str = START, end: str | None = None) -> str:
    """A relation (gd:RelationType) with its Virkning; `role` a DOCUMENT_ROLE name, or a role's UUID."""
    role_uuid = DOCUMENT_ROLE.get(role, role)
    named = "URN" if reference.startswith(("urn:", "URN:")) else "UUID"
    return (f"<{tag}>{virkning('gd', start, end)}<gd:Rolle><sd:UUIDIdentifikator>{role_uuid}</sd:UUIDIdentifikator>"
            f"</gd:Rolle><gd:Type><sd:UUIDIdentifikator>{A_TYPE}</sd:UUIDIdentifikator></gd:Type>"
            + (f"<gd:Indeks>{indeks}</gd:Indeks>" if indeks else "")
            + f"<gd:ReferenceID><sd:{named}Identifikator>{reference}</sd:{named}Identifikator></gd:ReferenceID>"
            + (f"<gd:LokalUdvidelseListe>{extension}</gd:LokalUdvidelseListe>" if extension else "")
            + f"{after}</{tag}>")


def document_xml(document: str = DOCUMENT, number: str = "HUB-DOK-0001", title: str = "Indkaldelse til videomøde",
                 cpr: str = "0101011234") -> str:
    """An `sdi:DokumentIndeks` that keeps every rule checked."""
    system = "<di:SystemNavn>Interop Adapter Hub</di:SystemNavn>"
    return f"""<sdi:DokumentIndeks {DECLARATIONS}>
  <sd:UUIDIdentifikator>{document}</sd:UUIDIdentifikator>
  <di:Registrering>
    <sd:Tidspunkt>{START}</sd:Tidspunkt><sd:LivscyklusKode>Importeret</sd:LivscyklusKode>
    <sd:BrugerRef><sd:URNIdentifikator>urn:oio:it-system-uuid:{SYSTEM}</sd:URNIdentifikator></sd:BrugerRef>
    <di:AttributListe><di:Egenskaber>{virkning('di')}<di:BrugervendtNoegle>{number}</di:BrugervendtNoegle>
      <di:Titel>{title}</di:Titel><di:Dokumentnummer>{number}</di:Dokumentnummer>
      <di:Foelsomhed>FOELSOMME_PERSONOPLYSNINGER</di:Foelsomhed><di:Type>Brev, udgaaende</di:Type></di:Egenskaber>
    </di:AttributListe>
    <di:TilstandListe><di:Fremdrift>{virkning('di')}<di:FremdriftStatusKode>Endeligt</di:FremdriftStatusKode>
    </di:Fremdrift></di:TilstandListe>
    <di:RelationListe>
      {relation('di:Dokumentaktoer', 'Ejer', 'urn:oio:cvr-nr:11111111', '<di:DokumentaktoerLokalUdvidelse>'
                '<di:BrugervendtNoegle>999</di:BrugervendtNoegle><di:FuldtNavn>Korsbæk Kommune</di:FuldtNavn>'
                '<di:CVR-Nr>11111111</di:CVR-Nr></di:DokumentaktoerLokalUdvidelse>')}
      {relation('di:Dokumentaktoer', 'Ansvarlig', '2b2b2b2b-3333-4444-8555-666677778888',
                '<di:DokumentaktoerLokalUdvidelse><di:FuldtNavn>Genoptræningscenter Nord</di:FuldtNavn>'
                '</di:DokumentaktoerLokalUdvidelse>')}
      {relation('di:Dokumentpart', 'Parter', f'urn:oio:cpr-nr:{cpr}', '<di:DokumentpartLokalUdvidelse>'
                '<di:FuldtNavn>Testborger Testesen</di:FuldtNavn></di:DokumentpartLokalUdvidelse>', indeks='1')}
      {relation('di:Dokumentklasse', 'Primær klasse', '3c3c3c3c-4444-4555-8666-777788889999',
                '<di:DokumentklasseLokalUdvidelse><di:Klassetitel>Genoptræning efter sundhedsloven</di:Klassetitel>'
                '<di:BrugervendtNoegle>29.21.04</di:BrugervendtNoegle></di:DokumentklasseLokalUdvidelse>')}
      <gd:LokalUdvidelseListe>
        {relation('di:DokumentitsystemRelation', 'Master', SYSTEM, after=system)}
        {relation('di:DokumentitsystemRelation', 'Afsender', SYSTEM, after=system)}
      </gd:LokalUdvidelseListe>
    </di:RelationListe>
  </di:Registrering>
</sdi:DokumentIndeks>"""


def document() -> etree._Element:
    return etree.fromstring(document_xml())


def fragment(xml: str) -> etree._Element:
    """An element written with the contract's prefixes (NS), undeclared."""
    return etree.fromstring(f"<wrapper {DECLARATIONS}>{xml}</wrapper>")[0]


def document_role(sag: etree._Element, name: str) -> etree._Element:
    return first(sag, f".//*[gd:Rolle/sd:UUIDIdentifikator='{DOCUMENT_ROLE[name]}']")


def drop(path: str) -> Callable[[etree._Element], None]:
    def change(obj: etree._Element) -> None:
        element = first(obj, path)
        element.getparent().remove(element)
    return change


def twice_document(name: str) -> Callable[[etree._Element], None]:
    def change(dokument: etree._Element) -> None:
        relation_ = document_role(dokument, name)
        relation_.addnext(copy.deepcopy(relation_))
    return change


def with_indeks(name: str) -> Callable[[etree._Element], None]:
    def change(dokument: etree._Element) -> None:
        first(document_role(dokument, name), "gd:Type").addnext(etree.fromstring(
            f'<gd:Indeks xmlns:gd="{NS["gd"]}">1</gd:Indeks>'))
    return change


def system_uri(dokument: etree._Element) -> None:
    etree.SubElement(document_role(dokument, "Master"), f"{{{NS['di']}}}SystemURI").text = "https://hub.example"


def test_the_authored_document_keeps_every_rule() -> None:
    assert document_findings(document()) == []


@pytest.mark.parametrize(("change", "rule", "path"), [
    (set_text(".//di:Titel", "Indkaldelse\ntil videomøde"), "Titel must be one line", "Egenskaber/Titel"),
    (drop(".//di:Dokumentnummer"), "Dokumentnummer is required", "Egenskaber/Dokumentnummer"),
    (drop(".//di:Foelsomhed"), "Foelsomhed is required", "Egenskaber/Foelsomhed"),
    (set_text(".//di:Type", "Brev"), "Type is 'Brev, indgaaende' or 'Brev, udgaaende', never 'Brev'",
     "Egenskaber/Type"),
    (set_text(".//di:Type", "Brev, indgaaende"), "An incoming letter has its BrevDato", "Egenskaber/BrevDato"),
    (set_text("di:Registrering/sd:LivscyklusKode", "Rettet"), "LivscyklusKode must be Importeret",
     "Registrering/LivscyklusKode"),
    (drop(".//di:FremdriftStatusKode"), "FremdriftStatusKode is required", "TilstandListe/Fremdrift"),
    (drop(".//di:Egenskaber/di:Virkning"), "Every attribute, state and relation has a Virkning",
     "Egenskaber/Virkning"),
    (drop(".//di:DokumentaktoerLokalUdvidelse/di:FuldtNavn"), "A Dokumentaktoer has its FuldtNavn",
     "Dokumentaktoer/FuldtNavn"),
    (twice_document("Ansvarlig"), "One relation per type, role and Indeks at a time (found 2)",
     "RelationListe/Dokumentaktoer"),
    (set_text(".//di:Dokumentpart/gd:ReferenceID/sd:URNIdentifikator", "urn:oio:cpr-nr:0101"),
     "A Dokumentpart is named by a cpr-nr, us:personid, udk:borgerid, cvr-nr, pnr or fuldtnavn URN, never a UUID",
     "Dokumentpart/ReferenceID"),
    (drop(".//di:DokumentpartLokalUdvidelse/di:FuldtNavn"), "A Dokumentpart has its FuldtNavn",
     "Dokumentpart/FuldtNavn"),
    (set_text(".//di:DokumentklasseLokalUdvidelse/di:BrugervendtNoegle", "29.21"),
     "The Primær klasse's BrugervendtNoegle is its KLE number xx.xx.xx",
     "Dokumentklasse[Primær klasse]/BrugervendtNoegle"),
    (with_indeks("Primær klasse"), "Exactly one Primær klasse, the Dokumentklasse without Indeks (found 0)",
     "RelationListe/Dokumentklasse[Primær klasse]"),
    (twice_document("Master"),
     "Exactly one Master and one Afsender: two IT-systems of different roles (found 3 of 2 roles)",
     "RelationListe/DokumentitsystemRelation"),
    (system_uri, "An IT-system has no SystemURI", "DokumentitsystemRelation/SystemURI"),
    (drop(".//di:Dokumentklasse/gd:Type"), "Every relation names its Type", "Dokumentklasse/Type"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_each_broken_document_rule_is_found_with_its_element_and_section(
        change: Callable[[etree._Element], None], rule: str, path: str) -> None:
    dokument = document()
    change(dokument)
    findings = document_findings(dokument)
    assert [(f.rule, f.path) for f in findings] == [(rule, path)]
    assert findings[0].source.startswith(("anvisning dokument v1.7 §", "generel vejledning §"))


# --- histories: what an update leaves a case with -------------------------------------------------------------------

def ends(relation_: etree._Element, until: str) -> None:
    """Give a relation's Virkning the TilTidspunkt `until` (an xs:dateTime, or "" for forever)."""
    end = first(relation_, "gd:Virkning/sd:TilTidspunkt")
    end.getparent().replace(end, fragment(
        f"<sd:TilTidspunkt><sd:TidsstempelDatoTid>{until}</sd:TidsstempelDatoTid></sd:TilTidspunkt>" if until else
        "<sd:TilTidspunkt><sd:GraenseIndikator>true</sd:GraenseIndikator></sd:TilTidspunkt>"))


def test_a_mandatory_relation_may_be_replaced_but_not_ended() -> None:
    sag = case()
    owner = role(sag, "Ejer")
    ends(owner, "2026-04-01T00:00:00.000+02:00")
    assert [(f.rule, f.path) for f in case_findings(sag)] == [
        ("Exactly one Ejer (found 0 from 2026-04-01T00:00:00+02:00)", "RelationListe/Ejer")]

    successor = copy.deepcopy(owner)
    first(successor, "gd:Virkning/sd:FraTidspunkt/sd:TidsstempelDatoTid").text = "2026-04-01T00:00:00.000+02:00"
    ends(successor, "")
    owner.addnext(successor)
    assert case_findings(sag) == []


def test_every_egenskaber_entry_gives_the_required_fields_and_a_journalpost_names_a_document() -> None:
    sag = case()
    later = copy.deepcopy(first(sag, ".//sag:Egenskaber"))
    later.remove(first(later, "sag:Titel"))
    first(sag, ".//sag:Egenskaber").addnext(later)
    first(sag, ".//sag:Sagspart").addnext(fragment(relation("sag:Journalpost", "Tilakteret", "urn:oio:noget:andet",
                                                            indeks="1")))
    assert [(f.rule, f.path) for f in case_findings(sag)] == [
        ("Titel is required", "Egenskaber/Titel"),
        ("A Journalpost names a document by its UUID, or a journalnotat by URN:Empty", "Journalpost/ReferenceID")]
