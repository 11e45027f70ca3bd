"""Which files to validate, what format each is, and each file's verdict.

The format is detected from the content, not trusted from the name: FHIR JSON (an object with
`resourceType`), FHIR XML (a root in the FHIR namespace), OIOXML (a root in a MedCom OIOXML namespace,
validated against that namespace's schema set), a VANS envelope (its rules checked, then the FHIR message
it carries validated), HL7 v2 (a message starting with MSH: read as the MLLP listener reads it, then its
structure checked for its version with hl7apy, strict) and SF1470 v6 requests (the XSDs, then KOMBIT's anvisning
rules, as the local case index checks them). A file of a
format the hub does not know fails with a finding that says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hub.conformance import parallel
from hub.core.errors import HubError
from hub.core.outcome import Outcome, single
from hub.fhir import io
from hub.fhir.validator import Validator
from hub.hl7v2 import message as hl7v2
from hub.hl7v2.structure import structure_findings
from hub.medcom import vans
from hub.medcom.schemas import NAMESPACE, OioxmlSchemas, UnknownNamespace, schema_outcome

SUFFIXES = {".json", ".xml", ".hl7"}


@dataclass(frozen=True, slots=True)
class FileResult:
    file: str
    format: str
    outcome: Outcome

    def valid(self, fail_on: str = "error") -> bool:
        failing = ("fatal", "error") if fail_on == "error" else ("fatal", "error", "warning")
        return not any(i.severity in failing for i in self.outcome.issues)


def collect(paths: Iterable[Path]) -> Iterator[Path]:
    """The files named, and the files with a known suffix under the folders named, in a stable order."""
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES
                              and not f.name.startswith("."))
        else:
            yield p


def detect(body: bytes) -> str:
    if body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"MSH"):
        return "hl7v2"
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"{":
        return "fhir+json"
    if head == b"<":
        start = body[:2000]
        if b"http://hl7.org/fhir" in start:
            return "fhir+xml"
        if vans.NAMESPACE_FAMILY.encode() in start:
            return "vans"
        if b"urn:oio:sts:sagdok:sagdokumentindeks:6" in body:
            return "sf1470"
        return "oioxml" if NAMESPACE.search(start.decode("latin-1")) else "xml"
    return "unknown"


def package_context(path: Path, loaded: set[str]) -> str | None:
    """`name#version` of the FHIR package a file sits in (its examples, say), if that package is loaded.

    An example of MedCom's CareCommunication 5.0.2 names `medcom-core-practitionerrole` without a version and
    means the medcom core version that package pins, not the newest one loaded; the folder tells which.
    """
    for folder in path.resolve().parents:
        meta = folder / "package.json"
        if meta.is_file():
            try:
                doc = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            key = f"{doc.get('name')}#{doc.get('version')}"
            return key if key in loaded else None
    return None


def validate_file(validator: Validator, path: Path, profiles: tuple[str, ...] = (),
                  context: str | None = None, oioxml: OioxmlSchemas | None = None, jobs: int = 1) -> FileResult:
    """The file's verdict; a large Bundle in it is validated on `jobs` cores."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        return FileResult(str(path), "unknown", single("not-found", f"Cannot read the file: {exc.strerror}"))
    kind = detect(body)
    if kind == "oioxml" and oioxml is not None:
        return FileResult(str(path), kind, _oioxml(body, oioxml))
    if kind == "hl7v2":
        return FileResult(str(path), kind, _hl7v2(body))
    if kind == "sf1470" and oioxml is not None:
        try:
            from hub.sdi.contract import validation_outcome  # zeep: loaded only for an SF1470 file

            return FileResult(str(path), kind, validation_outcome(body, oioxml.store))
        except HubError as exc:
            return FileResult(str(path), kind, exc.outcome)
    if kind == "vans":
        try:
            envelope = vans.unwrap(body, vans.StatisticalCodes.from_packages(validator.packages))
        except HubError as exc:
            return FileResult(str(path), kind, exc.outcome)
        inner = "fhir+xml" if envelope.mime_type == vans.FHIR_XML else "fhir+json"
        return FileResult(str(path), kind, _fhir(validator, envelope.data, inner, profiles, context, jobs))
    if kind not in ("fhir+json", "fhir+xml"):
        return FileResult(str(path), kind, single("not-supported", "Not a format the hub validates (FHIR JSON, "
                                                                   "FHIR XML, OIOXML, a VANS envelope, HL7 v2 or "
                                                                   "an SF1470 request)"))
    return FileResult(str(path), kind, _fhir(validator, body, kind, profiles, context, jobs))


def _fhir(validator: Validator, body: bytes, kind: str, profiles: tuple[str, ...], context: str | None,
          jobs: int) -> Outcome:
    try:
        resource = validator.parse(body, "application/" + kind)
    except HubError as exc:
        return exc.outcome
    if jobs > 1 and len(resource.get("entry") or ()) >= parallel.PARTED_ENTRIES \
            and validator.partable(resource, profiles, context):
        return parallel.validate_in_parts(validator, resource, profiles, context, jobs)
    return validator.validate(resource, profiles, context=context)


def _hl7v2(body: bytes) -> Outcome:
    try:
        message = hl7v2.read(body)
    except hl7v2.NotHl7 as exc:
        return single("structure", f"{exc.code}: {exc.text}", f"MSH-{exc.field}" if exc.field else None)
    outcome = Outcome()
    for finding in structure_findings(message):
        where = f"{finding.segment}-{finding.field}" if finding.segment and finding.field else finding.segment
        outcome.error("structure", f"{finding.code}: {finding.text}", where)
    return outcome


def _oioxml(body: bytes, schemas: OioxmlSchemas) -> Outcome:
    try:
        root = io.parse_xml_root(body)
        return schema_outcome(root, schemas.validate(root))
    except HubError as exc:
        return exc.outcome
    except UnknownNamespace as exc:
        return single("not-supported", str(exc))
