"""MedCom FHIR messaging: what a message Bundle says about itself, and the Acknowledgement that answers it.

Pure functions over parsed Bundles. MedCom's messaging model (the messaging and acknowledgement packages):
the first entry is the MessageHeader; its `sender` and each `destination.receiver` are Organizations in the
Bundle, named by SOR and GLN identifiers; a receiver answers every message but an acknowledgement with an
Acknowledgement (`ok`, `transient-error` or `fatal-error`; an OperationOutcome says why when not ok), sent
back to the message's source. The hub answers for the receivers it routes to, as a VANS would.

What the Acknowledgement carries is read from the message and from the official material at run time: its
event from MedCom's acknowledgement MessageDefinition, its profiles from the acknowledgement package's
definitions, and the error codes of its OperationOutcome from the ConceptMap in `mappings/`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from hub.core.mappings import MAPPINGS
from hub.fhir.fhirpath import resolve_reference
from hub.fhir.packages import PackageSet

SOR_SYSTEM = "urn:oid:1.2.208.176.1.1"
# GS1's GLN: MedCom's profiles write `https://www.gs1.org/gln`, some senders `http://` (medcom/README.md).
GLN_SYSTEMS = ("https://www.gs1.org/gln", "http://www.gs1.org/gln")
ACK_BUNDLE = "http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/medcom-messaging-acknowledgement"
ACK_HEADER = "http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/medcom-messaging-acknowledgementHeader"
ACK_OUTCOME = "http://medcomfhir.dk/ig/acknowledgement/StructureDefinition/medcom-acknowledgement-operationoutcome"
ACK_DEFINITION = "http://medcomfhir.dk/ig/messagedefinitions/MessageDefinition/MedComAcknowledgementMessageDefinition"
PROVENANCE = "http://medcomfhir.dk/ig/messaging/StructureDefinition/medcom-messaging-provenance"
ORGANIZATION = "http://medcomfhir.dk/ig/messaging/StructureDefinition/medcom-messaging-organization"
DESTINATION_USE = "http://medcomfhir.dk/ig/messaging/StructureDefinition/medcom-messaging-destinationUseExtension"
ACTIVITY_CODES = "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-activityCodes"


class NotAMessage(ValueError):
    """The Bundle is not a message the hub can identify (no MessageHeader first, no ids): nothing to answer."""


@dataclass(frozen=True)
class Party:
    """An organisation a message names: its Organization resource and the keys routing knows it by."""

    organization: dict[str, Any] | None
    endpoint: str | None  # `destination.endpoint` or `source.endpoint`
    keys: tuple[str, ...]  # `sor:…` and `gln:…`

    @property
    def label(self) -> str:
        return ", ".join(self.keys) or (self.endpoint or "unnamed")


@dataclass(frozen=True)
class MessageInfo:
    """What a MedCom message Bundle says about itself."""

    bundle: dict[str, Any]
    bundle_id: str
    header: dict[str, Any]
    header_id: str
    event: tuple[str | None, str | None]  # (system, code)
    sender: Party
    receivers: tuple[Party, ...]  # the primary destinations (MedCom's destinationUse), else all
    source_endpoint: str | None
    response: dict[str, Any] | None = None  # an acknowledgement's `response`

    @property
    def event_code(self) -> str | None:
        return self.event[1]

    @property
    def key(self) -> str:
        """What makes a message the same message again: its sender and its MessageHeader id."""
        return f"fhir:{self.sender.keys[0] if self.sender.keys else ''}:{self.header_id}"


def organisation_keys(organisation: str | None) -> frozenset[str]:
    """A client's organisation (`system|value`) as the routing keys a message names parties by: its SOR or GLN
    (a CVR number names no MedCom party)."""
    system, _, value = (organisation or "").partition("|")
    if system == SOR_SYSTEM and value:
        return frozenset({f"sor:{value}"})
    if system in GLN_SYSTEMS and value:
        return frozenset({f"gln:{value}"})
    return frozenset()


def party_keys(organization: dict[str, Any] | None) -> tuple[str, ...]:
    """The routing keys of an Organization: `sor:<SOR id>` and `gln:<GLN>`, in that order."""
    keys: list[str] = []
    for ident in (organization or {}).get("identifier", []) or []:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        if ident.get("system") == SOR_SYSTEM:
            keys.insert(0, f"sor:{ident['value']}")
        elif ident.get("system") in GLN_SYSTEMS:
            keys.append(f"gln:{ident['value']}")
    return tuple(keys)


def _party(bundle: dict[str, Any], reference: Any, endpoint: Any) -> Party:
    ref = reference.get("reference") if isinstance(reference, dict) else None
    org = resolve_reference(bundle, ref) if isinstance(ref, str) else None
    return Party(org, endpoint if isinstance(endpoint, str) else None, party_keys(org))


def read_message(bundle: Any) -> MessageInfo:
    """The message's identity, parties and event; `NotAMessage` when it cannot be told what it is."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "message":
        raise NotAMessage("not a message Bundle (resourceType Bundle, type message)")
    entries = bundle.get("entry") or []
    first = entries[0] if entries and isinstance(entries[0], dict) else {}
    header = first.get("resource") if isinstance(first.get("resource"), dict) else None
    if header is None or header.get("resourceType") != "MessageHeader":
        raise NotAMessage("the first entry of a message Bundle must be its MessageHeader")
    if not isinstance(bundle.get("id"), str) or not isinstance(header.get("id"), str):
        raise NotAMessage("a message Bundle and its MessageHeader must have ids")
    event = header.get("eventCoding") if isinstance(header.get("eventCoding"), dict) else {}
    destinations = [d for d in header.get("destination", []) or [] if isinstance(d, dict)]
    primary = [d for d in destinations if _destination_use(d) == "primary"] or destinations
    source = header.get("source") if isinstance(header.get("source"), dict) else {}
    return MessageInfo(
        bundle=bundle, bundle_id=bundle["id"], header=header, header_id=header["id"],
        event=(event.get("system"), event.get("code")),
        sender=_party(bundle, header.get("sender"), source.get("endpoint")),
        receivers=tuple(_party(bundle, d.get("receiver"), d.get("endpoint")) for d in primary),
        source_endpoint=source.get("endpoint") if isinstance(source.get("endpoint"), str) else None,
        response=header.get("response") if isinstance(header.get("response"), dict) else None,
    )


def _use_coding(destination: dict[str, Any]) -> dict[str, Any] | None:
    """The valueCoding of a destination's MedCom destinationUse extension (`primary`, `cc`)."""
    for ext in destination.get("extension", []) or []:
        if isinstance(ext, dict) and ext.get("url") == DESTINATION_USE and isinstance(ext.get("valueCoding"), dict):
            return ext["valueCoding"]  # type: ignore[no-any-return]
    return None


def _destination_use(destination: dict[str, Any]) -> str | None:
    return (_use_coding(destination) or {}).get("code")


# --- the acknowledgement -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AckIssue:
    """One reason in a negative acknowledgement: FHIR's issue type, the hub's reason (mapped to MedCom's
    acknowledgement error code where MedCom has one) and the text for the sender's staff."""

    code: str  # IssueType
    text: str
    reason: str | None = None  # a code of the hub's reasons (mappings/medcom-acknowledgement-error-codes.json)
    expression: str | None = None
    coding: dict[str, str] | None = None  # MedCom's error code when it is already known (a converted receipt)


@dataclass
class ErrorCodes:
    """MedCom's acknowledgement error code for a finding, from the ConceptMap in `mappings/` (data, not code):
    by the hub's own reason when it has one, else by the finding's FHIR IssueType."""

    by_source: dict[tuple[str, str], tuple[str, str, str | None]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = MAPPINGS / "medcom-acknowledgement-error-codes.json") -> ErrorCodes:
        concept_map = json.loads(path.read_text(encoding="utf-8"))
        found: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        for group in concept_map.get("group", []):
            for element in group.get("element", []):
                for target in element.get("target", []):
                    if target.get("equivalence") not in ("unmatched", "disjoint"):
                        found[(group["source"], element["code"])] = (group["target"], target["code"],
                                                                     target.get("display"))
        return cls(found)

    def coding(self, issue: AckIssue) -> dict[str, Any] | None:
        if issue.coding is not None:
            return dict(issue.coding)
        for source, code in ((REASONS, issue.reason), (ISSUE_TYPES, issue.code)):
            if code is not None and (source, code) in self.by_source:
                system, target, display = self.by_source[(source, code)]
                return {"system": system, "code": target, **({"display": display} if display else {})}
        return None


ACK_ROLES = ("bundle", "header", "provenance", "outcome")  # the ids an Acknowledgement needs


def ack_event(packages: PackageSet) -> dict[str, Any]:
    """The event of every Acknowledgement: the eventCoding of MedCom's acknowledgement MessageDefinition."""
    found = packages.locate(ACK_DEFINITION, "MessageDefinition")
    if found is None:
        raise RuntimeError(f"{ACK_DEFINITION} is not in the loaded packages: run `hub schemas sync`")
    return dict(found[0]["eventCoding"])


REASONS = "urn:hub:medcom-acknowledgement-reason"  # the hub's reasons, as the ConceptMap's source system
ISSUE_TYPES = "http://hl7.org/fhir/issue-type"


def acknowledgement(info: MessageInfo, code: str, issues: list[AckIssue], codes: ErrorCodes,
                    event: dict[str, Any], base_url: str, new_id: Callable[[], str],
                    now: datetime | None = None, ids: dict[str, str] | None = None) -> dict[str, Any]:
    """The Acknowledgement answering `info`: `code` is `ok`, `transient-error` or `fatal-error`; `issues` the
    reasons when it is not ok; `event` the acknowledgement's eventCoding (from MedCom's MessageDefinition);
    its resources' ids from `new_id`, or `ids` by role (bundle, header, provenance, outcome) when given.
    Sent by the message's receiver to its sender, as MedCom's examples show: both Organizations and the
    message's own Provenance come along, and a Provenance of the acknowledgement refers to the message."""
    when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    receiver = info.receivers[0] if info.receivers else Party(None, None, ())
    ids = ids or {role: new_id() for role in ACK_ROLES}

    def full_url(rtype: str, rid: str) -> str:
        return f"{base_url}/{rtype}/{rid}"

    entries: list[dict[str, Any]] = []
    sender_ref = _local_reference(info.sender.organization)
    receiver_ref = _local_reference(receiver.organization)
    destination: dict[str, Any] = {
        "extension": [{"url": DESTINATION_USE, "valueCoding": _primary_use(info)}],
        "endpoint": info.source_endpoint or "",
    }
    if sender_ref:
        destination["receiver"] = {"reference": sender_ref}
    header: dict[str, Any] = {
        "resourceType": "MessageHeader", "id": ids["header"], "meta": {"profile": [ACK_HEADER]},
        "text": narrative(f"Acknowledgement ({code}) of message {info.header_id}"),
        "eventCoding": event,
        "destination": [destination],
        "source": {"endpoint": receiver.endpoint or ""},
        "response": {"identifier": info.header_id, "code": code},
    }
    if receiver_ref:
        header["sender"] = {"reference": receiver_ref}
    if code != "ok":
        header["response"]["details"] = {"reference": f"OperationOutcome/{ids['outcome']}"}
    entries.append({"fullUrl": full_url("MessageHeader", ids["header"]), "resource": header})
    provenance: dict[str, Any] = {
        "resourceType": "Provenance", "id": ids["provenance"], "meta": {"profile": [PROVENANCE]},
        "text": narrative(f"The acknowledgement of message {info.header_id}, sent {when}"),
        "target": [{"reference": f"MessageHeader/{ids['header']}"}],
        "occurredDateTime": when, "recorded": when,
        "activity": {"coding": [{"system": ACTIVITY_CODES, "code": "acknowledgement"}]},
        "entity": [{"role": "revision", "what": {"reference": f"MessageHeader/{info.header_id}"}}],
    }
    if receiver_ref:
        provenance["agent"] = [{"who": {"reference": receiver_ref}}]
    entries.append({"fullUrl": full_url("Provenance", ids["provenance"]), "resource": provenance})
    for org in (info.sender.organization, receiver.organization):
        if org is not None:
            entries.append({"fullUrl": full_url("Organization", str(org.get("id"))), "resource": org})
    if code != "ok":
        entries.append({"fullUrl": full_url("OperationOutcome", ids["outcome"]),
                        "resource": _outcome(ids["outcome"], issues, codes)})
    return {"resourceType": "Bundle", "id": ids["bundle"], "meta": {"profile": [ACK_BUNDLE]}, "type": "message",
            "timestamp": when, "entry": entries}


def _local_reference(organization: dict[str, Any] | None) -> str | None:
    return f"Organization/{organization['id']}" if organization and isinstance(organization.get("id"), str) else None


def _primary_use(info: MessageInfo) -> dict[str, Any]:
    """The destinationUse coding `primary`, as the message itself writes it (system and all)."""
    for d in info.header.get("destination", []) or []:
        coding = _use_coding(d) if isinstance(d, dict) else None
        if coding is not None and coding.get("code") == "primary":
            return dict(coding)
    return {"system": "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-destinationUse",
            "code": "primary"}


def _outcome(oid: str, issues: list[AckIssue], codes: ErrorCodes) -> dict[str, Any]:
    out = []
    for issue in issues or [AckIssue("processing", "The message was not processed")]:
        details: dict[str, Any] = {"text": issue.text}
        coding = codes.coding(issue)
        if coding is not None:
            details["coding"] = [coding]
        entry: dict[str, Any] = {"severity": "error", "code": issue.code, "details": details}
        if issue.expression:
            entry["expression"] = [issue.expression]
        out.append(entry)
    summary = "; ".join(i.text for i in issues[:3]) + ("; …" if len(issues) > 3 else "")
    return {"resourceType": "OperationOutcome", "id": oid, "meta": {"profile": [ACK_OUTCOME]},
            "text": narrative(f"Why the message was not accepted: {summary}"), "issue": out}


def narrative(text: str) -> dict[str, str]:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escape(text)}</p></div>'}
