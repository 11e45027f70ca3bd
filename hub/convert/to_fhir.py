"""An XDIS91 letter (with the XBIN01 letters that carry its attachments) → a MedCom CareCommunication 5.0
message Bundle, by MedCom's table (`mappings/medcom-carecommunication-oioxml.json`, direction `to-fhir`).

Ids are derived from the letter's identity (sender EAN, envelope and letter ids), so converting the same
letter twice gives the same Bundle and a resent letter is recognised by its MessageHeader id downstream.
The SOR ids FHIR needs come from the directory (the routing table), as MedCom's service looks them up in SOR.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hub.convert.letter import Attachment, CareLetter
from hub.convert.tables import OIOXML, FieldTable
from hub.core.mappings import CodeMaps
from hub.core.routing import Organisation
from hub.fhir.messaging import narrative

COPENHAGEN = ZoneInfo("Europe/Copenhagen")
IDS = uuid.UUID("6f0a3c52-3f5e-4d5e-9a51-6b7c1d0e2f90")  # the namespace of the converter's derived ids
UUID_TEXT = re.compile(r"(?:urn:uuid:)?([0-9a-fA-F]{8})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?([0-9a-fA-F]{4})-?"
                       r"([0-9a-fA-F]{12})")

Directory = Callable[[tuple[str, ...]], Organisation | None]


class ConversionError(ValueError):
    """The letter cannot be converted; the text says why (it goes into the negative receipt)."""


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(IDS, "|".join(parts)))


def as_uuid(text: str) -> str | None:
    """A UUID written with or without hyphens (or as urn:uuid:) in its canonical form."""
    match = UUID_TEXT.fullmatch(text.strip())
    return "-".join(match.groups()).lower() if match else None


def local_time(date: str | None, time: str | None) -> str:
    """An OIOXML date and time (Danish local time, minutes) as a FHIR dateTime with its offset."""
    if not date or not time:
        raise ConversionError("the letter has no date and time")
    try:
        when = datetime.strptime(f"{date} {time}", "%Y-%m-%d %H:%M").replace(tzinfo=COPENHAGEN)
    except ValueError as exc:
        raise ConversionError(f"date {date} {time} is not a date and time: {exc}") from None
    return when.isoformat()


class FhirBuilder:
    """Builds the Bundle of one converted letter."""

    def __init__(self, table: FieldTable, codes: CodeMaps, directory: Directory, base_url: str) -> None:
        self.t, self.codes, self.directory, self.base = table, codes, directory, base_url.rstrip("/")
        self.fhir = table.fhir
        self.systems: dict[str, str] = table.fhir["systems"]

    def bundle(self, letter: CareLetter, binaries: list[CareLetter]) -> dict[str, Any]:
        v = letter.get
        sender_ean, envelope_id, letter_id = v("sender.ean") or "", v("envelope.id") or "", v("letter.id") or ""
        key = (sender_ean, envelope_id, letter_id)
        ids = {name: derived_id(*key, name) for name in ("communication", "patient", "encounter", "role",
                                                         "practitioner", "sender", "receiver", "provenance",
                                                         "communication-identifier", "text")}
        ids["bundle"] = derived_id(sender_ean, "envelope", envelope_id)
        ids["header"] = derived_id(sender_ean, "letter", letter_id)
        sent = local_time(v("sent.date"), v("sent.time"))
        authorised = local_time(v("authorised.date"), v("authorised.time"))
        sender = self._organisation(letter, "sender", ids["sender"])
        receiver = self._organisation(letter, "receiver", ids["receiver"])
        patient = self._patient(letter, ids["patient"])
        encounter = self._encounter(letter, ids["encounter"], ids["patient"], sender)
        payloads = [self._text_payload(letter, authorised, ids)]
        payloads += [self._attachment_payload(letter, a, binaries, authorised, ids["sender"])
                     for a in letter.attachments]
        communication = self._communication(letter, ids, payloads, encounter is not None)
        resources = [self._header(ids, sender, receiver), patient, *([encounter] if encounter else []),
                     communication, self._role(ids), self._practitioner(letter, sender, ids["practitioner"]),
                     receiver, sender, self._provenance(letter, ids, sent, payloads)]
        for r in resources:
            r["text"] = narrative(f"{r['resourceType']} of OIOXML letter {letter_id}, converted by the hub")
        return {"resourceType": "Bundle", "id": ids["bundle"], "meta": self._profile("Bundle"), "type": "message",
                "timestamp": sent,
                "entry": [{"fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}", "resource": r}
                          for r in resources]}

    def _profile(self, rtype: str) -> dict[str, Any]:
        return {"profile": [self.fhir["profiles"][rtype]]}

    def _resource(self, rtype: str, rid: str, **content: Any) -> dict[str, Any]:
        return {"resourceType": rtype, "id": rid, "meta": self._profile(rtype), **content}

    def sor_endpoint(self, sor: str) -> str:
        return f"{self.t.defaults['sor_endpoint']}{sor}"

    def _organisation(self, letter: CareLetter, role: str, rid: str) -> dict[str, Any]:
        v = letter.get
        ean, ident, code = v(f"{role}.ean"), v(f"{role}.id"), v(f"{role}.id_code")
        keys = tuple(k for k in (f"sor:{ident}" if code == "sorkode" and ident else None,
                                 f"gln:{ean}" if ean else None) if k)
        known = self.directory(keys)
        sor = ident if code == "sorkode" else (known.sor if known else None)
        if not ean or not sor:
            raise ConversionError(f"the {role}'s SOR id is not known for EAN {ean or '(none)'}: "
                                  "add the organisation (sor, gln) to the routing table")
        parts = [v(f"{role}.{p}") for p in ("organisation", "department", "unit")]
        name = known.name if known and not known.name.startswith(("sor:", "gln:")) else ", ".join(
            p for p in parts if p)
        org = self._resource("Organization", rid, identifier=[{"system": self.systems["gln"], "value": ean},
                                                              {"system": self.systems["sor"], "value": sor}])
        if name:
            org["name"] = name
        return org

    def _header(self, ids: dict[str, str], sender: dict[str, Any], receiver: dict[str, Any]) -> dict[str, Any]:
        ext = self.fhir["extensions"]
        return self._resource(
            "MessageHeader", ids["header"], eventCoding=dict(self.fhir["event"]),
            destination=[{"extension": [{"url": ext["destination_use"],
                                         "valueCoding": dict(self.fhir["destination_use"])}],
                          "endpoint": self.sor_endpoint(_sor(receiver, self.systems)),
                          "receiver": {"reference": f"Organization/{ids['receiver']}"}}],
            sender={"reference": f"Organization/{ids['sender']}"},
            source={"endpoint": self.sor_endpoint(_sor(sender, self.systems))},
            focus=[{"reference": f"Communication/{ids['communication']}"}],
            definition=self.t.defaults["message_definition"])

    def _patient(self, letter: CareLetter, rid: str) -> dict[str, Any]:
        v = letter.get
        identifiers = []
        if v("patient.cpr"):
            identifiers.append({"system": self.systems["cpr"], "value": v("patient.cpr")})
        if alt := v("patient.alternative"):
            seventh = alt[6:7]
            system = self.systems["replacement_cpr_1_7" if seventh in ("1", "7") else "replacement_cpr"]
            identifiers.append({"system": system, "value": alt})
        if not identifiers:
            raise ConversionError("the letter names no patient (CivilRegistrationNumber or AlternativeIdentifier)")
        words = (v("patient.surname") or "").split()
        if not words:
            raise ConversionError("the patient has no surname")
        name: dict[str, Any] = {"use": "official", "family": words[-1]}
        given = [g for g in [v("patient.given"), *words[:-1]] if g]
        if given:
            name["given"] = given
        patient = self._resource("Patient", rid, identifier=identifiers, name=[name])
        address = {k: x for k, x in (("line", [v("patient.street")] if v("patient.street") else None),
                                     ("city", v("patient.district")), ("postalCode", v("patient.postcode"))) if x}
        if address:
            patient["address"] = [address]
        status = v("patient.episode_status")
        if self.codes.get(OIOXML + "EpisodeOfCareStatusCode", "urn:hub:patient-deceased", status) == "true":
            patient["deceasedBoolean"] = True
        return patient

    def _encounter(self, letter: CareLetter, rid: str, patient_id: str,
                   sender: dict[str, Any]) -> dict[str, Any] | None:
        episode = letter.get("episode.id")
        if not episode:
            return None
        source, status = OIOXML + "EpisodeOfCareStatusCode", letter.get("patient.episode_status")
        state = self.codes.get(source, self.systems["encounter_status"], status) or "unknown"
        klass = next(({"system": self.systems[s], "code": c} for s in ("act_code", "medcom_act_code")
                      if (c := self.codes.get(source, self.systems[s], status))),
                     {"system": self.systems["medcom_act_code"], "code": "other"})
        found = as_uuid(episode)
        local = self.sor_endpoint(_sor(sender, self.systems))  # an id of the sender's own: its SOR endpoint
        if found is not None and found[14] == "5":  # LPR3 ids are UUID v5 (MedCom's uuidv5 invariant)
            identifier = {"system": self.t.defaults["lpr3_system"], "value": found}
        elif found is not None:
            identifier = {"system": local, "value": f"urn:uuid:{found}"}
        else:
            identifier = {"system": local, "value": episode}
        return self._resource("Encounter", rid, status=state, **{"class": klass},
                              subject={"reference": f"Patient/{patient_id}"},
                              episodeOfCare=[{"identifier": identifier}])

    def _payload_extensions(self, when: str, identifier: str, sender_id: str) -> list[dict[str, Any]]:
        ext = self.fhir["extensions"]
        return [{"url": ext["date"], "valueDateTime": when},
                {"url": ext["identifier"], "valueIdentifier": {
                    "value": f"urn:uuid:{identifier}", "assigner": {"reference": f"Organization/{sender_id}"}}}]

    def _text_payload(self, letter: CareLetter, when: str, ids: dict[str, str]) -> dict[str, Any]:
        ext = self.fhir["extensions"]
        text = "\n".join(t for t in letter.texts if t) or self.t.defaults["no_text"]
        if self.codes.get(OIOXML + "Priority", self.systems["priority"], letter.get("priority")) == "asap":
            text = f"{self.t.defaults['high_priority_text']} {text}"  # priority needs category regarding-referral
        phone = letter.get("sender.phone")
        if phone is None:
            known = self.directory(tuple(f"gln:{e}" for e in [letter.get("sender.ean")] if e))
            phone = known.phone if known and known.phone else self.t.defaults["unknown_phone"]
        extensions = self._payload_extensions(when, ids["text"], ids["sender"])
        extensions += [{"url": ext["author"], "valueReference": {"reference": f"PractitionerRole/{ids['role']}"}},
                       {"url": ext["contact"], "valueContactPoint": {"system": "phone", "value": phone}}]
        return {"extension": extensions, "contentString": text}

    def _attachment_payload(self, letter: CareLetter, a: Attachment, binaries: list[CareLetter], when: str,
                            sender_id: str) -> dict[str, Any]:
        if a.url:
            content = {"url": a.url, "title": a.description or a.url}
            identifier = derived_id(letter.get("sender.ean") or "", letter.get("letter.id") or "", a.url)
            return {"extension": self._payload_extensions(when, identifier, sender_id),
                    "contentAttachment": content}
        found = _binary(a.object_id, binaries)
        if found is None:
            raise ConversionError(f"the XBIN01 letter with attachment {a.object_id} is missing")
        mime = self.codes.get(OIOXML + "ObjectExtensionCode", self.systems["mime"], found.extension_code)
        if mime is None:
            raise ConversionError(f"file type {found.extension_code!r} has no MIME type CareCommunication takes")
        title = a.description if a.description not in (None, "BIN") else self.codes.get(
            self.systems["mime"], OIOXML + "ObjectCode", mime)
        identifier = as_uuid(found.object_id or "") or derived_id(letter.get("sender.ean") or "",
                                                                  found.object_id or "")
        return {"extension": self._payload_extensions(when, identifier, sender_id),
                "contentAttachment": {"contentType": mime, "data": found.data or "",
                                      "title": title or found.object_code or "vedhæftning"}}

    def _communication(self, letter: CareLetter, ids: dict[str, str], payloads: list[dict[str, Any]],
                       has_encounter: bool) -> dict[str, Any]:
        d = self.t.defaults
        communication = self._resource(
            "Communication", ids["communication"],
            identifier=[{"value": f"urn:uuid:{ids['communication-identifier']}"}],
            status=d["communication_status"],
            category=[{"coding": [{"system": self.systems["category"], "code": d["category"]}]}],
            subject={"reference": f"Patient/{ids['patient']}"},
            topic={"text": letter.get("subject") or d["unknown_subject"]})
        if has_encounter:
            communication["encounter"] = {"reference": f"Encounter/{ids['encounter']}"}
        communication["payload"] = payloads
        return communication

    def _role(self, ids: dict[str, str]) -> dict[str, Any]:
        return self._resource("PractitionerRole", ids["role"],
                              practitioner={"reference": f"Practitioner/{ids['practitioner']}"},
                              code=[{"coding": [dict(self.t.defaults["author_role"])]}])

    def _practitioner(self, letter: CareLetter, sender: dict[str, Any], rid: str) -> dict[str, Any]:
        name = sender.get("name") or letter.get("sender.organisation") or "ukendt"
        return self._resource("Practitioner", rid, name=[{"text": name, "family": name}])

    def _provenance(self, letter: CareLetter, ids: dict[str, str], sent: str,
                    payloads: list[dict[str, Any]]) -> dict[str, Any]:
        activity = self.codes.get(OIOXML + "StatusCode", self.systems["activity"], letter.get("letter.status"))
        if activity is None:
            raise ConversionError(f"letter status {letter.get('letter.status')!r} has no CareCommunication activity")
        identifier_url = self.fhir["extensions"]["identifier"]
        entities = [{"role": "source", "what": {"identifier": {"value": e["valueIdentifier"]["value"]}}}
                    for p in payloads for e in p["extension"] if e["url"] == identifier_url]
        return self._resource("Provenance", ids["provenance"],
                              target=[{"reference": f"MessageHeader/{ids['header']}"}],
                              occurredDateTime=sent, recorded=sent,
                              activity={"coding": [{"system": self.systems["activity"], "code": activity}]},
                              agent=[{"who": {"reference": f"Organization/{ids['sender']}"}}], entity=entities)


def _sor(organisation: dict[str, Any], systems: dict[str, str]) -> str:
    return str(next(i["value"] for i in organisation["identifier"] if i["system"] == systems["sor"]))


def _binary(object_id: str | None, binaries: list[CareLetter]) -> Attachment | None:
    """The XBIN01 BinaryObject a Reference names: the same ObjectIdentifier, hyphens or not."""
    def norm(text: str | None) -> str:
        return (text or "").replace("-", "").lower()
    return next((a for b in binaries for a in b.attachments if norm(a.object_id) == norm(object_id)), None)
