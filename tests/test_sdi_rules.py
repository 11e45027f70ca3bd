"""KOMBIT's anvisning rules for an imported case (issue 6, first part): the example request keeps them all; each
change that breaks one is found, with its element and section."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from lxml import etree

from hub.sdi.rules import NS, case_findings, roles
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
