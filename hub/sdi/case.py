"""A citizen's course of care as one case (sag) in the index, each meeting a document on it (pure).

The hub keeps, per case, what it has told the index (`CaseState`), and `next_step` says the one request that
brings the index closer to a meeting's facts, with the state after it. The caller sends it, keeps the new state,
and asks again until nothing is left; so a retry after a failure resends only the step that failed, and the
requests of a case go out in order. Requests are zeep's keyword arguments for the operation; extension elements
(`LokalUdvidelseListe`, an `xsd:any`) are `Ext` values, which `hub.sdi.client` renders as their declared types.

What the index gets (KOMBIT's anvisning for sag and dokument, v1.7; the choices are the hub's):
- the case: `Sagsnummer` = `BrugervendtNoegle` (`VID-` and its UUID's first twelve hex digits); the title is the
  KLE emne's, so it says what the case is about without clinical detail; Foelsomhed `FOELSOMME_PERSONOPLYSNINGER`
  (health and social data); Fremdrift `Opstaaet` from the first booking; Ejer the municipality, Ansvarlig the
  unit (by the appointment's responsible organisation, else the configured one), Primær klasse the KLE emne,
  Handlingsklasse the configured handlingsfacet, Primær part `urn:oio:cpr-nr:…`, Master and Afsender the hub;
- each meeting: a document of type `Brev, udgaaende` titled for the citizen ("Indkaldelse til videomøde 12. marts
  2027"; moved, held, cancelled and not held each retitle it), Fremdrift `Endeligt`, tied to the case by a
  Journalpost `Tilakteret`; a meeting deleted at the source (`entered-in-error`) has its Journalpost ended and is
  removed (`fjern`), and a case left with no meeting is removed too;
- Borgerblikket (`hub.sdi.borgerblikket`): a case that must not be shown gets the Visningsklasse "Visning undtaget
  for borger". A citizen below the age for the case's area: until the day they reach it when history is shown
  (the Virkning ends then), and for good when it is not, in which case their meetings from that day on go on a new
  case. A KLE area the municipality has not opened to citizens on the day the case is created: for good.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from hub.sdi.borgerblikket import AgePolicy, Openings
from hub.sdi.kle import Emne
from hub.sdi.meeting import MeetingFacts

DANISH = ZoneInfo("Europe/Copenhagen")
NAMESPACE = uuid.UUID("5d0c4b8e-3f7a-4e52-9a61-0b8f2c7d9e14")  # the hub's UUIDs for cases and documents
SI, DI = "{urn:oio:sts:sagdok:sagindeks:6}", "{urn:oio:sts:sagdok:dokumentindeks:6}"
SENSITIVE = "FOELSOMME_PERSONOPLYSNINGER"
MONTHS = ("januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober",
          "november", "december")
ALWAYS = "always"
DELETED = "entered-in-error"


@dataclass(frozen=True)
class Ext:
    """An element in a `LokalUdvidelseListe`, by its qualified name."""

    element: str
    value: dict[str, Any]


@dataclass(frozen=True)
class Klasse:
    uuid: str
    number: str  # its BrugervendtNoegle
    title: str


@dataclass(frozen=True)
class IndexConfig:
    """The municipality's side of the index: who owns the cases, and the classes and roles by their UUIDs."""

    cvr: str
    municipality: str
    organisation: str | None  # the municipality in FK Organisation; None: named by its CVR number
    unit: tuple[str, str]  # the responsible unit (Ansvarlig): UUID, name
    units: dict[str, tuple[str, str]]  # a FHIR Organization reference → its unit
    itsystem: str  # the hub's it-system instance (Master and Afsender)
    system_name: str
    roles: dict[str, str]  # role name → UUID
    types: dict[str, str]  # relation type name → UUID
    handlingsfacet: Klasse
    visningsklasse: Klasse
    kle_classes: dict[str, str]  # KLE number → its class in FK Klassifikation
    age: AgePolicy = field(default_factory=AgePolicy)
    openings: Openings = field(default_factory=Openings)


@dataclass
class DocumentState:
    uuid: str
    number: str
    index: str  # its Journalpost's Indeks on the case
    title: str
    linked: bool = False  # the case's Journalpost points at it
    removed: bool = False


@dataclass
class CaseState:
    key: str
    uuid: str
    number: str
    kle: str
    kle_title: str
    created: str  # ISO time of the first booking
    hidden_until: str | None = None  # None: shown; an ISO date; or ALWAYS
    imported: bool = False
    documents: dict[str, DocumentState] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseState:
        documents = {k: DocumentState(**v) for k, v in data.get("documents", {}).items()}
        return cls(**{**data, "documents": documents})


@dataclass(frozen=True)
class Step:
    operation: str  # importer | opdater | fjern
    body: dict[str, Any]
    what: str  # for the delivery's log and error
    after: CaseState | None  # the state once the index has it; None: the case is gone from the index


def case_key(facts: MeetingFacts, emne: Emne, age: AgePolicy, on: date) -> str:
    """The case a meeting belongs to: its course of care, else the citizen and emne; when history from before the
    age is not shown, meetings from the day the citizen reaches it belong to a new case."""
    base = facts.course or f"cpr:{facts.cpr}|kle:{emne.number}"
    if not age.show_history_before_age and on >= age.shown_from(facts.cpr, emne.number):
        return base + "|from-age"
    return base


def new_case(key: str, facts: MeetingFacts, emne: Emne, cfg: IndexConfig, now: datetime) -> CaseState:
    case_uuid = str(uuid.uuid5(NAMESPACE, f"sag|{cfg.cvr}|{key}"))
    today = now.astimezone(DANISH).date()
    hidden: str | None = None
    if cfg.age.hidden(facts.cpr, emne.number, today):
        hidden = cfg.age.shown_from(facts.cpr, emne.number).isoformat() if cfg.age.show_history_before_age \
            else ALWAYS
    if cfg.cvr in cfg.openings.dates and not cfg.openings.opened(cfg.cvr, emne.number, today):
        hidden = ALWAYS
    return CaseState(key, case_uuid, "VID-" + case_uuid.replace("-", "")[:12].upper(), emne.number, emne.title,
                     now.isoformat(), hidden)


def document_title(facts: MeetingFacts) -> str:
    """The meeting as the citizen may read it: the day, and what became of it; never its clinical content."""
    day = facts.start.astimezone(DANISH)
    when = f"{day.day}. {MONTHS[day.month - 1]} {day.year}"
    return {"cancelled": f"Aflyst: videomøde {when}", "fulfilled": f"Afholdt videomøde {when}",
            "noshow": f"Videomøde {when} blev ikke holdt"}.get(facts.status, f"Indkaldelse til videomøde {when}")


def next_step(state: CaseState, facts: MeetingFacts, cfg: IndexConfig, now: datetime) -> Step | None:
    """The next request that brings the index to the meeting's facts, or None when it has them."""
    doc = state.documents.get(facts.appointment)
    if facts.status == DELETED:
        return _removal(state, facts.appointment, cfg, now)
    if doc is None:
        doc = _new_document(state, facts, cfg)
        if not state.imported:
            after = replace(state, imported=True, documents={**state.documents, facts.appointment: replace(
                doc, linked=True)})
            return Step("importer", {"_value_1": [{"DokumentIndeks": _document(doc, state, cfg, now)},
                                                  {"SagIndeks": _case(after, facts, cfg, now)}]},
                        "import the case and its first meeting", after)
        return Step("importer", {"_value_1": [{"DokumentIndeks": _document(doc, state, cfg, now)}]},
                    "import the meeting", _with(state, facts.appointment, doc))
    if not doc.linked:
        return Step("opdater", {"_value_1": [{"OpdaterSagIndeks": _journalpost(state, doc, cfg, now, ended=False)}]},
                    "tie the meeting to its case", _with(state, facts.appointment, replace(doc, linked=True)))
    title = document_title(facts)
    if title != doc.title:
        changed = replace(doc, title=title)
        return Step("opdater", {"_value_1": [{"OpdaterDokumentIndeks": {
            "UUIDIdentifikator": doc.uuid, "AttributListe": {"Egenskaber": [_document_properties(changed, cfg, now)]},
            "Tidspunkt": now}}]}, "retitle the meeting", _with(state, facts.appointment, changed))
    return None


def _removal(state: CaseState, appointment: str, cfg: IndexConfig, now: datetime) -> Step | None:
    doc = state.documents.get(appointment)
    if doc is None or doc.removed:
        return None
    if not state.imported:  # nothing of it reached the index
        return None
    others = [d for k, d in state.documents.items() if k != appointment and not d.removed]
    if not others:
        return Step("fjern", {"SagUuid": [{"UUIDIdentifikator": state.uuid}]},
                    "remove the case of a meeting deleted at the source", None)
    if doc.linked:
        return Step("opdater", {"_value_1": [{"OpdaterSagIndeks": _journalpost(state, doc, cfg, now, ended=True)}]},
                    "end the Journalpost of a meeting deleted at the source",
                    _with(state, appointment, replace(doc, linked=False)))
    # fjern names no document by UUID: its search finds it by its BrugervendtNoegle, unique in the municipality
    search = {"AttributListe": {"Egenskaber": [{"BrugervendtNoegle": doc.number}]}, "TilstandListe": {},
              "RelationListe": {}}
    return Step("fjern", {"SoegUdtryk": {"_value_1": [{"SoegDokument": [search]}]}},
                "remove a meeting deleted at the source", _with(state, appointment, replace(doc, removed=True)))


def _with(state: CaseState, appointment: str, doc: DocumentState) -> CaseState:
    return replace(state, documents={**state.documents, appointment: doc})


def _new_document(state: CaseState, facts: MeetingFacts, cfg: IndexConfig) -> DocumentState:
    doc_uuid = str(uuid.uuid5(NAMESPACE, f"dokument|{cfg.cvr}|{facts.appointment}"))
    return DocumentState(doc_uuid, "VID-D-" + doc_uuid.replace("-", "")[:12].upper(), str(len(state.documents) + 1),
                         document_title(facts))


# --- the index's elements ---------------------------------------------------------------------------------


def _at(moment: datetime | date) -> dict[str, Any]:
    if isinstance(moment, datetime):
        return {"TidsstempelDatoTid": moment}
    return {"TidsstempelDatoTid": datetime.combine(moment, time(), DANISH)}


def _virkning(cfg: IndexConfig, since: datetime, until: datetime | date | None = None) -> dict[str, Any]:
    return {"FraTidspunkt": _at(since),
            "TilTidspunkt": _at(until) if until is not None else {"GraenseIndikator": True},
            "AktoerRef": {"URNIdentifikator": f"urn:oio:it-system-uuid:{cfg.itsystem}"}, "AktoerTypeKode": "ItSystem"}


def _reference(value: str) -> dict[str, str]:
    return {"URNIdentifikator": value} if value.startswith("urn:") else {"UUIDIdentifikator": value}


def _relation(cfg: IndexConfig, since: datetime, role: str, kind: str, reference: str,
              extension: Ext | None = None, index: str | None = None, until: datetime | date | None = None,
              ) -> dict[str, Any]:
    relation: dict[str, Any] = {"Virkning": _virkning(cfg, since, until),
                                "Rolle": {"UUIDIdentifikator": cfg.roles[role]},
                                "Type": {"UUIDIdentifikator": cfg.types[kind]}}
    if index is not None:
        relation["Indeks"] = index
    relation["ReferenceID"] = _reference(reference)
    if extension is not None:
        relation["LokalUdvidelseListe"] = {"_value_1": [extension]}
    return relation


def _itsystems(cfg: IndexConfig, since: datetime, element: str) -> list[Ext]:
    return [Ext(element, {**_relation(cfg, since, role, "ItSystem", cfg.itsystem), "SystemNavn": cfg.system_name})
            for role in ("Master", "Afsender")]


def _owner(cfg: IndexConfig, since: datetime) -> dict[str, Any]:
    reference = cfg.organisation or f"urn:oio:cvr-nr:{cfg.cvr}"
    details = {"FuldtNavn": cfg.municipality, "CVR-Nummer": cfg.cvr}
    if reference.startswith("urn:"):  # the anvisning asks for a BrugervendtNoegle with a URN reference
        details = {"BrugervendtNoegle": cfg.cvr, **details}
    return _relation(cfg, since, "Ejer", "Organisation", reference, Ext(SI + "SagsaktoerLokalUdvidelse", details))


def _klasse(cfg: IndexConfig, since: datetime, role: str, klasse: Klasse, facet: str, index: str | None = None,
            until: datetime | date | None = None) -> dict[str, Any]:
    return _relation(cfg, since, role, "Klasse", klasse.uuid, Ext(SI + "SagsklasseLokalUdvidelse", {
        "Facettitel": facet, "Klassetitel": klasse.title, "BrugervendtNoegle": klasse.number}), index, until)


def _case(state: CaseState, facts: MeetingFacts, cfg: IndexConfig, now: datetime) -> dict[str, Any]:
    created = datetime.fromisoformat(state.created)
    unit_uuid, unit_name = cfg.units.get(facts.responsible_organization or "", cfg.unit)
    emne = Klasse(cfg.kle_classes[state.kle], state.kle, state.kle_title)
    classes = [_klasse(cfg, created, "Primær klasse", emne, "KLE Emneplan"),
               _klasse(cfg, created, "Handlingsklasse", cfg.handlingsfacet, "KLE Handlingsfacetter")]
    if state.hidden_until is not None:
        until = None if state.hidden_until == ALWAYS else date.fromisoformat(state.hidden_until)
        classes.append(_klasse(cfg, created, "Visningsklasse", cfg.visningsklasse, "Visningsklasse", "1", until))
    journalposts = [_journalpost_relation(cfg, created, doc) for doc in state.documents.values() if doc.linked]
    return {
        "UUIDIdentifikator": state.uuid,
        "Registrering": [{
            "Tidspunkt": now, "LivscyklusKode": "Importeret",
            "BrugerRef": {"URNIdentifikator": f"urn:oio:it-system-uuid:{cfg.itsystem}"},
            "AttributListe": {
                "Egenskaber": [{"Virkning": _virkning(cfg, created), "BrugervendtNoegle": state.number,
                                "Sagsnummer": state.number, "Titel": state.kle_title}],
                "LokalUdvidelseListe": {"_value_1": [Ext(SI + "SagIndeksEgenskaber", {
                    "Virkning": _virkning(cfg, created), "Foelsomhed": SENSITIVE, "OprettetTidspunkt": created})]}},
            "TilstandListe": {"Fremdrift": [{"Virkning": _virkning(cfg, created), "FremdriftStatusKode": "Opstaaet"}]},
            "RelationListe": {
                "Sagsaktoer": [_owner(cfg, created), _relation(
                    cfg, created, "Ansvarlig", "OrgEnhed", unit_uuid,
                    Ext(SI + "SagsaktoerLokalUdvidelse", {"FuldtNavn": unit_name, "CVR-Nummer": cfg.cvr}))],
                "Sagsklasse": classes,
                "Sagspart": [_relation(cfg, created, "Primær part", "Person", f"urn:oio:cpr-nr:{facts.cpr}")],
                "Journalpost": journalposts,
                "LokalUdvidelseListe": {"_value_1": _itsystems(cfg, created, SI + "SagsitsystemRelation")}}}]}


def _journalpost_relation(cfg: IndexConfig, since: datetime, doc: DocumentState,
                          until: datetime | None = None) -> dict[str, Any]:
    return _relation(cfg, since, "Tilakteret", "Dokument", doc.uuid, index=doc.index, until=until)


def _journalpost(state: CaseState, doc: DocumentState, cfg: IndexConfig, now: datetime, ended: bool) -> dict[str, Any]:
    """An update of the case adding the meeting's Journalpost, or ending it (the anvisning's AM-02: a relation is
    removed by ending its Virkning)."""
    relation = _journalpost_relation(cfg, now, doc, now if ended else None)
    return {"UUIDIdentifikator": state.uuid, "RelationListe": {"Journalpost": [relation]}, "Tidspunkt": now}


def _document_properties(doc: DocumentState, cfg: IndexConfig, since: datetime) -> dict[str, Any]:
    return {"Virkning": _virkning(cfg, since), "BrugervendtNoegle": doc.number, "Titel": doc.title,
            "BrevDato": since.astimezone(DANISH).date(), "Dokumentnummer": doc.number, "Foelsomhed": SENSITIVE,
            "Type": "Brev, udgaaende"}


def _document(doc: DocumentState, state: CaseState, cfg: IndexConfig, now: datetime) -> dict[str, Any]:
    """A meeting's document: its own KLE emne (the case's) as Primær klasse, and the hub as Master and Afsender.
    No Dokumentpart: the citizen is the case's Primær part, and a Dokumentpart would need their full name."""
    emne = _relation(cfg, now, "Primær klasse", "Klasse", cfg.kle_classes[state.kle], Ext(
        DI + "DokumentklasseLokalUdvidelse", {"Klassetitel": state.kle_title, "BrugervendtNoegle": state.kle}))
    return {
        "UUIDIdentifikator": doc.uuid,
        "Registrering": [{
            "Tidspunkt": now, "LivscyklusKode": "Importeret",
            "BrugerRef": {"URNIdentifikator": f"urn:oio:it-system-uuid:{cfg.itsystem}"},
            "AttributListe": {"Egenskaber": [_document_properties(doc, cfg, now)]},
            "TilstandListe": {"Fremdrift": [{"Virkning": _virkning(cfg, now), "FremdriftStatusKode": "Endeligt"}]},
            "RelationListe": {
                "Dokumentklasse": [emne],
                "LokalUdvidelseListe": {"_value_1": _itsystems(cfg, now, DI + "DokumentitsystemRelation")}}}]}
