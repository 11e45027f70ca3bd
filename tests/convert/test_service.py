"""The OIOXML ⇄ FHIR converter against MedCom's mapping tables and conversion examples (flow 1 and flow 2),
round trips both ways, and what it refuses."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from lxml import etree

from hub.convert.receipts import EnvelopeRecord, ack_to_receipts, read_receipt, receipt_to_ack
from hub.convert.service import RULES, Converter, danish_display
from hub.convert.tables import field_table, oioxml_codes
from hub.convert.to_fhir import ConversionError
from hub.core.routing import RoutingTable
from hub.fhir.io import parse_xml
from hub.fhir.messaging import ErrorCodes
from hub.fhir.validator import Validator
from hub.medcom.receipts import NEGATIVE, POSITIVE, Receipt, ReceiptWriter, Refusal
from hub.medcom.schemas import OioxmlSchemas
from tests.conftest import SHARED

EXAMPLES = SHARED / "medcom/xml/examples/carecommunication-conversion"
TABLES = SHARED / "medcom/xml/mapping"
SEND_EXAMPLES = SHARED / "medcom/fhir/medcom.fhir.dk.carecommunication/examples/SendExamples"
DIRECTORY = RoutingTable.from_json({
    "receivers": [{"name": "Social og Sundhed Odense Kommune", "sor": "328051000016008", "gln": "5790000121441",
                   "endpoint": "http://127.0.0.1:9/unused"}],
    "organisations": [{"name": "MedCom testcenter", "sor": "359001000016000", "gln": "5790001382445",
                       "phone": "65432030"}]})
MEDCOM_HEADER_ID = "60098c38-6fe1-41ba-aa92-d4809022de88"  # the MessageHeader id MedCom's service gave flow 1



@pytest.fixture(scope="module")
def converter(data_root: Path, packages: Any) -> Converter:
    return Converter(data_root / "standards/files/medcom/xml/schemas", DIRECTORY.organisation,
                     danish_display(packages), "https://hub.example/fhir")



def flow1_roots() -> list[etree._Element]:
    return [etree.parse(str(EXAMPLES / name)).getroot()
            for name in ("Flow1-XDIS91_Ex_to_FHIR.xml", "Flow1-XBIN01_Ex_to_FHIR.xml")]


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = resources(bundle, rtype)
    assert len(found) == 1, rtype
    return found[0]


def assert_valid(bundle: dict[str, Any], validator: Validator) -> None:
    verdict = validator.validate(bundle)
    assert verdict.ok, [f"{i.expression}: {i.diagnostics}" for i in verdict.issues if i.severity == "error"]


# --- MedCom's tables, every row accounted for ---------------------------------------------------------------

SHEETS = {"XDIS91 -> CareCommunication": "to-fhir", "XDIS91+MedBin -> CareCommunicat": "to-fhir",
          "CareCommunication -> XDIS91 ": "to-oioxml", "CareCommunicat -> XDIS91+MedBin": "to-oioxml"}


def table_rows(path: Path) -> list[tuple[str, int, str]]:
    """(sheet, row number, the row's key): its Name, or for a nameless row the first element it names."""
    rows = []
    for sheet in openpyxl.load_workbook(path, read_only=True).worksheets:
        for number, row in enumerate(sheet.iter_rows(values_only=True), 1):
            cells = [str(c).strip() if c is not None else "" for c in row[:7]]
            if number == 1 or all(c in ("", "-") for c in cells):
                continue
            key = cells[0] if cells[0] not in ("", "-") else next(
                c.rsplit(".", 1)[-1] for c in cells[1:] if c not in ("", "-"))
            rows.append((sheet.title, number, key))
    return rows


def test_every_row_of_medcoms_carecommunication_tables_is_accounted_for() -> None:
    table = field_table()
    rows = table_rows(TABLES / "Mapning-XDIS91-CareCommunication_v500_januar2026.xlsx")
    assert {sheet for sheet, _, _ in rows} == set(SHEETS)
    assert len(rows) == 292  # every row with anything in it: 78 + 70 + 75 + 69
    field_names = {f.name for f in table.fields}
    missing = []
    for sheet, number, key in rows:
        direction = table.rows[SHEETS[sheet]]
        entry = direction.get(key) or next((e for k, e in direction.items() if k.lower() == key.lower()), None)
        if entry is None:
            missing.append(f"{sheet} row {number}: {key}")
            continue
        assert {"field", "rule", "not-applicable"} & set(entry), (sheet, number, key)
        if "field" in entry:
            assert entry["field"] in field_names, (sheet, number, entry)
        if "rule" in entry:
            assert entry["rule"] in RULES and all(callable(f) for f in RULES[entry["rule"]]), (sheet, number, entry)
        if "not-applicable" in entry:
            assert len(entry["not-applicable"]) > 10, "a reason, in words"
    assert missing == []


# --- Flow 1: XDIS91 + XBIN01 → CareCommunication, field by field ---------------------------------------------

def test_flow1_is_reproduced_field_by_field(converter: Converter, validator: Validator) -> None:
    [conversion] = converter.to_fhir(flow1_roots())
    ours = conversion.bundle
    assert ours is not None
    medcom = parse_xml((EXAMPLES / "Flow1-CareCommunication_Ex_from_OIOXML.xml").read_bytes())
    assert_valid(ours, validator)
    assert ours["timestamp"] == medcom["timestamp"] == "2023-11-20T17:45:00+01:00"
    assert ours["meta"] == medcom["meta"] and ours["type"] == medcom["type"]
    header, expected = one(ours, "MessageHeader"), one(medcom, "MessageHeader")
    for key in ("eventCoding", "source", "definition", "meta"):
        assert header[key] == expected[key], key
    assert header["destination"][0]["endpoint"] == expected["destination"][0]["endpoint"]
    assert header["destination"][0]["extension"] == expected["destination"][0]["extension"]

    def org(bundle: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
        return next(r for r in resources(bundle, "Organization") if ref["reference"].endswith(r["id"]))

    for path in (("sender",), ("destination", 0, "receiver")):
        ours_ref, medcom_ref = header, expected
        for step in path:
            ours_ref, medcom_ref = ours_ref[step], medcom_ref[step]  # type: ignore[index]
        a, b = org(ours, ours_ref), org(medcom, medcom_ref)
        assert (a["identifier"], a["name"], a["meta"]) == (b["identifier"], b["name"], b["meta"])

    patient, expected = one(ours, "Patient"), one(medcom, "Patient")
    assert patient["identifier"] == expected["identifier"] and patient["address"] == expected["address"]
    assert patient["name"][0]["given"] == expected["name"][0]["given"] == ["Nancy", "Ann"]
    # Documented difference: MedCom's output names the family "Hansen"; the letter it converts says
    # "Ann Berggren". The rule (last word = family) gives what the letter says.
    assert patient["name"][0]["family"] == "Berggren" and expected["name"][0]["family"] == "Hansen"

    comm, expected = one(ours, "Communication"), one(medcom, "Communication")
    for key in ("status", "category", "topic", "meta"):
        assert comm[key] == expected[key], key
    assert len(comm["payload"]) == len(expected["payload"]) == 2
    text, file_ = comm["payload"]
    assert text["contentString"] == expected["payload"][0]["contentString"]
    ext = {e["url"].rsplit("/", 1)[-1]: e for e in text["extension"]}
    medcom_ext = {e["url"].rsplit("/", 1)[-1]: e for e in expected["payload"][0]["extension"]}
    assert ext.keys() == medcom_ext.keys()
    assert ext["medcom-core-datetime-extension"] == medcom_ext["medcom-core-datetime-extension"]
    assert ext["medcom-core-contact-extension"] == medcom_ext["medcom-core-contact-extension"]
    assert file_["contentAttachment"] == expected["payload"][1]["contentAttachment"]
    ours_id = next(e for e in file_["extension"] if e["url"].endswith("identifier-extension"))["valueIdentifier"]
    medcom_id = next(e for e in expected["payload"][1]["extension"]
                     if e["url"].endswith("identifier-extension"))["valueIdentifier"]
    assert ours_id["value"] == medcom_id["value"] == "urn:uuid:c39ea6b2-6052-45e4-a207-415e0205ab6f"

    provenance, expected = one(ours, "Provenance"), one(medcom, "Provenance")
    for key in ("occurredDateTime", "recorded", "activity", "meta"):
        assert provenance[key] == expected[key], key
    assert [e["role"] for e in provenance["entity"]] == [e["role"] for e in expected["entity"]]
    # Documented difference: MedCom's output reads an author out of the text's signature ("overlæge K.
    # Petersen"); its table says role 'ukendt' and the organisation's name, which the converter follows.
    role = one(ours, "PractitionerRole")["code"][0]["coding"][0]
    assert role == field_table().defaults["author_role"]
    assert one(ours, "Practitioner")["name"][0]["text"] == "MedCom testcenter"
    assert [r["resourceType"] for r in resources(ours, "Encounter")] == []  # no episode of care id: no Encounter


def test_flow1_record_names_both_original_letters(converter: Converter) -> None:
    [conversion] = converter.to_fhir(flow1_roots())
    assert [(r.kind, r.envelope_id, r.identifier, r.version_code) for r in conversion.letters] == [
        ("XDIS91", "KuvNrerwerwe99", "Brevt23400929", "XD9134L"),
        ("XBIN01", "MEDBIN62529", "031120PWE62528", "XB0131X")]
    again = converter.to_fhir(flow1_roots())[0]
    assert again.outputs == conversion.outputs  # ids derive from the letter: the same letter, the same Bundle


def canonical(element: etree._Element | None) -> bytes:
    """An element in canonical XML without the whitespace between elements (layout is not content)."""
    assert element is not None
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(etree.tostring(element), parser), method="c14n")


# --- Flow 2: the Acknowledgement of the converted message → XCTL03, one per original envelope ------------------

def test_flow2_acknowledgement_becomes_medcoms_positive_receipts(converter: Converter, data_root: Path,
                                                                  schemas: OioxmlSchemas) -> None:
    [conversion] = converter.to_fhir(flow1_roots())
    ack = parse_xml((EXAMPLES / "Flow2-Acknowledgement_Ex_to_OIOXML.xml").read_bytes())
    assert ack["entry"][0]["resource"]["response"]["identifier"] == MEDCOM_HEADER_ID
    # MedCom's service gave the flow-1 message its own MessageHeader id; the record is keyed by ours, so the
    # example's acknowledgement is matched to our record of the same letters.
    writer = ReceiptWriter(data_root / "standards/files/medcom/xml/schemas")
    produced = ack_to_receipts(ack, conversion.letters, oioxml_codes(), writer)
    assert len(produced) == 2
    for body, name in zip(produced, ("Flow2-XCTL03_Ex_from_FHIR_XDIS91.xml", "Flow2-XCTL03_Ex_from_FHIR_XBIN01.xml"),
                          strict=True):
        ours, medcom = etree.fromstring(body), etree.parse(str(EXAMPLES / name)).getroot()
        assert schemas.validate(ours) == []
        assert body.startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")
        assert etree.QName(ours).namespace == etree.QName(medcom).namespace
        ns = {"m": etree.QName(medcom).namespace}
        for path in ("m:Envelope/m:AcknowledgementCode", "m:PositiveReceipt/m:Letter/m:VersionCode",
                     "m:PositiveReceipt/m:Letter/m:StatisticalCode", "m:PositiveReceipt/m:Sender/m:EANIdentifier",
                     "m:PositiveReceipt/m:Receiver/m:EANIdentifier"):
            assert ours.xpath(f"string({path})", namespaces=ns) == medcom.xpath(f"string({path})", namespaces=ns)
        assert canonical(ours.find("m:PositiveReceipt/m:OriginalEmessage", ns)) == \
            canonical(medcom.find("m:PositiveReceipt/m:OriginalEmessage", ns))
        # Documented differences: envelope and letter ids are generated (MedCom's are too); Sent is the
        # acknowledgement's timestamp in Danish time (the table's rule), where MedCom's example has 17:46 the
        # day the letter was sent.
        assert ours.xpath("string(m:Envelope/m:Sent/m:Date)", namespaces=ns) == "2023-11-22"
        assert ours.xpath("string(m:Envelope/m:Sent/m:Time)", namespaces=ns) == "13:33"


# --- Round trips ---------------------------------------------------------------------------------------------

KEPT_OIOXML = ("sent.date", "sent.time", "authorised.date", "authorised.time", "letter.status", "episode.id",
               "sender.ean", "receiver.ean", "patient.cpr", "patient.alternative", "patient.surname",
               "patient.given", "patient.street", "patient.district", "patient.postcode", "patient.episode_status",
               "priority", "subject")


def test_oioxml_to_fhir_to_oioxml_keeps_every_mapped_field(converter: Converter, schemas: OioxmlSchemas) -> None:
    original = converter.letters(flow1_roots())
    [conversion] = converter.to_fhir(flow1_roots())
    assert conversion.bundle is not None
    back = converter.to_oioxml(conversion.bundle)
    for output in back.outputs:
        assert schemas.validate(etree.fromstring(output.body)) == []
    again = converter.letters([etree.fromstring(o.body) for o in back.outputs])
    for before, after in zip(original, again, strict=True):
        assert before.kind == after.kind
        for name in KEPT_OIOXML:
            assert before.get(name) == after.get(name), name
        assert before.texts == after.texts
        assert [(a.object_id, a.extension_code, a.size, a.data) for a in before.attachments] == \
            [(a.object_id, a.extension_code, a.size, a.data) for a in after.attachments]
    # The SOR id replaces the EAN as the organisations' Identifier (IdentifierCode sorkode), as MedCom's table says.
    assert again[0].get("sender.id") == "359001000016000" and again[0].get("sender.id_code") == "sorkode"


def lines(text: str) -> str:
    """Text as OIOXML carries it: lines without blanks at their ends, no empty lines."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def send_examples() -> list[Path]:
    return sorted(SEND_EXAMPLES.glob("Bundle-*"))


@pytest.mark.parametrize("path", send_examples(), ids=lambda p: p.name[:24])
def test_medcoms_send_examples_convert_to_valid_oioxml_and_back(path: Path, converter: Converter,
                                                                 schemas: OioxmlSchemas, validator: Validator) -> None:
    raw = path.read_bytes()
    bundle = json.loads(raw) if path.suffix == ".json" else parse_xml(raw)
    conversion = converter.to_oioxml(bundle)
    files = [p for p in one(bundle, "Communication")["payload"] if "data" in p.get("contentAttachment", {})]
    assert [o.name.split("-")[0] for o in conversion.outputs] == ["XDIS91"] + ["XBIN01"] * len(files)
    for output in conversion.outputs:
        root = etree.fromstring(output.body)
        assert schemas.validate(root) == [], output.name
    [back] = converter.to_fhir([etree.fromstring(o.body) for o in conversion.outputs])
    assert back.bundle is not None
    assert_valid(back.bundle, validator)
    before, after = one(bundle, "Patient"), one(back.bundle, "Patient")
    cprs = [i for i in before["identifier"] if i["system"] == "urn:oid:1.2.208.176.1.2"]
    kept, *others = cprs + [i for i in before["identifier"] if i not in cprs]  # MedCom: the CPR, if there is one
    assert after["identifier"] == [kept]
    for other in others:  # the further (replacement) numbers go into the text, as MedCom says
        assert other["value"] in one(back.bundle, "Communication")["payload"][0]["contentString"]
    assert before["name"][0]["family"] == after["name"][0]["family"]
    assert before["name"][0].get("given", []) == after["name"][0].get("given", [])
    assert before.get("deceasedBoolean", False) == after.get("deceasedBoolean", False)
    comm_before, comm_after = one(bundle, "Communication"), one(back.bundle, "Communication")
    first_text = next(p["contentString"] for p in comm_before["payload"] if "contentString" in p)
    assert lines(first_text) in lines(comm_after["payload"][0]["contentString"])  # and the author line after it
    files_after = [p for p in comm_after["payload"] if "contentAttachment" in p]
    assert [p["contentAttachment"]["data"] for p in files] == [p["contentAttachment"]["data"] for p in
                                                                files_after if "data" in p["contentAttachment"]]
    sender = {i["system"]: i["value"] for i in resources(bundle, "Organization")[0]["identifier"]}
    assert sender.keys() <= {"https://www.gs1.org/gln", "urn:oid:1.2.208.176.1.1"}


# --- What the converter refuses, and why --------------------------------------------------------------------

def test_an_xdis91_without_its_xbin01_is_refused(converter: Converter) -> None:
    with pytest.raises(ConversionError, match="XBIN01 letter with attachment"):
        converter.to_fhir(flow1_roots()[:1])
    with pytest.raises(ConversionError, match="belongs to no XDIS91"):
        converter.to_fhir(flow1_roots()[1:])


def test_an_unknown_sender_without_a_sor_id_is_refused(data_root: Path, packages: Any) -> None:
    bare = Converter(data_root / "standards/files/medcom/xml/schemas", RoutingTable().organisation,
                     danish_display(packages), "https://hub.example/fhir")
    with pytest.raises(ConversionError, match="SOR id is not known for EAN 5790001382445"):
        bare.to_fhir(flow1_roots())


def test_a_file_type_carecommunication_does_not_take_is_refused(converter: Converter) -> None:
    roots = flow1_roots()
    for node in roots[1].iter("{*}ObjectExtensionCode"):
        node.text = "doc"
    with pytest.raises(ConversionError, match="file type 'doc'"):
        converter.to_fhir(roots)


def test_broken_base64_and_a_retraction_are_refused(converter: Converter) -> None:
    bundle = json.loads(next(p for p in send_examples() if p.suffix == ".json").read_bytes())
    communication = one(bundle, "Communication")
    broken = copy.deepcopy(bundle)
    one(broken, "Communication")["payload"].append({"contentAttachment": {
        "contentType": "application/pdf", "data": "not*base64", "title": "x"}})
    with pytest.raises(ConversionError, match="not base64"):
        converter.to_oioxml(broken)
    communication["status"] = "entered-in-error"
    with pytest.raises(ConversionError, match="retracted"):
        converter.to_oioxml(bundle)


def test_an_attachment_from_fhir_is_sized_and_typed_for_xbin01(converter: Converter, schemas: OioxmlSchemas) -> None:
    bundle = json.loads(next(p for p in send_examples() if p.suffix == ".json").read_bytes())
    data = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(200))).decode()
    one(bundle, "Communication")["payload"].append({"extension": [{
        "url": "http://medcomfhir.dk/ig/core/StructureDefinition/medcom-core-identifier-extension",
        "valueIdentifier": {"value": "urn:uuid:0f5e2a44-9d7e-4c1b-8c3e-2b7f0e6d1a90"}}],
        "contentAttachment": {"contentType": "image/png", "data": data, "title": "Sår, venstre fod"}})
    conversion = converter.to_oioxml(bundle)
    xdis91, xbin01 = (etree.fromstring(o.body) for o in conversion.outputs)
    assert all(schemas.validate(root) == [] for root in (xdis91, xbin01))
    ns = {"m": etree.QName(xdis91).namespace}
    assert xdis91.xpath("string(//m:Reference/m:BIN/m:ObjectIdentifier)", namespaces=ns) == \
        "0f5e2a449d7e4c1b8c3e2b7f0e6d1a90"  # without hyphens in the XDIS91, as MedCom says
    ns = {"m": etree.QName(xbin01).namespace}
    assert xbin01.xpath("string(//m:BinaryObject/m:ObjectIdentifier)", namespaces=ns) == \
        "0f5e2a44-9d7e-4c1b-8c3e-2b7f0e6d1a90"
    assert xbin01.xpath("string(//m:BinaryObject/m:OriginalObjectSize)", namespaces=ns) == "208"
    assert xbin01.xpath("string(//m:BinaryObject/m:ObjectExtensionCode)", namespaces=ns) == "png"
    assert xbin01.xpath("string(//m:BinaryObject/m:ObjectCode)", namespaces=ns) == "billede"


# --- hub convert --------------------------------------------------------------------------------------------

def hub_convert(data_root: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"receivers": [{**r.organisation.__dict__, "endpoint": r.endpoint}
                                                for r in DIRECTORY.routes if r.organisation],
                                  "organisations": [o.__dict__ for o in DIRECTORY.organisations]}))
    env = {**os.environ, "HUB_DATA_DIR": str(data_root), "HUB_ROUTES": str(routes)}
    return subprocess.run([sys.executable, "-m", "hub", "convert", *args], env=env, capture_output=True,
                          timeout=120, check=False)


def test_hub_convert_writes_one_file_per_message_and_prints_the_names(data_root: Path, tmp_path: Path,
                                                                      schemas: OioxmlSchemas) -> None:
    flow1 = [str(EXAMPLES / n) for n in ("Flow1-XDIS91_Ex_to_FHIR.xml", "Flow1-XBIN01_Ex_to_FHIR.xml")]
    to_fhir = hub_convert(data_root, tmp_path, *flow1, "--to", "fhir")
    assert to_fhir.returncode == 0, to_fhir.stderr
    bundle = json.loads(to_fhir.stdout)  # one result: on stdout
    assert one(bundle, "Communication")["topic"] == {"text": "Forundersøgelse"}
    fhir_file = tmp_path / "cc.json"
    fhir_file.write_bytes(to_fhir.stdout)
    out = tmp_path / "out"
    to_oioxml = hub_convert(data_root, tmp_path, str(fhir_file), "--to", "oioxml", "--out", str(out))
    assert to_oioxml.returncode == 0, to_oioxml.stderr
    names = to_oioxml.stdout.decode().split()
    assert [Path(n).name.split("-")[0] for n in names] == ["XDIS91", "XBIN01"]
    assert sorted(str(p) for p in out.iterdir()) == sorted(names)
    for name in names:
        assert schemas.validate(etree.parse(name).getroot()) == []
    several = hub_convert(data_root, tmp_path, str(fhir_file), "--to", "oioxml")
    assert several.returncode == 1 and b"name a folder with --out" in several.stderr


def test_hub_convert_says_why_it_cannot(data_root: Path, tmp_path: Path) -> None:
    lone = hub_convert(data_root, tmp_path, str(EXAMPLES / "Flow1-XDIS91_Ex_to_FHIR.xml"), "--to", "fhir")
    assert lone.returncode == 1 and b"XBIN01 letter with attachment" in lone.stderr
    wrong = hub_convert(data_root, tmp_path, str(EXAMPLES / "Flow2-Acknowledgement_Ex_to_OIOXML.xml"), "--to", "fhir")
    assert wrong.returncode == 1 and b"OIOXML Emessages only" in wrong.stderr


def test_hub_convert_converts_answers_with_the_messages_they_answer(data_root: Path, tmp_path: Path,
                                                                    schemas: OioxmlSchemas,
                                                                    validator: Validator) -> None:
    """MedCom's flow 2 on the command line: its Acknowledgement with flow 1's letters gives the two XCTL03s;
    its XCTL03 with flow 1's CareCommunication gives the Acknowledgement. The ids MedCom's service made are
    not the hub's, and the command says so."""
    letters = [str(EXAMPLES / name) for name in ("Flow1-XDIS91_Ex_to_FHIR.xml", "Flow1-XBIN01_Ex_to_FHIR.xml")]
    out = tmp_path / "receipts"
    run = hub_convert(data_root, tmp_path, str(EXAMPLES / "Flow2-Acknowledgement_Ex_to_OIOXML.xml"), *letters,
                      "--to", "oioxml", "--out", str(out))
    assert run.returncode == 0, run.stderr
    names = run.stdout.decode().split()
    assert len(names) == 2 and all(Path(n).name.startswith("XCTL03-") for n in names)
    originals = set()
    for name in names:
        root = etree.parse(name).getroot()
        assert schemas.validate(root) == []
        originals.add(root.findtext("{*}PositiveReceipt/{*}OriginalEmessage/{*}OriginalEnvelopeIdentifier"))
    assert originals == {etree.parse(p).getroot().findtext("{*}Envelope/{*}Identifier") for p in letters}
    assert f"answers message {MEDCOM_HEADER_ID}".encode() in run.stderr  # MedCom's own id, not the hub's

    back = hub_convert(data_root, tmp_path, str(EXAMPLES / "Flow2-XCTL03_Ex_from_FHIR_XDIS91.xml"),
                       str(EXAMPLES / "Flow1-CareCommunication_Ex_from_OIOXML.xml"), "--to", "fhir")
    assert back.returncode == 0, back.stderr
    ack = json.loads(back.stdout)
    assert ack["entry"][0]["resource"]["response"] == {"identifier": MEDCOM_HEADER_ID, "code": "ok"}
    assert validator.validate(ack).ok
    assert b"note: the receipt answers envelope" in back.stderr

    alone = hub_convert(data_root, tmp_path, str(EXAMPLES / "Flow2-XCTL03_Ex_from_FHIR_XDIS91.xml"), "--to", "fhir")
    assert alone.returncode == 1 and b"with the one CareCommunication they answer" in alone.stderr


def test_a_receipt_of_a_converted_letter_becomes_the_acknowledgement_of_the_fhir_message(
        converter: Converter, data_root: Path, validator: Validator) -> None:
    path = next(p for p in send_examples() if p.suffix == ".json")
    bundle = json.loads(path.read_bytes())
    conversion = converter.to_oioxml(bundle)
    writer = ReceiptWriter(data_root / "standards/files/medcom/xml/schemas")
    xdis91 = conversion.letters[0]
    envelope = EnvelopeRecord(xdis91.envelope_id, xdis91.sender_ean, xdis91.receiver_ean)
    event = {"system": "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-eventCodes",
             "code": "acknowledgement-message"}
    for kind, refusal, code in ((POSITIVE, None, "ok"),
                                (NEGATIVE, Refusal("ukendt_lokationsnummer", "Ukendt\nmodtager"), "fatal-error")):
        body = writer.receipts(envelope, [Receipt(kind, [(xdis91, refusal)])])
        receipt = next(c for c in etree.fromstring(body) if etree.QName(c).localname == kind.element)
        read = read_receipt(receipt)
        assert (read.original_envelope, read.original_letters) == (xdis91.envelope_id, [xdis91.identifier])
        ack = receipt_to_ack(read, conversion.message, oioxml_codes(), ErrorCodes.load(), event,
                             "https://hub.example/fhir", lambda: str(uuid.uuid4()))
        assert_valid(ack, validator)
        assert ack["entry"][0]["resource"]["response"]["identifier"] == one(bundle, "MessageHeader")["id"]
        assert ack["entry"][0]["resource"]["response"]["code"] == code
        if refusal is not None:
            [issue] = one(ack, "OperationOutcome")["issue"]
            assert issue["code"] == "not-found"
            assert issue["details"]["text"] == "Ukendt\nmodtager"
            assert issue["details"]["coding"][0]["code"] == "MSG_Receiver_Identifier_UNKNOWN"
