"""What the local case index holds (cases, documents, which cases each document belongs to) and the hub's policies
where KOMBIT documents none: how `opdater` merges an update by Virkning, what a search expression matches, and what
`fjern` removes. `hub.sdi.local.service` is its SOAP edge.

Import: each `SagIndeks` and `DokumentIndeks` is kept or refused on its own, after the anvisning rules
(`hub.sdi.rules`) and the rules that need the index: a case's Master never changes (S §3.12), nor a document's, of
which the index, without role UUIDs for documents, can only see that one of its two IT-system roles keeps its system
(D §3.9); a case's current Journalposts and a document's current Dokumentrelationer name documents the index holds
(S §3.11, D §3.5), so a request's documents are kept before its cases. An object carries one Registrering. A
document belongs to the cases whose current Journalposts name it (D §2.1: one document, many cases). The index stamps
each registration it keeps with its own `StsTidspunkt` (S, D §3.2) and keeps no comments.

Merge (opdater): the update's `Tidspunkt` and `NoteTekst` become the registration's; `LivscyklusKode` and `BrugerRef`
stay as imported (S, D §3.2). Every entry of the update's AttributListe, TilstandListe and RelationListe (and of their
LokalUdvidelseListe) is merged into the stored entries of the same kind — the same element, and for a relation the
same role and Indeks, the key the anvisninger give a relation:
- a stored entry with the same Virkning start is replaced (a correction; this is how an entry is ended, AM-02);
- a stored entry still in effect when the update's entry starts is closed there (its TilTidspunkt becomes the new
  FraTidspunkt), so a history grows: a case imported `Opstaaet`, updated `Afsluttet`, keeps both states;
- a stored entry that starts within the update's entry's period is superseded and dropped;
- other stored entries stay, and the update's entry is added.
The merged registration must keep every rule an import keeps, else the update is refused with 40 and nothing changes;
an unknown UUID is 44.

Search (fremsoeg, fjern): a `SoegUdtryk` combines its terms with its `operation` (AND unless OR); `NOT` is the objects
its expression does not match, among the kinds (cases, documents) that expression searches. `SoegSag` and
`SoegDokument` match cases and documents, `SoegSagsloeseDokumenter` documents that belong to no case. A search input
matches an object when each criterion it gives matches one current (not ended) entry of that object: in Egenskaber
`BrugervendtNoegle`, `Sagsnummer` (case), `Dokumentnummer` (document) and `Titel`, equal after whitespace is
collapsed; a Fremdrift's `FremdriftStatusKode`; any relation by its `ReferenceID` and, when given, its `Rolle` (a
Primær part's `urn:oio:cpr-nr:…`, say). The input type holds no UUID: a UUID is asked for by `SagUuid` and
`DokumentUuid`, whose objects join those the expression matches. Every other criterion (paging, SoegRegistrering,
SoegVirkning, the STS times, other fields, LokalUdvidelseListe, a relation's Virkning or Indeks) is refused with 40,
naming it. The answer carries each object's whole registration: `Filter` and `Sortering` are not applied.

Fjern: `SagUuid` and `SoegUdtryk` name what goes. A case goes with the documents it leaves without a case, unless
`EfterladSagsloeseDokumenter` is true; a document matched by `SoegDokument` or `SoegSagsloeseDokumenter` goes itself
(fjern has no DokumentUuid), and the cases that name it keep their Journalposts (ending them is the sender's task,
S §3.11). The index holds no ydelser, so `FjernOgsaaYdelse` removes nothing more. A UUID the index lacks, or a search
that matches nothing, is 44.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from hub.core import xml
from hub.sdi.contract import XSD
from hub.sdi.rules import (
    EXTENSION,
    LAST_CHANGED,
    LISTS,
    NS,
    Finding,
    case_findings,
    children,
    current,
    document_findings,
    flat,
    kind,
    list_entries,
    localname,
    period,
    registration_entries,
    relation_entries,
    roles,
    virkning,
)

OK, INVALID, NOT_FOUND, FAILED = 20, 40, 44, 50
SDI, SD = NS["sdi"], NS["sd"]
XS = {"xs": "http://www.w3.org/2001/XMLSchema"}
Key = tuple[str, str]  # (the UnikRetur Type, "Sag" or "Dokument"; the UUID)


@dataclass(frozen=True)
class Retur:
    status: int
    text: str
    uuid: str | None = None  # a UnikRetur, about one case or document
    kind: str = "Sag"


@dataclass(frozen=True)
class Found:
    """What fremsoeg answers: its status, and the registrations found by UUID."""

    retur: Retur
    cases: list[tuple[str, etree._Element]] = field(default_factory=list)
    documents: list[tuple[str, etree._Element]] = field(default_factory=list)


@dataclass(frozen=True)
class ObjectType:
    """What differs between a case and a document as the index handles them."""

    kind: str  # the UnikRetur Type
    noun: str
    element: str  # in an importer request
    update: str  # in an opdater request
    registration: str
    findings: Callable[[etree._Element], list[Finding]]
    names_documents: str  # the relation naming documents the index must hold
    names_documents_source: str


CASE = ObjectType("Sag", "case", f"{{{SDI}}}SagIndeks", f"{{{SDI}}}OpdaterSagIndeks", f"{{{NS['sag']}}}Registrering",
                  case_findings, f"{{{NS['sag']}}}Journalpost", "anvisning sag v1.7 §3.11")
DOCUMENT = ObjectType("Dokument", "document", f"{{{SDI}}}DokumentIndeks", f"{{{SDI}}}OpdaterDokumentIndeks",
                      f"{{{NS['di']}}}Registrering", document_findings,
                      f"{{{NS['di']}}}Dokumentrelation", "anvisning dokument v1.7 §3.5")
SEARCHES = {f"{{{SDI}}}SoegSag": CASE, f"{{{SDI}}}SoegDokument": DOCUMENT,
            f"{{{SDI}}}SoegSagsloeseDokumenter": DOCUMENT}
SEARCHED_PROPERTIES = {"BrugervendtNoegle", "Sagsnummer", "Dokumentnummer", "Titel"}


@dataclass
class CaseIndex:
    """The cases and documents the local index holds: UUID → the registration as last imported or merged."""

    cases: dict[str, etree._Element] = field(default_factory=dict)
    documents: dict[str, etree._Element] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # document UUID → the cases it belongs to
    masters: dict[str, str] = field(default_factory=dict)  # case UUID → its Master, which never changes
    order: dict[str, tuple[str, ...]] = field(default_factory=dict)  # `content_order`, for merged lists
    lock: threading.Lock = field(default_factory=threading.Lock)

    def importer(self, body: etree._Element) -> list[Retur]:
        items = [c for c in children(body) if c.tag in (CASE.element, DOCUMENT.element)]
        results: dict[int, Retur] = {}
        with self.lock:
            for number, item in sorted(enumerate(items), key=lambda p: p[1].tag != DOCUMENT.element):
                results[number] = self._import(CASE if item.tag == CASE.element else DOCUMENT, item)
        return [results[n] for n in range(len(items))] or \
            [Retur(INVALID, "The request imports nothing (SagIndeks or DokumentIndeks)")]

    def opdater(self, body: etree._Element) -> list[Retur]:
        with self.lock:
            out = [self._update(CASE if update.tag == CASE.update else DOCUMENT, update)
                   for update in children(body) if update.tag in (CASE.update, DOCUMENT.update)]
        return out or [Retur(INVALID, "The request updates nothing (OpdaterSagIndeks or OpdaterDokumentIndeks)")]

    def fremsoeg(self, body: etree._Element) -> Found:
        expression = body.find(f"{{{SDI}}}SoegUdtryk")
        with self.lock:
            refused = _refuse_unsupported(expression)
            if refused is not None:
                return Found(refused)
            matched = self._search(expression)
            cases = _named([str(u) for u in body.xpath("sdi:SagUuid/text()", namespaces=NS)], self.cases, matched,
                           CASE)
            documents = _named([str(u) for u in body.xpath("sdi:DokumentUuid/text()", namespaces=NS)],
                               self.documents, matched, DOCUMENT)
            return Found(Retur(OK, "OK"), [(u, copy.deepcopy(self.cases[u])) for u in cases],
                         [(u, copy.deepcopy(self.documents[u])) for u in documents])

    def fjern(self, body: etree._Element) -> list[Retur]:
        named = [str(u) for u in body.xpath("sdi:SagUuid/sd:UUIDIdentifikator/text()", namespaces=NS)]
        expression = body.find(f"{{{SDI}}}SoegUdtryk")
        leave = flat(body, "sdi:EfterladSagsloeseDokumenter") in ("true", "1")
        if not named and expression is None:
            return [Retur(INVALID, "The request removes nothing (SagUuid or SoegUdtryk)")]
        with self.lock:
            refused = _refuse_unsupported(expression)
            if refused is not None:
                return [refused]
            matched = self._search(expression)
            out: list[Retur] = []
            for uuid in named:
                out += self._remove_case(uuid, leave) if uuid in self.cases else \
                    [Retur(NOT_FOUND, f"The index has no case {uuid}", uuid)]
            for uuid in _named([], self.cases, matched, CASE):
                out += self._remove_case(uuid, leave)
            out += [self._remove_document(u) for u in _named([], self.documents, matched, DOCUMENT)]
        return out or [Retur(NOT_FOUND, "The search matched no case or document")]

    def _import(self, kind_of: ObjectType, item: etree._Element) -> Retur:
        uuid = flat(item, "sd:UUIDIdentifikator")
        registrations = item.findall(kind_of.registration)
        if len(registrations) != 1:
            return Retur(INVALID, f"An import carries one Registrering (found {len(registrations)}); send later ones "
                                  "with opdater", uuid, kind_of.kind)
        findings = kind_of.findings(item)
        if findings:
            return Retur(INVALID, _describe(findings), uuid, kind_of.kind)
        return self._keep(kind_of, uuid, copy.deepcopy(registrations[0]))

    def _update(self, kind_of: ObjectType, update: etree._Element) -> Retur:
        uuid = flat(update, "sd:UUIDIdentifikator")
        stored = self._objects(kind_of).get(uuid)
        if stored is None:
            return Retur(NOT_FOUND, f"The index has no {kind_of.noun} {uuid}", uuid, kind_of.kind)
        merged = merge(stored, update, self.order)
        findings = kind_of.findings(_wrap(kind_of, uuid, merged))
        if findings:
            return Retur(INVALID, f"The {kind_of.noun} as updated would break: {_describe(findings)}", uuid,
                         kind_of.kind)
        return self._keep(kind_of, uuid, merged)

    def _keep(self, kind_of: ObjectType, uuid: str, registration: etree._Element) -> Retur:
        """Keep a registration that keeps the anvisning rules, unless it breaks those that need the index."""
        problem = self._missing_documents(kind_of, registration) or \
            (self._master_changed(uuid, registration) if kind_of is CASE else
             self._systems_changed(uuid, registration))
        if problem:
            return Retur(INVALID, problem, uuid, kind_of.kind)
        etree.strip_elements(registration, etree.Comment, with_tail=False)
        _stamp(registration)
        self._objects(kind_of)[uuid] = registration
        if kind_of is CASE:
            for master in _masters(registration):  # one: the rules and `_master_changed` saw to it
                self.masters.setdefault(uuid, master)
            self._tie(uuid, registration)
        return Retur(OK, "OK", uuid, kind_of.kind)

    def _missing_documents(self, kind_of: ObjectType, registration: etree._Element) -> str | None:
        missing = [u for u in _named_documents(kind_of, registration) if u not in self.documents]
        return f"The {kind_of.noun} names documents the index does not hold: {', '.join(missing)} " \
               f"({kind_of.names_documents_source})" if missing else None

    def _master_changed(self, uuid: str, registration: etree._Element) -> str | None:
        masters, earlier = _masters(registration), self.masters.get(uuid)
        if len(masters) > 1 or (earlier is not None and masters != {earlier}):
            return f"The case's Master is {earlier or sorted(masters)[0]}; a Master never changes (anvisning sag " \
                   "v1.7 §3.12)"
        return None

    def _systems_changed(self, uuid: str, registration: etree._Element) -> str | None:
        """A document's Master never changes either (D §3.9), but the index cannot tell it from the Afsender (no
        role UUIDs for a document): of its two IT-system roles, one must keep its system through the history."""
        systems = _systems(registration)
        stored = self.documents.get(uuid)
        for role, references in (_systems(stored) if stored is not None else {}).items():
            systems.setdefault(role, set()).update(references)
        if systems and all(len(references) > 1 for references in systems.values()):
            return "Both IT-systems of the document would change, and one of them is its Master: a Master never " \
                   "changes (anvisning dokument v1.7 §3.9)"
        return None

    def _tie(self, case: str, registration: etree._Element) -> None:
        """Record which documents the case's current Journalposts name."""
        for cases in self.members.values():
            cases.discard(case)
        for document in _named_documents(CASE, registration):
            self.members.setdefault(document, set()).add(case)

    def _remove_case(self, uuid: str, leave: bool) -> list[Retur]:
        del self.cases[uuid]
        self.masters.pop(uuid, None)
        out = [Retur(OK, "OK", uuid)]
        for document, cases in list(self.members.items()):
            if uuid in cases:
                cases.discard(uuid)
                if not cases and not leave and document in self.documents:
                    out.append(self._remove_document(document))
        return out

    def _remove_document(self, uuid: str) -> Retur:
        del self.documents[uuid]
        self.members.pop(uuid, None)
        return Retur(OK, "OK", uuid, DOCUMENT.kind)

    def _objects(self, kind_of: ObjectType) -> dict[str, etree._Element]:
        return self.cases if kind_of is CASE else self.documents

    def _search(self, expression: etree._Element | None) -> set[Key]:
        if expression is None:
            return set()
        return _Search(self.cases, self.documents, self.members, datetime.now(UTC)).run(expression)


def content_order(store: Path) -> dict[str, tuple[str, ...]]:
    """The order the contract gives the children of each list of a registration (a case's and a document's
    AttributListe, TilstandListe, RelationListe), by the list's tag, read from the XSDs in the store: a merged list
    is put in this order, as the answers must be valid."""
    order: dict[str, tuple[str, ...]] = {}
    for name in ("Sag.xsd", "DokumentIndeks.xsd"):
        schema = xml.trusted_file(store / XSD / "6.0.STS-0" / name).getroot()
        target = schema.get("targetNamespace")
        for element in schema.xpath("xs:complexType[@name='RegistreringType']//xs:element", namespaces=XS):
            type_name = str(element.get("type", "")).partition(":")[2]
            declared = schema.xpath(f"xs:complexType[@name='{type_name}']/xs:sequence/xs:element", namespaces=XS)
            order[f"{{{target}}}{element.get('name')}"] = tuple(_declared(d, target) for d in declared)
    return order


def _declared(element: etree._Element, target: str | None) -> str:
    if element.get("name"):
        return f"{{{target}}}{element.get('name')}"
    prefix, _, name = str(element.get("ref", "")).rpartition(":")
    return f"{{{element.nsmap.get(prefix or None)}}}{name}"


# --- merge ---

def merge(stored: etree._Element, update: etree._Element, order: Mapping[str, tuple[str, ...]]) -> etree._Element:
    """The registration `stored` as an OpdaterSagIndeks or OpdaterDokumentIndeks leaves it (the module's policy)."""
    merged = copy.deepcopy(stored)
    update = copy.deepcopy(update)
    etree.strip_elements(update, etree.Comment, with_tail=False)
    _take_registration_fields(merged, update)
    for changes in children(update):
        if localname(changes) not in LISTS:
            continue
        target = merged.find(changes.tag)
        if target is None:
            target = etree.SubElement(merged, changes.tag)
        for entry in list_entries(changes):
            _apply(_container(target, entry.getparent() is not changes), copy.deepcopy(entry))
        rank = {tag: n for n, tag in enumerate(order.get(target.tag, ()))}
        target[:] = sorted(target, key=lambda c: rank.get(c.tag, len(rank)))
    return merged


def _take_registration_fields(merged: etree._Element, update: etree._Element) -> None:
    """The update's Tidspunkt and NoteTekst become the registration's."""
    time = merged.find(f"{{{SD}}}Tidspunkt")
    if time is not None:
        time.text = flat(update, "sdi:Tidspunkt")
    note, new_note = merged.find(f"{{{SD}}}NoteTekst"), update.find(f"{{{SD}}}NoteTekst")
    if note is not None:
        merged.remove(note)
    if new_note is not None:
        merged.insert(0, new_note)


def _container(target: etree._Element, extended: bool) -> etree._Element:
    """Where an entry goes: the list itself, or its LokalUdvidelseListe."""
    if not extended:
        return target
    extension = target.find(EXTENSION)
    return extension if extension is not None else etree.SubElement(target, EXTENSION)


def _apply(container: etree._Element, new: etree._Element) -> None:
    """Merge one entry into the stored entries of its kind (the module's policy)."""
    start, end = period(new)
    for old in [c for c in children(container) if kind(c) == kind(new)]:
        old_start, old_end = period(old)
        if old_start == start or start < old_start < end:
            container.remove(old)
        elif old_start < start < old_end:
            _end_where_begins(old, new)
    last = container.find(LAST_CHANGED)
    if last is not None:
        last.addprevious(new)
    else:
        container.append(new)


def _end_where_begins(old: etree._Element, new: etree._Element) -> None:
    """Close `old` where `new` begins: its TilTidspunkt becomes the new FraTidspunkt."""
    old_virkning, new_virkning = virkning(old), virkning(new)
    begins = new_virkning.find(f"{{{SD}}}FraTidspunkt") if new_virkning is not None else None
    if old_virkning is None or begins is None:
        return  # unreachable: only a real start closes an entry, and a stored entry has its Virkning
    end = copy.deepcopy(begins)
    end.tag = f"{{{SD}}}TilTidspunkt"
    until = old_virkning.find(f"{{{SD}}}TilTidspunkt")
    if until is not None:
        old_virkning.replace(until, end)
    else:
        old_virkning.insert(1, end)  # after its FraTidspunkt, which an entry that is closed has


def _stamp(registration: etree._Element) -> None:
    """The index's own time of the registration (StsTidspunkt), after the sender's fields."""
    sts = f"{{{NS['gd']}}}StsTidspunkt"
    for old in registration.findall(sts):
        registration.remove(old)
    stamp = etree.Element(sts)
    stamp.text = datetime.now(UTC).isoformat(timespec="milliseconds")
    first_list = next((c for c in children(registration) if localname(c) in LISTS), None)
    if first_list is not None:
        first_list.addprevious(stamp)
    else:
        registration.append(stamp)


def _wrap(kind_of: ObjectType, uuid: str, registration: etree._Element) -> etree._Element:
    """An object around a registration, as an import would carry it, for the rules to read."""
    obj = etree.Element(kind_of.element)
    etree.SubElement(obj, f"{{{SD}}}UUIDIdentifikator").text = uuid
    obj.append(copy.deepcopy(registration))
    return obj


def _masters(registration: etree._Element) -> set[str]:
    master = {name: key for key, name in roles().items()}["Master"]
    return {flat(r, "gd:ReferenceID") for r in relation_entries(registration) if flat(r, "gd:Rolle") == master}


def _systems(registration: etree._Element) -> dict[str, set[str]]:
    """A document's IT-systems through its history, by role."""
    out: dict[str, set[str]] = {}
    for relation in relation_entries(registration):
        if localname(relation) == "DokumentitsystemRelation":
            out.setdefault(flat(relation, "gd:Rolle"), set()).add(flat(relation, "gd:ReferenceID"))
    return out


def _named_documents(kind_of: ObjectType, registration: etree._Element) -> list[str]:
    """The documents the current relations of `names_documents` name by UUID."""
    now = datetime.now(UTC)
    return [flat(r, "gd:ReferenceID/sd:UUIDIdentifikator") for r in relation_entries(registration)
            if r.tag == kind_of.names_documents and current(r, now)
            and r.xpath("gd:ReferenceID/sd:UUIDIdentifikator", namespaces=NS)]


def _describe(findings: list[Finding]) -> str:
    return "; ".join(f"{f.rule} ({f.path}; {f.source})" for f in findings)


def _named(uuids: list[str], objects: Mapping[str, etree._Element], matched: set[Key],
           kind_of: ObjectType) -> list[str]:
    """The objects named by UUID (those the index holds), then those matched, each once, in the index's order."""
    found = [u for u in uuids if u in objects]
    found += [u for u in objects if (kind_of.kind, u) in matched]
    return list(dict.fromkeys(found))


# --- search ---

def _refuse_unsupported(expression: etree._Element | None) -> Retur | None:
    problems = _unsupported(expression) if expression is not None else []
    if not problems:
        return None
    return Retur(INVALID, "The local index does not support these search criteria: " + ", ".join(problems))


def _unsupported(expression: etree._Element) -> list[str]:
    """The criteria of a SoegUdtryk the index does not support, as paths."""
    out: list[str] = []
    for term in children(expression):
        name = localname(term)
        if name in ("NOT", "SoegUdtryk"):
            out += [f"{name}/{p}" for p in _unsupported(term)]
        elif term.tag in SEARCHES:
            out += [f"{name}/{p}" for p in _unsupported_input(term)]
    return list(dict.fromkeys(out))


def _unsupported_input(term: etree._Element) -> list[str]:
    out: list[str] = []
    for part in children(term):
        name = localname(part)
        if name not in LISTS:
            out.append(name)
            continue
        out += [f"{name}/LokalUdvidelseListe/SenestAendretTidspunkt"
                for _ in part.iterfind(f"{EXTENSION}/{LAST_CHANGED}")]
        for criterion in list_entries(part):
            if name != "RelationListe" and criterion.getparent() is not part:
                out.append(f"{name}/LokalUdvidelseListe/{localname(criterion)}")  # SagIndeksEgenskaber and the like
                continue
            allowed = _searched_fields(name, localname(criterion))
            out += [f"{name}/{localname(criterion)}/{localname(f)}" for f in children(criterion)
                    if localname(f) not in allowed]
    return out


def _searched_fields(liste: str, entry: str) -> set[str]:
    if liste == "RelationListe":
        return {"Rolle", "ReferenceID"}
    return SEARCHED_PROPERTIES if entry == "Egenskaber" else {"FremdriftStatusKode"} if entry == "Fremdrift" else set()


@dataclass(frozen=True)
class _Search:
    """A SoegUdtryk evaluated over what the index holds (the module's policy)."""

    cases: Mapping[str, etree._Element]
    documents: Mapping[str, etree._Element]
    members: Mapping[str, set[str]]
    now: datetime

    def run(self, expression: etree._Element) -> set[Key]:
        terms = [self._term(t) for t in children(expression) if localname(t) != "operation"]
        if flat(expression, "sdi:operation") == "OR":
            return set().union(*terms)
        return set.intersection(*terms) if terms else set()

    def _term(self, term: etree._Element) -> set[Key]:
        if localname(term) == "SoegUdtryk":
            return self.run(term)
        if localname(term) == "NOT":
            return self._all(_kinds(term)) - self.run(term)
        kind_of = SEARCHES[term.tag]
        objects = self.cases if kind_of is CASE else self.documents
        found = {(kind_of.kind, u) for u, registration in objects.items() if self._fits(registration, term)}
        if localname(term) == "SoegSagsloeseDokumenter":
            found = {(k, u) for k, u in found if not self.members.get(u)}
        return found

    def _all(self, kinds: set[str]) -> set[Key]:
        return {(CASE.kind, u) for u in self.cases if CASE.kind in kinds} | \
            {(DOCUMENT.kind, u) for u in self.documents if DOCUMENT.kind in kinds}

    def _fits(self, registration: etree._Element, term: etree._Element) -> bool:
        entries = [e for e in registration_entries(registration) if current(e, self.now)]
        return all(any(_fits_entry(e, criterion) for e in entries)
                   for part in children(term) if localname(part) in LISTS for criterion in list_entries(part))


def _fits_entry(entry: etree._Element, criterion: etree._Element) -> bool:
    """Each field the criterion gives is the entry's, after whitespace is collapsed."""
    return entry.tag == criterion.tag and all((found := entry.find(wanted.tag)) is not None and
                                              flat(found) == flat(wanted) for wanted in children(criterion))


def _kinds(expression: etree._Element) -> set[str]:
    """The kinds of object (Sag, Dokument) an expression searches."""
    out: set[str] = set()
    for term in children(expression):
        if term.tag in SEARCHES:
            out.add(SEARCHES[term.tag].kind)
        elif localname(term) in ("NOT", "SoegUdtryk"):
            out |= _kinds(term)
    return out
