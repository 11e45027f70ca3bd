"""FHIR R4 resources in and out: JSON and XML bytes ⇄ plain dicts, with structural checks.

Parsing gives a dict in FHIR JSON shape (the hub's working form) or raises `InvalidInput` carrying an
OperationOutcome that says what is wrong and where (a FHIRPath expression). FHIR XML is read into that shape
through fhir.resources' R4B models (which read R4 for the resources the hub uses); the structure of every
resource, from JSON or XML, is then checked against the core definitions by `hub.fhir.structure`.

XML is parsed with DTDs, entity expansion and network access off; a document with a DOCTYPE is refused.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import orjson
from lxml import etree
from pydantic import ValidationError

from hub.core import xml
from hub.core.errors import InvalidInput
from hub.core.outcome import Outcome, single

FHIR_NS = "http://hl7.org/fhir"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
XML_TYPES = ("application/fhir+xml", "application/xml", "text/xml", "application/xml+fhir")


def media_kind(content_type: str | None) -> str | None:
    """`json`, `xml` or None for a Content-Type / Accept / _format value."""
    if not content_type:
        return None
    ct = content_type.split(";")[0].strip().lower()
    if ct in JSON_TYPES or ct == "json":
        return "json"
    if ct in XML_TYPES or ct == "xml":
        return "xml"
    return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


_UNREADABLE = {"surrogates": "text that is not Unicode (a lone surrogate, `\\ud800`)",
               "Recursion": "values nested deeper than 255 levels",
               "64-bit": "a number out of range (beyond 64 bits)"}


def parse_json(body: bytes) -> dict[str, Any]:
    """JSON bytes → dict; malformed JSON, duplicate keys and non-objects are refused, and so is what Python's
    reader takes but nothing after it can hold (`_UNREADABLE`, found by orjson, which stores and answers it):
    checked here, before anything is done with the body."""
    try:
        doc = json.loads(body, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise InvalidInput(single("structure", f"Duplicate JSON property '{exc.key}'")) from None
    except RecursionError:
        why = _UNREADABLE["Recursion"]
        raise InvalidInput(single("structure", f"The body is not valid JSON here: it holds {why}")) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(single("structure", f"The body is not valid JSON: {exc}")) from None
    if not isinstance(doc, dict):
        raise InvalidInput(single("structure", "A FHIR resource is a JSON object"))
    try:
        orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError) as exc:
        why = next((text for key, text in _UNREADABLE.items() if key in str(exc)), str(exc))
        raise InvalidInput(single("structure", f"The body is not valid JSON here: it holds {why}")) from None
    return doc


def parse_xml_root(body: bytes) -> etree._Element:
    """Safely parse XML bytes; refuse DOCTYPEs (and so entities) outright."""
    try:
        return xml.untrusted(body)
    except xml.XmlRefused as exc:
        raise InvalidInput(single(exc.code, exc.text if exc.code == "security" else f"The body is {exc.text}")) \
            from None


def parse_xml(body: bytes) -> dict[str, Any]:
    """FHIR XML bytes → FHIR JSON-shaped dict, through the resource's model."""
    root = parse_xml_root(body)
    qname = etree.QName(root)
    if qname.namespace != FHIR_NS:
        raise InvalidInput(single("structure", f"The root element is not in the FHIR namespace {FHIR_NS}"))
    model = _model_class(qname.localname, qname.localname)
    try:
        resource = model.model_validate_xml(body, xmlparser=xml.parser())
    except ValidationError as exc:
        raise InvalidInput(outcome_from_validation(exc, qname.localname)) from None
    except KeyError as exc:
        raise InvalidInput(single("structure", f"Unknown element {exc}", qname.localname)) from None
    except Exception as exc:  # the XML reader raises assorted errors for malformed FHIR XML
        raise InvalidInput(single("structure", f"The XML is not a valid {qname.localname}: {exc}")) from None
    return orjson.loads(resource.model_dump_json())  # type: ignore[no-any-return]


class XmlRead(Protocol):
    def read(self, body: bytes) -> dict[str, Any]: ...


def parse(body: bytes, content_type: str | None, reader: XmlRead | None = None) -> dict[str, Any]:
    """Bytes of the given media type → dict. JSON when the type says nothing, sniffing `<` as XML. XML is read by
    `reader` when given (the hub's own, `hub.fhir.xml_reader`, on every validation path), else through
    fhir.resources' models."""
    kind = media_kind(content_type)
    if kind is None:
        if content_type and content_type.split(";")[0].strip():
            raise InvalidInput(single("not-supported", f"Unsupported media type {content_type}"), status=415)
        kind = "xml" if body.lstrip()[:1] == b"<" else "json"
    if kind == "xml":
        return reader.read(body) if reader is not None else parse_xml(body)
    return parse_json(body)


def _model_class(resource_type: str, where: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class  # only here: its models take 0.2 s to import

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):
        raise InvalidInput(single("structure", f"Unknown resourceType '{resource_type}'", where)) from None


def _fhirpath(resource_type: str, loc: tuple[int | str, ...]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part in ("__root__",):
            continue
        else:
            path += f".{part.removesuffix('__ext')}"
    return path


def outcome_from_validation(exc: ValidationError, resource_type: str) -> Outcome:
    """Pydantic's errors as OperationOutcome issues with FHIRPath locations."""
    out = Outcome()
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        where = _fhirpath(resource_type, loc)
        if err["type"] == "extra_forbidden":
            out.error("structure", f"Unknown element '{loc[-1]}'", where, rule="structure")
        elif err["type"] == "missing":
            out.error("required", "Missing required element", where, rule="structure")
        else:
            out.error("value", f"Invalid value: {err['msg']}", where, rule="structure")
    return out


def to_json(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource)


def to_xml(resource: dict[str, Any]) -> bytes:
    """FHIR XML for a resource dict (valid resources only: the hub produces them)."""
    model = _model_class(resource["resourceType"], "resourceType")
    out: bytes | str = model.model_validate(resource).model_dump_xml()
    return out.encode() if isinstance(out, str) else out  # typed as str, returns bytes


def serialise(resource: dict[str, Any], kind: str) -> tuple[bytes, str]:
    """Bytes and Content-Type for `json` or `xml`."""
    if kind == "xml":
        return to_xml(resource), "application/fhir+xml; charset=utf-8"
    return to_json(resource), "application/fhir+json; charset=utf-8"


def format_of(raw: bytes) -> str:
    """The message format a body is stored under: `fhir+xml` or `fhir+json`, by its first character."""
    return "fhir+xml" if raw.lstrip()[:1] == b"<" else "fhir+json"
