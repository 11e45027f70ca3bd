"""KOMBIT's anvisning rules for a case (sag) and a document in the index, checked on a request the XSD has accepted
(pure), and the reading of Virkning periods the rules and the index share.

The XSD admits much the index must not take; the anvisninger (`kombit/SF1470-SagDokumentIndeks/anvisninger/
forretningsobjekt-sag` and `forretningsobjekt-dokument`, both v1.7, and the general guidance
`generelt-vejledning-anvisninger`) say what. Each finding names its rule, the element it is about and the section it
comes from. A case's relations are told apart by their role (`gd:Rolle`), whose UUIDs are data:
`mappings/sf1470-roles.json`.

A registration carries histories: each attribute, state and relation entry has its Virkning period, and an update
closes an entry where its successor begins (`hub.sdi.local.index`). So "exactly one" means exactly one in effect at
every time from the first entry on: a mandatory relation may be replaced, never ended without a successor.

Checked for a case (`sdi:SagIndeks`, or a case as an update would leave it), anvisning sag (S):
- the case's UUID, the registration's time, `LivscyklusKode` `Importeret`, a `BrugerRef` (S §3.1, §3.2);
- in every Egenskaber entry `BrugervendtNoegle`, `Sagsnummer` and `Titel` given, on one line each, and
  `BrugervendtNoegle` = `Sagsnummer` (S §3.3: they are given again whenever Egenskaber is updated);
- a Fremdrift history that has `Opstaaet`, and `Opstaaet` first (S §3.4);
- `Foelsomhed` in every SagIndeksEgenskaber entry, and at least one (S §3.5);
- exactly one Ejer, Ansvarlig, Primær klasse, Handlingsklasse, Master and Afsender at a time (S §3.6, §3.8, §3.12);
- the Primær part, when given, by a `urn:oio:cpr-nr:` URN and never a UUID (S §3.7); the Primær klasse's KLE
  number as `xx.xx.xx` (S §3.8);
- a Journalpost names a document by its UUID, or is a journalnotat with `URN:Empty` (S §3.11).

Checked for a document (`sdi:DokumentIndeks`, or as an update would leave it), anvisning dokument (D):
- the document's UUID, the registration's time, `LivscyklusKode` `Importeret`, a `BrugerRef` (D §3.1, §3.2);
- in every Egenskaber entry `BrugervendtNoegle`, `Dokumentnummer` and `Titel` given, on one line each, `Foelsomhed`
  and `Type` given, `Type` never the bare `Brev`, `BrevDato` for an incoming letter, `UnderversionIdentifikator`
  with `VersionIdentifikator` and only then (D §3.3);
- a Fremdrift with its `FremdriftStatusKode` (D §3.4);
- a Dokumentrelation names a document by UUID (D §3.5); every Dokumentaktoer has its `FuldtNavn`, and its
  `BrugervendtNoegle` when named by a URN (D §3.6); a Dokumentpart is named by one of the URNs the anvisning lists,
  never a UUID, has its `FuldtNavn` and no `BrugervendtNoegle` (D §3.7); every Dokumentklasse has its
  `BrugervendtNoegle`, and its `Klassetitel` when named by a URN; exactly one Primær klasse at a time, named by
  UUID, with its KLE number as `xx.xx.xx` (D §3.8); exactly two IT-systems at a time, of different roles (the
  Master and the Afsender), with `SystemNavn`, without `SystemURI` or `Indeks`, named by UUID (D §3.9); a
  Sikkerhedsprofil named by UUID, with its `Indeks` (D §3.10).

Checked for both: every relation names its ReferenceID (G §9.1) and its Type (the Type rows of S §3.6–§3.13 and
D §3.5–§3.10); one relation per type, role and Indeks at a time, the key the anvisninger give a relation (their
Indeks rows); every entry has a Virkning
(G §11) that starts at a real time, never at a `GraenseIndikator`, and whose actor is a `Bruger` or an `ItSystem`
(G §8.1, §11).

A document's roles: the material gives no role UUIDs for a document (the mapping's UUIDs are the case's, from KOMBIT's
sample client), so the document rules take each role as the request names it and tell roles apart only where the
anvisning's shape does: the Primær klasse is the one Dokumentklasse without Indeks (the other classes need one), and
the IT-system relations have two roles only. Not checked, for want of the UUIDs: that one Dokumentaktoer is the Ejer
(with its CVR number) and one the Ansvarlig, and which roles a Dokumentrelation may have; of "a document's Master
never changes" the index checks only that one of its two IT-system roles keeps its system. What needs the index's
content (referenced documents exist, a Master never changes) is checked by the index (`hub.sdi.local.index`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from lxml import etree

from hub.core import mappings

NS = {"sdi": "urn:oio:sts:sagdok:sagdokumentindeks:6", "sag": "urn:oio:sts:sagdok:sag:6",
      "si": "urn:oio:sts:sagdok:sagindeks:6", "di": "urn:oio:sts:sagdok:dokumentindeks:6",
      "gd": "urn:oio:sts:generelledefinitioner:6", "sd": "urn:oio:sagdok:3.0.0"}
EXACTLY_ONE = ("Ejer", "Ansvarlig", "Primær klasse", "Handlingsklasse", "Master", "Afsender")
KLE_NUMBER = re.compile(r"\d{2}\.\d{2}\.\d{2}")
CPR_URN = re.compile(r"urn:oio:cpr-nr:\d{10}")
PART_URN = re.compile(r"urn:oio:(cpr-nr:\d{10}|us:personid:\d{7}|udk:borgerid:\d{12}|cvr-nr:\d{8}|pnr:\d{10}"
                      r"|fuldtnavn:.+)")
ACTOR_TYPES = ("Bruger", "ItSystem")
SAG = "anvisning sag v1.7"
DOKUMENT = "anvisning dokument v1.7"
GENERAL = "generel vejledning"
LISTS = ("AttributListe", "TilstandListe", "RelationListe")
EXTENSION = f"{{{NS['gd']}}}LokalUdvidelseListe"
LAST_CHANGED = f"{{{NS['gd']}}}SenestAendretTidspunkt"
EARLIEST = datetime.min.replace(tzinfo=UTC)
FOREVER = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str  # the element, as a readable path
    source: str  # the anvisning section


@cache
def roles() -> dict[str, str]:
    """Role UUID → role name."""
    data = mappings.table("sf1470-roles.json")
    return {uuid: name for name, uuid in data["roles"].items()}


# --- reading registrations and their Virkning periods (shared with the index) ---

def children(element: etree._Element) -> list[etree._Element]:
    """The element children, without comments and processing instructions."""
    return [child for child in element if isinstance(child.tag, str)]


def localname(element: etree._Element) -> str:
    return str(etree.QName(element).localname)


def flat(element: etree._Element, path: str = ".") -> str:
    """The text at `path`, its whitespace collapsed; empty when absent."""
    return " ".join(str(element.xpath(f"string({path})", namespaces=NS)).split())


def list_entries(liste: etree._Element) -> list[etree._Element]:
    """The entries of one list of a registration: its own children and those of its LokalUdvidelseListe, where the
    index's own attributes and relations live (SagIndeksEgenskaber, the IT-system relations, Sikkerhedsprofil)."""
    out: list[etree._Element] = []
    for child in children(liste):
        if child.tag == EXTENSION:
            out.extend(c for c in children(child) if c.tag != LAST_CHANGED)
        else:
            out.append(child)
    return out


def registration_entries(registration: etree._Element) -> list[etree._Element]:
    """Every attribute, state and relation entry of a registration."""
    return [entry for liste in children(registration) if localname(liste) in LISTS for entry in list_entries(liste)]


def relation_entries(registration: etree._Element) -> list[etree._Element]:
    return [entry for liste in children(registration) if localname(liste) == "RelationListe"
            for entry in list_entries(liste)]


def kind(entry: etree._Element) -> tuple[str, str, str]:
    """What an entry is an entry of: its element, role and Indeks (empty for attributes and states). The anvisninger
    key a relation by its type, role and Indeks; an update's entry follows the stored entries of the same kind."""
    return entry.tag, flat(entry, "gd:Rolle"), flat(entry, "gd:Indeks")


def virkning(entry: etree._Element) -> etree._Element | None:
    return next((child for child in children(entry) if localname(child) == "Virkning"), None)


def period(entry: etree._Element) -> tuple[datetime, datetime]:
    """When an entry is in effect: [from, to). An open start (which the rules refuse) is the earliest time, an open
    or missing end is forever; an entry without Virkning is in effect always."""
    found = virkning(entry)
    if found is None:
        return EARLIEST, FOREVER
    return (_instant(found.find(f"{{{NS['sd']}}}FraTidspunkt"), EARLIEST),
            _instant(found.find(f"{{{NS['sd']}}}TilTidspunkt"), FOREVER))


def _instant(tidspunkt: etree._Element | None, default: datetime) -> datetime:
    """A TidspunktType as a time: its TidsstempelDatoTid (a time without a zone read as UTC), else `default`."""
    stamp = flat(tidspunkt, "sd:TidsstempelDatoTid") if tidspunkt is not None else ""
    try:
        value = datetime.fromisoformat(stamp)
    except ValueError:
        return default
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def current(entry: etree._Element, now: datetime) -> bool:
    """Not ended: what the index searches, and what ties a document to a case."""
    return period(entry)[1] > now


def in_effect(entries: Iterable[etree._Element]) -> Iterator[tuple[datetime, list[etree._Element]]]:
    """At each time an entry starts or ends, the entries then in effect: enough to see every change in how many."""
    periods = [(period(entry), entry) for entry in entries]
    bounds = sorted({start for (start, _), _ in periods} | {end for (_, end), _ in periods if end < FOREVER})
    for at in bounds:
        yield at, [entry for (start, end), entry in periods if start <= at < end]


# --- the rules ---

@dataclass
class _Checks:
    """The findings about one case or document."""

    found: list[Finding] = field(default_factory=list)

    def need(self, condition: bool, rule: str, path: str, source: str) -> None:
        if not condition:
            self.found.append(Finding(rule, path, source))

    def result(self) -> list[Finding]:
        return list(dict.fromkeys(self.found))  # a rule broken by several entries is named once


def case_findings(sag: etree._Element) -> list[Finding]:
    """What an `sdi:SagIndeks` breaks of the anvisning; empty when it keeps every rule checked."""
    checks = _Checks()
    _registration_rules(checks, sag, "sag", "case", SAG)
    registration = sag.find(f"{{{NS['sag']}}}Registrering")
    if registration is None:
        return checks.result()
    properties = registration.xpath("sag:AttributListe/sag:Egenskaber", namespaces=NS)
    _one_line_rules(checks, properties, "sag", ("BrugervendtNoegle", "Sagsnummer", "Titel"), SAG)
    for entry in properties or [_NOTHING]:
        checks.need(flat(entry, "sag:BrugervendtNoegle") == flat(entry, "sag:Sagsnummer"),
                    "BrugervendtNoegle must be the Sagsnummer", "Egenskaber/BrugervendtNoegle", f"{SAG} §3.3")
    _progress_rules(checks, registration)
    index_properties = registration.xpath("sag:AttributListe/gd:LokalUdvidelseListe/si:SagIndeksEgenskaber",
                                          namespaces=NS)
    checks.need(bool(index_properties) and all(flat(p, "si:Foelsomhed") for p in index_properties),
                "Foelsomhed is required", "SagIndeksEgenskaber/Foelsomhed", f"{SAG} §3.5")
    relations = relation_entries(registration)
    _case_relation_rules(checks, relations)
    _shared_rules(checks, registration, relations, lambda r: roles().get(flat(r, "gd:Rolle")) in EXACTLY_ONE,
                  f"{SAG} §3.6–§3.13")
    return checks.result()


def document_findings(dokument: etree._Element) -> list[Finding]:
    """What an `sdi:DokumentIndeks` breaks of the anvisning; empty when it keeps every rule checked."""
    checks = _Checks()
    _registration_rules(checks, dokument, "di", "document", DOKUMENT)
    registration = dokument.find(f"{{{NS['di']}}}Registrering")
    if registration is None:
        return checks.result()
    properties = registration.xpath("di:AttributListe/di:Egenskaber", namespaces=NS)
    _one_line_rules(checks, properties, "di", ("BrugervendtNoegle", "Dokumentnummer", "Titel"), DOKUMENT)
    for entry in properties or [_NOTHING]:
        _document_property_rules(checks, entry)
    states = registration.xpath("di:TilstandListe/di:Fremdrift", namespaces=NS)
    checks.need(bool(states) and all(flat(s, "di:FremdriftStatusKode") for s in states),
                "FremdriftStatusKode is required", "TilstandListe/Fremdrift", f"{DOKUMENT} §3.4")
    relations = relation_entries(registration)
    for relation in relations:
        _DOCUMENT_RELATION_RULES.get(localname(relation), _no_rules)(checks, relation)
    _document_count_rules(checks, relations)
    _shared_rules(checks, registration, relations, _counted_document_relation, f"{DOKUMENT} §3.5–§3.10")
    return checks.result()


_NOTHING = etree.Element("nothing")  # stands for a missing Egenskaber, so that its fields are found missing


def _registration_rules(checks: _Checks, obj: etree._Element, prefix: str, noun: str, source: str) -> None:
    reg = f"{prefix}:Registrering"
    checks.need(bool(flat(obj, "sd:UUIDIdentifikator")), f"The {noun} has no UUID",
                f"{localname(obj)}/UUIDIdentifikator", f"{source} §3.1")
    checks.need(bool(flat(obj, f"{reg}/sd:Tidspunkt")), "The registration has no time", "Registrering/Tidspunkt",
                f"{source} §3.2")
    checks.need(flat(obj, f"{reg}/sd:LivscyklusKode") == "Importeret", "LivscyklusKode must be Importeret",
                "Registrering/LivscyklusKode", f"{source} §3.2")
    checks.need(bool(obj.xpath(f"{reg}/sd:BrugerRef/*", namespaces=NS)), "The registration names no BrugerRef",
                "Registrering/BrugerRef", f"{source} §3.2")


def _one_line_rules(checks: _Checks, properties: list[etree._Element], prefix: str, names: tuple[str, ...],
                    source: str) -> None:
    """Each name given, on one line, in every Egenskaber entry: an update of Egenskaber gives them again."""
    for entry in properties or [_NOTHING]:
        for name in names:
            values = [str(v) for v in entry.xpath(f"{prefix}:{name}/text()", namespaces=NS)]
            checks.need(bool(values and values[0].strip()), f"{name} is required", f"Egenskaber/{name}",
                        f"{source} §3.3")
            checks.need(not any("\n" in v or "\r" in v for v in values), f"{name} must be one line",
                        f"Egenskaber/{name}", f"{source} §3.3")


def _progress_rules(checks: _Checks, registration: etree._Element) -> None:
    progress = registration.xpath("sag:TilstandListe/sag:Fremdrift", namespaces=NS)
    states = sorted((period(p)[0], flat(p, "sag:FremdriftStatusKode")) for p in progress)
    has_start = any(state == "Opstaaet" for _, state in states)
    checks.need(has_start, "The Fremdrift history must have Opstaaet", "TilstandListe/Fremdrift", f"{SAG} §3.4")
    checks.need(not has_start or states[0][1] == "Opstaaet",
                "Opstaaet must be the first state of the Fremdrift history", "TilstandListe/Fremdrift", f"{SAG} §3.4")


def _case_relation_rules(checks: _Checks, relations: list[etree._Element]) -> None:
    by_role: dict[str, list[etree._Element]] = {}
    for relation in relations:
        name = roles().get(flat(relation, "gd:Rolle"))
        if name is not None:
            by_role.setdefault(name, []).append(relation)
    for role in EXACTLY_ONE:
        problem = _not_exactly(by_role.get(role, []), 1)
        checks.need(problem is None, f"Exactly one {role} ({problem})", f"RelationListe/{role}", f"{SAG} §3.6–§3.12")
    for party in by_role.get("Primær part", []):
        checks.need(bool(CPR_URN.fullmatch(flat(party, "gd:ReferenceID/sd:URNIdentifikator"))),
                    "The Primær part is named by urn:oio:cpr-nr:<CPR>, never a UUID",
                    "Sagspart[Primær part]/ReferenceID", f"{SAG} §3.7")
    for kle in by_role.get("Primær klasse", []):
        number = flat(kle, "gd:LokalUdvidelseListe/si:SagsklasseLokalUdvidelse/si:BrugervendtNoegle")
        checks.need(bool(KLE_NUMBER.fullmatch(number)),
                    "The Primær klasse's BrugervendtNoegle is its KLE number xx.xx.xx",
                    "Sagsklasse[Primær klasse]/BrugervendtNoegle", f"{SAG} §3.8")
    for post in (r for r in relations if localname(r) == "Journalpost"):
        checks.need(_by_uuid(post) or flat(post, "gd:ReferenceID/sd:URNIdentifikator") == "URN:Empty",
                    "A Journalpost names a document by its UUID, or a journalnotat by URN:Empty",
                    "Journalpost/ReferenceID", f"{SAG} §3.11")


def _document_property_rules(checks: _Checks, entry: etree._Element) -> None:
    source = f"{DOKUMENT} §3.3"
    kind_of_document = flat(entry, "di:Type")
    checks.need(bool(flat(entry, "di:Foelsomhed")), "Foelsomhed is required", "Egenskaber/Foelsomhed", source)
    checks.need(bool(kind_of_document), "Type is required", "Egenskaber/Type", source)
    checks.need(kind_of_document != "Brev", "Type is 'Brev, indgaaende' or 'Brev, udgaaende', never 'Brev'",
                "Egenskaber/Type", source)
    checks.need(kind_of_document != "Brev, indgaaende" or bool(flat(entry, "di:BrevDato")),
                "An incoming letter has its BrevDato", "Egenskaber/BrevDato", source)
    checks.need(bool(flat(entry, "di:VersionIdentifikator")) == bool(flat(entry, "di:UnderversionIdentifikator")),
                "UnderversionIdentifikator is given with VersionIdentifikator, and only then",
                "Egenskaber/UnderversionIdentifikator", source)


def _document_relation_rules(checks: _Checks, relation: etree._Element) -> None:
    checks.need(_by_uuid(relation), "A Dokumentrelation names a document by its UUID", "Dokumentrelation/ReferenceID",
                f"{DOKUMENT} §3.5")


def _document_actor_rules(checks: _Checks, actor: etree._Element) -> None:
    extension = "gd:LokalUdvidelseListe/di:DokumentaktoerLokalUdvidelse"
    checks.need(bool(flat(actor, f"{extension}/di:FuldtNavn")), "A Dokumentaktoer has its FuldtNavn",
                "Dokumentaktoer/FuldtNavn", f"{DOKUMENT} §3.6")
    checks.need(_by_uuid(actor) or bool(flat(actor, f"{extension}/di:BrugervendtNoegle")),
                "A Dokumentaktoer named by a URN has its BrugervendtNoegle", "Dokumentaktoer/BrugervendtNoegle",
                f"{DOKUMENT} §3.6")


def _document_party_rules(checks: _Checks, party: etree._Element) -> None:
    source = f"{DOKUMENT} §3.7"
    extension = "gd:LokalUdvidelseListe/di:DokumentpartLokalUdvidelse"
    checks.need(bool(PART_URN.fullmatch(flat(party, "gd:ReferenceID/sd:URNIdentifikator"))),
                "A Dokumentpart is named by a cpr-nr, us:personid, udk:borgerid, cvr-nr, pnr or fuldtnavn URN, never "
                "a UUID", "Dokumentpart/ReferenceID", source)
    checks.need(bool(flat(party, f"{extension}/di:FuldtNavn")), "A Dokumentpart has its FuldtNavn",
                "Dokumentpart/FuldtNavn", source)
    checks.need(not party.xpath(f"{extension}/di:BrugervendtNoegle", namespaces=NS),
                "A Dokumentpart has no BrugervendtNoegle", "Dokumentpart/BrugervendtNoegle", source)


def _document_class_rules(checks: _Checks, klasse: etree._Element) -> None:
    source = f"{DOKUMENT} §3.8"
    extension = "gd:LokalUdvidelseListe/di:DokumentklasseLokalUdvidelse"
    number = flat(klasse, f"{extension}/di:BrugervendtNoegle")
    checks.need(bool(number), "A Dokumentklasse has its BrugervendtNoegle", "Dokumentklasse/BrugervendtNoegle", source)
    checks.need(_by_uuid(klasse) or bool(flat(klasse, f"{extension}/di:Klassetitel")),
                "A Dokumentklasse named by a URN has its Klassetitel", "Dokumentklasse/Klassetitel", source)
    if not flat(klasse, "gd:Indeks"):  # the Primær klasse
        checks.need(bool(KLE_NUMBER.fullmatch(number)),
                    "The Primær klasse's BrugervendtNoegle is its KLE number xx.xx.xx",
                    "Dokumentklasse[Primær klasse]/BrugervendtNoegle", source)
        checks.need(_by_uuid(klasse), "The Primær klasse is named by the UUID of its KLE emne",
                    "Dokumentklasse[Primær klasse]/ReferenceID", source)


def _document_system_rules(checks: _Checks, system: etree._Element) -> None:
    source = f"{DOKUMENT} §3.9"
    checks.need(_by_uuid(system), "An IT-system is named by its UUID", "DokumentitsystemRelation/ReferenceID", source)
    checks.need(bool(flat(system, "di:SystemNavn")), "An IT-system has its SystemNavn",
                "DokumentitsystemRelation/SystemNavn", source)
    checks.need(not flat(system, "di:SystemURI"), "An IT-system has no SystemURI",
                "DokumentitsystemRelation/SystemURI", source)
    checks.need(not flat(system, "gd:Indeks"), "An IT-system has no Indeks", "DokumentitsystemRelation/Indeks",
                source)


def _document_profile_rules(checks: _Checks, profile: etree._Element) -> None:
    source = f"{DOKUMENT} §3.10"
    checks.need(_by_uuid(profile), "A Sikkerhedsprofil is named by UUID", "Sikkerhedsprofil/ReferenceID", source)
    checks.need(bool(flat(profile, "gd:Indeks")), "A Sikkerhedsprofil has its Indeks", "Sikkerhedsprofil/Indeks",
                source)


def _no_rules(checks: _Checks, relation: etree._Element) -> None:
    """A relation the anvisning gives no rules of its own."""


_DOCUMENT_RELATION_RULES: dict[str, Callable[[_Checks, etree._Element], None]] = {
    "Dokumentrelation": _document_relation_rules, "Dokumentaktoer": _document_actor_rules,
    "Dokumentpart": _document_party_rules, "Dokumentklasse": _document_class_rules,
    "DokumentitsystemRelation": _document_system_rules, "Sikkerhedsprofil": _document_profile_rules}


def _document_count_rules(checks: _Checks, relations: list[etree._Element]) -> None:
    primary = [r for r in relations if _counted_document_relation(r) and localname(r) == "Dokumentklasse"]
    problem = _not_exactly(primary, 1)
    checks.need(problem is None, f"Exactly one Primær klasse, the Dokumentklasse without Indeks ({problem})",
                "RelationListe/Dokumentklasse[Primær klasse]", f"{DOKUMENT} §3.8")
    systems = [r for r in relations if localname(r) == "DokumentitsystemRelation"]
    problem = _not_exactly(systems, 2)
    checks.need(problem is None, f"Exactly one Master and one Afsender: two IT-systems of different roles ({problem})",
                "RelationListe/DokumentitsystemRelation", f"{DOKUMENT} §3.9")


def _counted_document_relation(relation: etree._Element) -> bool:
    """The relations `_document_count_rules` count: the IT-systems, and the Dokumentklasse without Indeks."""
    name = localname(relation)
    return name == "DokumentitsystemRelation" or (name == "Dokumentklasse" and not flat(relation, "gd:Indeks"))


def _shared_rules(checks: _Checks, registration: etree._Element, relations: list[etree._Element],
                  counted: Callable[[etree._Element], bool], key_source: str) -> None:
    """The rules a case and a document share. `counted` tells the relations an exact count already covers."""
    for relation in relations:
        checks.need(bool(relation.xpath("gd:ReferenceID/*", namespaces=NS)), "Every relation names its ReferenceID",
                    f"{localname(relation)}/ReferenceID", f"{GENERAL} §9.1")
        checks.need(bool(relation.xpath("gd:Type/*", namespaces=NS)), "Every relation names its Type",
                    f"{localname(relation)}/Type", key_source)
    groups: dict[tuple[str, str, str], list[etree._Element]] = {}
    for relation in relations:
        if not counted(relation):
            groups.setdefault(kind(relation), []).append(relation)
    for (tag, _, _), group in groups.items():
        most = max((len(active) for _, active in in_effect(group)), default=0)
        checks.need(most <= 1, f"One relation per type, role and Indeks at a time (found {most})",
                    f"RelationListe/{etree.QName(tag).localname}", key_source)
    for entry in registration_entries(registration):
        checks.need(virkning(entry) is not None, "Every attribute, state and relation has a Virkning",
                    f"{localname(entry)}/Virkning", f"{GENERAL} §11")
    for found in registration.xpath(".//*[local-name()='Virkning']"):
        where = localname(found.getparent())
        checks.need(bool(found.xpath("sd:FraTidspunkt/sd:TidsstempelDatoTid", namespaces=NS)),
                    "A Virkning starts at a real time, not a GraenseIndikator", f"{where}/Virkning/FraTidspunkt",
                    f"{GENERAL} §8.1")
        checks.need(flat(found, "sd:AktoerTypeKode") in ACTOR_TYPES,
                    "A Virkning's AktoerTypeKode is Bruger or ItSystem", f"{where}/Virkning/AktoerTypeKode",
                    f"{GENERAL} §11")


def _not_exactly(entries: list[etree._Element], count: int) -> str | None:
    """How `entries` fail to be `count` entries of different kinds in effect at every time from the first: "found N"
    (and from when, if not from the first); None when they never fail."""
    if not entries:
        return "found 0"
    moments = list(in_effect(entries))
    for at, active in moments:
        if len(active) != count or len({kind(a) for a in active}) != count:
            since = "" if at == moments[0][0] else f" from {at.isoformat()}"
            return f"found {len(active)}{since}" if count == 1 else \
                f"found {len(active)} of {len({kind(a) for a in active})} roles{since}"
    return None


def _by_uuid(relation: etree._Element) -> bool:
    return bool(relation.xpath("gd:ReferenceID/sd:UUIDIdentifikator", namespaces=NS))
