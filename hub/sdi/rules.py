"""KOMBIT's anvisning rules for a case (sag) in the index, checked on a request the XSD has accepted (pure).

The XSD admits much the index must not take; the anvisning (`kombit/SF1470-SagDokumentIndeks/anvisninger/
forretningsobjekt-sag`, v1.7, and the general guidance `generelt-vejledning-anvisninger`) says what. Each
finding names its rule, the element it is about and the section it comes from. The relations are told apart by
their role (`gd:Rolle`), whose UUIDs are data: `mappings/sf1470-roles.json`.

Checked here, for an imported case (`sdi:SagIndeks`):
- the case's UUID, the registration's time, `LivscyklusKode` `Importeret`, a `BrugerRef` (S §3.1, §3.2);
- `BrugervendtNoegle`, `Sagsnummer` and `Titel` given, on one line each, and `BrugervendtNoegle` = `Sagsnummer`
  (S §3.3);
- a Fremdrift history that has `Opstaaet`, and `Opstaaet` first (S §3.4);
- `Foelsomhed` given (S §3.5);
- exactly one Ejer, Ansvarlig, Primær klasse, Handlingsklasse, Master and Afsender (S §3.6, §3.8, §3.12);
- the Primær part, when given, by a `urn:oio:cpr-nr:` URN and never a UUID (S §3.7); the Primær klasse's KLE
  number as `xx.xx.xx` (S §3.8);
- every Virkning starting at a real time, never at a `GraenseIndikator`, and its actor a `Bruger` or an
  `ItSystem` (G §8.1, §11).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
NS = {"sdi": "urn:oio:sts:sagdok:sagdokumentindeks:6", "sag": "urn:oio:sts:sagdok:sag:6",
      "si": "urn:oio:sts:sagdok:sagindeks:6", "gd": "urn:oio:sts:generelledefinitioner:6", "sd": "urn:oio:sagdok:3.0.0"}
EXACTLY_ONE = ("Ejer", "Ansvarlig", "Primær klasse", "Handlingsklasse", "Master", "Afsender")
KLE_NUMBER = re.compile(r"\d{2}\.\d{2}\.\d{2}")
CPR_URN = re.compile(r"urn:oio:cpr-nr:\d{10}")
ACTOR_TYPES = ("Bruger", "ItSystem")
SAG = "anvisning sag v1.7"
GENERAL = "generel vejledning"


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str  # the element, as a readable path
    source: str  # the anvisning section


@cache
def roles() -> dict[str, str]:
    """Role UUID → role name."""
    data = json.loads((MAPPINGS / "sf1470-roles.json").read_text(encoding="utf-8"))
    return {uuid: name for name, uuid in data["roles"].items()}


def case_findings(sag: etree._Element) -> list[Finding]:
    """What an `sdi:SagIndeks` to import breaks of the anvisning; empty when it keeps every rule checked."""
    found: list[Finding] = []

    def need(condition: bool, rule: str, path: str, source: str) -> None:
        if not condition:
            found.append(Finding(rule, path, source))

    def text(path: str) -> str:
        return " ".join(sag.xpath(f"string({path})", namespaces=NS).split()) if sag.xpath(path, namespaces=NS) \
            else ""

    reg = "sag:Registrering"
    need(bool(text("sd:UUIDIdentifikator")), "The case has no UUID", "SagIndeks/UUIDIdentifikator", f"{SAG} §3.1")
    need(bool(text(f"{reg}/sd:Tidspunkt")), "The registration has no time", "Registrering/Tidspunkt", f"{SAG} §3.2")
    need(text(f"{reg}/sd:LivscyklusKode") == "Importeret", "LivscyklusKode must be Importeret",
         "Registrering/LivscyklusKode", f"{SAG} §3.2")
    need(bool(sag.xpath(f"{reg}/sd:BrugerRef/*", namespaces=NS)), "The registration names no BrugerRef",
         "Registrering/BrugerRef", f"{SAG} §3.2")

    properties = f"{reg}/sag:AttributListe/sag:Egenskaber"
    for name in ("BrugervendtNoegle", "Sagsnummer", "Titel"):
        values = sag.xpath(f"{properties}/sag:{name}/text()", namespaces=NS)
        need(bool(values and str(values[0]).strip()), f"{name} is required", f"Egenskaber/{name}", f"{SAG} §3.3")
        need(not any("\n" in str(v) or "\r" in str(v) for v in values), f"{name} must be one line",
             f"Egenskaber/{name}", f"{SAG} §3.3")
    need(text(f"{properties}/sag:BrugervendtNoegle") == text(f"{properties}/sag:Sagsnummer"),
         "BrugervendtNoegle must be the Sagsnummer", "Egenskaber/BrugervendtNoegle", f"{SAG} §3.3")

    progress = sag.xpath(f"{reg}/sag:TilstandListe/sag:Fremdrift", namespaces=NS)
    states = sorted((p.xpath("string(sag:Virkning/sd:FraTidspunkt/sd:TidsstempelDatoTid)", namespaces=NS),
                     p.xpath("string(sag:FremdriftStatusKode)", namespaces=NS)) for p in progress)
    has_start = any(state == "Opstaaet" for _, state in states)
    need(has_start, "The Fremdrift history must have Opstaaet", "TilstandListe/Fremdrift", f"{SAG} §3.4")
    need(not has_start or states[0][1] == "Opstaaet", "Opstaaet must be the first state of the Fremdrift history",
         "TilstandListe/Fremdrift", f"{SAG} §3.4")
    need(bool(text(f"{reg}/sag:AttributListe/gd:LokalUdvidelseListe/si:SagIndeksEgenskaber/si:Foelsomhed")),
         "Foelsomhed is required", "SagIndeksEgenskaber/Foelsomhed", f"{SAG} §3.5")

    relations = _relations(sag)
    for role in EXACTLY_ONE:
        count = len(relations.get(role, []))
        need(count == 1, f"Exactly one {role} (found {count})", f"RelationListe/{role}", f"{SAG} §3.6–§3.12")
    for party in relations.get("Primær part", []):
        reference = party.xpath("string(gd:ReferenceID/sd:URNIdentifikator)", namespaces=NS)
        need(bool(CPR_URN.fullmatch(reference)), "The Primær part is named by urn:oio:cpr-nr:<CPR>, never a UUID",
             "Sagspart[Primær part]/ReferenceID", f"{SAG} §3.7")
    for kle in relations.get("Primær klasse", []):
        number = kle.xpath("string(gd:LokalUdvidelseListe/si:SagsklasseLokalUdvidelse/si:BrugervendtNoegle)",
                           namespaces=NS)
        need(bool(KLE_NUMBER.fullmatch(number)), "The Primær klasse's BrugervendtNoegle is its KLE number xx.xx.xx",
             "Sagsklasse[Primær klasse]/BrugervendtNoegle", f"{SAG} §3.8")

    for virkning in sag.xpath(".//*[local-name()='Virkning']", namespaces=NS):
        where = etree.QName(virkning.getparent()).localname
        need(bool(virkning.xpath("sd:FraTidspunkt/sd:TidsstempelDatoTid", namespaces=NS)),
             "A Virkning starts at a real time, not a GraenseIndikator", f"{where}/Virkning/FraTidspunkt",
             f"{GENERAL} §8.1")
        need(virkning.xpath("string(sd:AktoerTypeKode)", namespaces=NS) in ACTOR_TYPES,
             "A Virkning's AktoerTypeKode is Bruger or ItSystem", f"{where}/Virkning/AktoerTypeKode",
             f"{GENERAL} §11")
    return found


def _relations(sag: etree._Element) -> dict[str, list[etree._Element]]:
    """The case's relations by role name (roles not in the mapping are left out)."""
    by_role: dict[str, list[etree._Element]] = {}
    known = roles()
    for relation in sag.xpath("sag:Registrering/sag:RelationListe/*[gd:Rolle] | "
                              "sag:Registrering/sag:RelationListe/gd:LokalUdvidelseListe/*[gd:Rolle]",
                              namespaces=NS):
        name = known.get(relation.xpath("string(gd:Rolle/sd:UUIDIdentifikator)", namespaces=NS))
        if name is not None:
            by_role.setdefault(name, []).append(relation)
    return by_role
