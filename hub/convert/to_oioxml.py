"""A MedCom CareCommunication message Bundle → an XDIS91 letter and one XBIN01 letter per attached file, by
MedCom's table (`mappings/medcom-carecommunication-oioxml.json`, direction `to-oioxml`).

OIOXML identifiers hold 14 characters, so envelope and letter ids are derived from the Bundle and
MessageHeader ids (the same message gives the same ids); the conversion record keeps both so that a receipt
for the letter becomes the Acknowledgement of the message. What XDIS91 has no element for but a reader needs
(the author, a reply or forward, further replacement CPR numbers) is written into the letter's text, as
MedCom says.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from hub.convert.letter import Attachment, CareLetter
from hub.convert.tables import OIOXML, FieldTable
from hub.convert.to_fhir import COPENHAGEN, ConversionError, Directory, as_uuid
from hub.core.mappings import CodeMaps
from hub.fhir.fhirpath import resolve_reference

Display = Callable[[str, str], str | None]  # (system, code) → the Danish display, when the package has one
ONGOING = ("planned", "arrived", "triaged", "in-progress", "onleave")
MAX_TEXTS = 10  # ClinicalInformation's maxOccurs


def oioxml_id(*parts: str) -> str:
    """A 14-character OIOXML identifier derived from FHIR ids (the most an Identifier holds)."""
    return base64.b32encode(hashlib.sha256("|".join(parts).encode()).digest()).decode()[:14]


class OioxmlBuilder:
    """Reads one CareCommunication Bundle into the letters it becomes."""

    def __init__(self, table: FieldTable, codes: CodeMaps, directory: Directory, display: Display,
                 version_codes: dict[str, str]) -> None:
        self.t, self.codes, self.directory, self.display = table, codes, directory, display
        self.systems: dict[str, str] = table.fhir["systems"]
        self.version_codes = version_codes

    def letters(self, bundle: dict[str, Any]) -> tuple[CareLetter, list[CareLetter]]:
        """The XDIS91 letter and the XBIN01 letters of its attachments."""
        entries = [e.get("resource") for e in bundle.get("entry", []) if isinstance(e, dict)]
        header = entries[0] if entries and isinstance(entries[0], dict) else {}
        communication = self._focus(bundle, header)
        if communication.get("status") == "entered-in-error":
            raise ConversionError("a retracted CareCommunication has no XDIS91 form")
        sender = self._ref(bundle, header.get("sender"))
        destination = (header.get("destination") or [{}])[0]
        receiver = self._ref(bundle, destination.get("receiver"))
        patient = self._ref(bundle, communication.get("subject"))
        encounter = self._ref(bundle, communication.get("encounter"))
        provenance = next((r for r in entries if isinstance(r, dict) and r.get("resourceType") == "Provenance"
                           and any(t.get("reference") == f"MessageHeader/{header.get('id')}"
                                   for t in r.get("target", []))), {})
        when = _local(bundle.get("timestamp"))
        strings = [p for p in communication.get("payload", []) if "contentString" in p]
        files = [p for p in communication.get("payload", []) if "contentAttachment" in p]
        authorised = _local(_extension(strings[-1] if strings else {}, self.t.fhir["extensions"]["date"])
                            or bundle.get("timestamp"))
        letter = CareLetter("XDIS91")
        v = letter.values
        v["sent.date"], v["sent.time"] = when.strftime("%Y-%m-%d"), when.strftime("%H:%M")
        v["envelope.id"] = oioxml_id(str(bundle.get("id")), "XDIS91")
        v["envelope.ack"] = self.t.defaults["acknowledgement_code"]
        v["letter.id"] = oioxml_id(str(header.get("id")), "XDIS91")
        v["authorised.date"], v["authorised.time"] = authorised.strftime("%Y-%m-%d"), authorised.strftime("%H:%M")
        activity = _code(provenance.get("activity"), self.systems["activity"])
        status = self.codes.get(self.systems["activity"], OIOXML + "StatusCode", activity)
        if status is None:
            raise ConversionError(f"activity {activity!r} has no XDIS91 status")
        v["letter.status"] = status
        self._party(v, "sender", sender)
        self._party(v, "receiver", receiver)
        extra_ids = self._patient(v, patient)
        self._episode(v, encounter, patient)
        self._subject(v, communication)
        letter.texts = self._texts(bundle, strings, communication, provenance, activity, extra_ids)
        if any(str(p["contentString"]).startswith(self.t.defaults["high_priority_text"]) for p in strings):
            v["priority"] = self._priority("asap") or "høj_prioritet"
        if (phone := _phone(strings, self.t.fhir["extensions"]["contact"])) is not None:
            v["sender.phone"] = phone
        binaries = []
        for payload in files:
            attachment = self._attachment(payload)
            if attachment.data is not None:  # the file goes in an XBIN01; the XDIS91 refers to it without hyphens
                binaries.append(self._binary_letter(letter, attachment, str(bundle.get("id"))))
                attachment = replace(attachment, object_id=(attachment.object_id or "").replace("-", ""), data=None)
            letter.attachments.append(attachment)
        for kind, one in (("XDIS91", letter), *(("XBIN01", b) for b in binaries)):
            one.values["letter.version"] = self.version_codes[kind]
            one.values["letter.statistical"] = one.values["letter.type"] = kind
        return letter, binaries

    def _focus(self, bundle: dict[str, Any], header: dict[str, Any]) -> dict[str, Any]:
        focus = (header.get("focus") or [{}])[0]
        found = self._ref(bundle, focus)
        if found.get("resourceType") != "Communication":
            raise ConversionError("the message's focus is not a Communication (not a CareCommunication)")
        return found

    def _ref(self, bundle: dict[str, Any], ref: Any) -> dict[str, Any]:
        target = ref.get("reference") if isinstance(ref, dict) else None
        return (resolve_reference(bundle, target) if isinstance(target, str) else None) or {}

    def _party(self, v: dict[str, str], role: str, organisation: dict[str, Any]) -> None:
        ids = {i.get("system"): i.get("value") for i in organisation.get("identifier", []) if isinstance(i, dict)}
        ean, sor = ids.get(self.systems["gln"]), ids.get(self.systems["sor"])
        if not ean or not sor:
            raise ConversionError(f"the {role} Organization needs both a GLN (EAN) and a SOR id")
        v[f"{role}.ean"], v[f"{role}.id"], v[f"{role}.id_code"] = ean, sor, self.t.defaults["identifier_code"]
        known = self.directory((f"sor:{sor}", f"gln:{ean}"))
        name = organisation.get("name") or (known.name if known else None)
        v[f"{role}.organisation"] = name or f"SOR {sor}"  # the sender's is mandatory: its SOR id says who it is

    def _patient(self, v: dict[str, str], patient: dict[str, Any]) -> list[str]:
        """Fills the patient; returns the further identifiers, which go into the text (MedCom's rule)."""
        ids = [(i.get("system"), i.get("value")) for i in patient.get("identifier", []) if isinstance(i, dict)]
        cprs = [val for system, val in ids if system == self.systems["cpr"] and val]
        replacements = [val for system, val in ids if val and system in (self.systems["replacement_cpr"],
                                                                         self.systems["replacement_cpr_1_7"])]
        if cprs:
            v["patient.cpr"] = cprs[0]
            extra = cprs[1:] + replacements
        elif replacements:
            v["patient.alternative"] = replacements[0]
            extra = replacements[1:]
        else:
            raise ConversionError("the patient has neither a CPR nor a replacement CPR number")
        name = next((n for n in patient.get("name", []) if n.get("use") == "official"),
                    (patient.get("name") or [{}])[0])
        given = [g for g in name.get("given", []) if g]
        surname = " ".join([*given[1:], name.get("family") or ""]).strip()
        if not surname:
            raise ConversionError("the patient has no family name")
        v["patient.surname"] = surname
        if given:
            v["patient.given"] = given[0]
        address = (patient.get("address") or [{}])[0]
        for key, value in (("patient.street", " ".join(address.get("line", []))),
                           ("patient.district", address.get("city")), ("patient.postcode", address.get("postalCode"))):
            if value:
                v[key] = value
        return extra

    def _episode(self, v: dict[str, str], encounter: dict[str, Any], patient: dict[str, Any]) -> None:
        if patient.get("deceasedBoolean") is True or patient.get("deceasedDateTime"):
            v["patient.episode_status"] = "doed"
        elif encounter.get("status") in ONGOING:
            klass = (encounter.get("class") or {}).get("code")
            v["patient.episode_status"] = self.codes.get(self.systems["act_code"], OIOXML + "EpisodeOfCareStatusCode",
                                                         klass) or "ambulant"
        else:
            v["patient.episode_status"] = "inaktiv"
        identifiers = [e.get("identifier") for e in encounter.get("episodeOfCare", []) if e.get("identifier")]
        chosen = next((i for i in identifiers if i.get("system") == self.t.defaults["lpr3_system"]),
                      identifiers[0] if identifiers else None)
        if chosen and chosen.get("value"):
            value = str(chosen["value"]).removeprefix("urn:uuid:")
            v["episode.id"] = value if len(value) <= 35 else value.replace("-", "")[:35]

    def _subject(self, v: dict[str, str], communication: dict[str, Any]) -> None:
        category = _code((communication.get("category") or [{}])[0], self.systems["category"])
        topic = (communication.get("topic") or {}).get("text")
        parts = [] if category in (None, self.t.defaults["category"]) else [
            self.display(self.systems["category"], category) or category]
        if topic:
            parts.append(topic)
        if parts:
            v["subject"] = ", ".join(parts)[:70]
        if category == "regarding-referral" and (priority := self._priority(communication.get("priority"))):
            v["priority"] = priority

    def _priority(self, fhir_code: Any) -> str | None:
        """The OIOXML priority of a FHIR one (the priority group read backwards)."""
        pairs = self.codes.codes(OIOXML + "Priority", self.systems["priority"]).items()
        return next((oio for oio, fhir in pairs if fhir == fhir_code), None)

    def _texts(self, bundle: dict[str, Any], strings: list[dict[str, Any]], communication: dict[str, Any],
               provenance: dict[str, Any], activity: str | None, extra_ids: list[str]) -> list[str]:
        texts = []
        for payload in strings:
            lines = [self._unprioritised(str(payload["contentString"]))]
            author = self._author(bundle, payload)
            if author:
                lines.append(author)
            texts.append("\n".join(lines))
        head = []
        if activity in ("reply-message", "forward-message"):
            previous: dict[str, Any] = next((e.get("what", {}) for e in provenance.get("entity", [])
                                             if e.get("role") == "revision"), {})
            ref = previous.get("reference") or (previous.get("identifier") or {}).get("value") or "ukendt"
            head.append(f"{'Svar på' if activity == 'reply-message' else 'Videresendt'} meddelelse {ref}")
        for recipient in communication.get("recipient", []):
            name = self._person(bundle, recipient)
            if name:
                head.append(f"Til: {name}")
        if extra_ids:
            head.append("Andre CPR-numre: " + ", ".join(extra_ids))
        if head:
            texts.insert(0, "\n".join(head))
        if len(texts) > MAX_TEXTS:
            texts = [*texts[:MAX_TEXTS - 1], "\n".join(texts[MAX_TEXTS - 1:])]
        return texts

    def _unprioritised(self, text: str) -> str:
        """The text without the sentence a high-priority letter got on its way to FHIR (the priority is back in
        `priority`, so a round trip keeps both)."""
        flag = self.t.defaults["high_priority_text"]
        return text.removeprefix(flag).lstrip() if text.startswith(flag) else text

    def _author(self, bundle: dict[str, Any], payload: dict[str, Any]) -> str | None:
        """`Name (role)`; none when the author is only the unknown role (as a converted letter has)."""
        ref = _extension(payload, self.t.fhir["extensions"]["author"])
        return self._person(bundle, ref) if isinstance(ref, dict) else None

    def _person(self, bundle: dict[str, Any], ref: dict[str, Any]) -> str | None:
        target = self._ref(bundle, ref)
        if target.get("resourceType") == "CareTeam":
            return str(target.get("name") or "") or None
        coding = ((target.get("code") or [{}])[0].get("coding") or [{}])[0]
        if coding == self.t.defaults["author_role"]:
            return None
        role = self.display(str(coding.get("system")), str(coding.get("code"))) or coding.get("code")
        person = self._ref(bundle, target.get("practitioner"))
        name = (person.get("name") or [{}])[0]
        full = name.get("text") or " ".join([*name.get("given", []), name.get("family") or ""]).strip()
        return f"{full} ({role})" if full and role else full or role

    def _attachment(self, payload: dict[str, Any]) -> Attachment:
        content = payload["contentAttachment"]
        if content.get("url"):
            return Attachment(description=str(content.get("title") or "URL")[:70], url=content["url"])
        mime = content.get("contentType")
        back = {m: ext for ext, m in self.codes.codes(OIOXML + "ObjectExtensionCode", self.systems["mime"]).items()}
        if mime not in back:
            raise ConversionError(f"attachment type {mime!r} has no OIOXML file type")
        try:
            size = len(base64.b64decode(content.get("data") or "", validate=True))
        except (binascii.Error, ValueError):
            raise ConversionError("an attachment's data is not base64") from None
        identifier = _extension(payload, self.t.fhir["extensions"]["identifier"]) or {}
        object_id = as_uuid(str(identifier.get("value") or "")) or oioxml_id(str(content.get("data"))[:64])
        return Attachment(description=str(content.get("title") or "BIN")[:70], object_id=object_id,
                          object_code=self.codes.get(self.systems["mime"], OIOXML + "ObjectCode", mime),
                          extension_code=back[mime], size=size, data=content.get("data"))

    def _binary_letter(self, letter: CareLetter, attachment: Attachment, bundle_id: str) -> CareLetter:
        copied = ("sent.date", "sent.time", "envelope.ack", "authorised.date", "authorised.time",
                  "patient.cpr", "patient.alternative", "patient.surname", "patient.given")
        values = {k: x for k, x in letter.values.items()
                  if k in copied or k.startswith(("sender.", "receiver."))}
        values["letter.status"] = "nytbrev"  # the only status an XBIN01 has
        values["envelope.id"] = oioxml_id(bundle_id, "XBIN01", attachment.object_id or "")
        values["letter.id"] = oioxml_id(letter.values["letter.id"], attachment.object_id or "")
        return CareLetter("XBIN01", values, attachments=[attachment])


def _local(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value)).astimezone(COPENHAGEN)
    except ValueError:
        raise ConversionError(f"{value!r} is not a date and time") from None


def _code(concept: Any, system: str) -> str | None:
    codings = concept.get("coding", []) if isinstance(concept, dict) else []
    return next((c.get("code") for c in codings if c.get("system") == system), None)


def _extension(element: dict[str, Any], url: str) -> Any:
    for ext in element.get("extension", []):
        if ext.get("url") == url:
            return next((val for key, val in ext.items() if key.startswith("value")), None)
    return None


def _phone(strings: list[dict[str, Any]], url: str) -> str | None:
    for payload in reversed(strings):
        contact = _extension(payload, url)
        if isinstance(contact, dict) and contact.get("value"):
            return str(contact["value"])[:35]
    return None
