"""FHIR XML read by the hub itself into the same form as JSON (`hub.fhir.xml_reader`): comments ignored anywhere,
primitives typed from the R4 definitions, every R4 resource type, and the same verdict as the same JSON."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest

from hub.core.errors import InvalidInput
from hub.fhir import io
from hub.fhir.validator import Validator
from hub.fhir.xml_reader import XmlReader
from tests.conftest import FUT_EXAMPLES

NS = 'xmlns="http://hl7.org/fhir"'
_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)")


@pytest.fixture(scope="module")
def reader(validator: Validator) -> XmlReader:
    return validator.reader


def read(reader: XmlReader, text: str) -> dict[str, Any]:
    return reader.read(text.encode())


def test_comments_and_processing_instructions_are_not_content(reader: XmlReader) -> None:
    plain = read(reader, f'<Patient {NS}><id value="p"/><active value="true"/><name><family value="Hansen"/>'
                         '</name></Patient>')
    commented = read(reader, f'<?xml version="1.0"?><!-- before --><Patient {NS}><!-- a --><id value="p"/>'
                             '<?pi x?><active value="true"><!-- in a primitive --></active><name><!-- b -->'
                             '<family value="Hansen"/></name><!-- end --></Patient>')
    assert commented == plain == {"resourceType": "Patient", "id": "p", "active": True,
                                  "name": [{"family": "Hansen"}]}


def test_primitives_are_typed_and_their_ids_and_extensions_aligned(reader: XmlReader) -> None:
    ext = '<extension url="http://example.org/x"><valueString value="y"/></extension>'
    got = read(reader, f'<Patient {NS}><name><given value="Anna"/><given id="g2">{ext}</given>'
                       '<given value="Marie"/></name><multipleBirthInteger value="2"/></Patient>')
    assert got["name"] == [{"given": ["Anna", None, "Marie"],
                            "_given": [None, {"id": "g2", "extension": [{"url": "http://example.org/x",
                                                                          "valueString": "y"}]}, None]}]
    assert got["multipleBirthInteger"] == 2
    observation = read(reader, f'<Observation {NS}><status value="final"/><code><text value="t"/></code>'
                               '<valueQuantity><value value="1.50"/></valueQuantity></Observation>')
    assert observation["valueQuantity"] == {"value": 1.5}


def test_a_value_of_the_wrong_form_is_reported_as_the_same_json_would_be(reader: XmlReader,
                                                                         validator: Validator) -> None:
    xml = f'<Patient {NS}><active value="yes"/><gender value="x"/><birthDate value="2020-13-01"/><foo value="1"/>' \
          '</Patient>'
    as_json = {"resourceType": "Patient", "active": "yes", "gender": "x", "birthDate": "2020-13-01", "foo": "1"}
    assert read(reader, xml) == as_json
    from_xml, from_json = validator.validate(read(reader, xml)), validator.validate(as_json)
    assert not from_xml.ok
    assert [(i.code, i.expression, i.diagnostics) for i in from_xml.issues] == \
        [(i.code, i.expression, i.diagnostics) for i in from_json.issues]
    assert any("Unknown element 'foo'" in (i.diagnostics or "") for i in from_xml.issues)


def test_narrative_contained_resources_attributes_and_bundles(reader: XmlReader) -> None:
    got = read(reader, f'<Bundle {NS}><type value="collection"/><entry><fullUrl value="urn:uuid:1"/><resource>'
                       f'<Patient><id value="p"/><text><status value="generated"/>'
                       '<div xmlns="http://www.w3.org/1999/xhtml"><p>Anna <b>Hansen</b></p></div></text>'
                       '<contained><Organization><id value="o"/><name value="OUH"/></Organization></contained>'
                       '<extension url="http://example.org/e" id="e1"><valueBoolean value="false"/></extension>'
                       '<managingOrganization><reference value="#o"/></managingOrganization>'
                       '</Patient></resource></entry></Bundle>')
    patient = got["entry"][0]["resource"]
    assert got["entry"][0]["fullUrl"] == "urn:uuid:1"
    assert patient["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"><p>Anna <b>Hansen</b></p></div>'
    assert patient["contained"] == [{"resourceType": "Organization", "id": "o", "name": "OUH"}]
    assert patient["extension"] == [{"id": "e1", "url": "http://example.org/e", "valueBoolean": False}]


def test_an_r4_type_that_fhir_resources_r4b_lacks_is_read(reader: XmlReader) -> None:
    got = read(reader, f'<MedicinalProduct {NS}><id value="m"/><name><productName value="Paracetamol"/></name>'
                       '</MedicinalProduct>')
    assert got == {"resourceType": "MedicinalProduct", "id": "m", "name": [{"productName": "Paracetamol"}]}


@pytest.mark.parametrize(("xml", "said", "where"), [
    (f'<Patient {NS}><active value="true"/>text<gender value="male"/></Patient>', "Text is not allowed",
     "Patient"),
    (f'<Patient {NS}><gender value="male"/><active value="true"/></Patient>', "out of order", "Patient.active"),
    (f'<Patient {NS} xmlns:x="urn:x"><x:active value="true"/></Patient>', "namespace 'urn:x'", "Patient.active"),
    (f'<Patient {NS}><active value="true" something="that"/></Patient>', "Undefined attribute '@something'",
     "Patient.active"),
    (f'<Patient {NS}><contained/></Patient>', "exactly one resource", "Patient.contained[0]"),
])
def test_what_only_xml_can_get_wrong_is_said_at_its_place(reader: XmlReader, xml: str, said: str,
                                                          where: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        read(reader, xml)
    assert any(said in (i.diagnostics or "") and i.expression == where for i in refused.value.outcome.issues)


@pytest.mark.parametrize("body", [b"not xml", b'<Patient xmlns="urn:other"/>',
                                  b'<!DOCTYPE p [<!ENTITY x "y">]><Patient xmlns="http://hl7.org/fhir"/>'])
def test_what_is_not_fhir_xml_is_refused(reader: XmlReader, body: bytes) -> None:
    with pytest.raises(InvalidInput):
        reader.read(body)


def _same_instants(value: Any) -> Any:
    """fhir.resources' XML writer rewrites instants (`.000`, `.667000`): compare them as moments."""
    if isinstance(value, dict):
        return {k: _same_instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_instants(v) for v in value]
    if isinstance(value, str) and _INSTANT.fullmatch(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def test_json_examples_written_as_xml_read_back_the_same(reader: XmlReader) -> None:
    """FUT's JSON examples, written as XML by another implementation (fhir.resources), read back to the JSON."""
    files = sorted(f for f in FUT_EXAMPLES.glob("*.json") if not f.name.startswith("."))
    for path in files:
        resource = json.loads(path.read_text(encoding="utf-8"))
        written = io.to_xml(resource)
        assert _same_instants(reader.read(written)) == _same_instants(resource), path.name
    assert len(files) >= 19
