"""MedCom's XCTL ⇄ Acknowledgement table (`Mapning-XCTL-Acknowledgement.xlsx`): every row accounted for in
`mappings/medcom-xctl-acknowledgement.json`, and, by behaviour, the rows the converter's receipt tests
(`tests/convert/test_service.py`) leave out
(negative receipts both ways, every RefuseCode, the parties, endpoints and times of an Acknowledgement)."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from lxml import etree

from hub.convert.receipts import (
    RECEIPT_RULES,
    EnvelopeRecord,
    LetterRecord,
    MessageRecord,
    ReadReceipt,
    ack_to_receipts,
    read_receipt,
    receipt_to_ack,
)
from hub.convert.service import Converter, danish_display
from hub.convert.tables import oioxml_codes
from hub.core.mappings import MAPPINGS
from hub.fhir.io import parse_xml
from hub.fhir.messaging import ErrorCodes
from hub.fhir.validator import Validator
from hub.medcom.receipts import (
    NEGATIVE,
    NEGATIVE_VANS,
    POSITIVE,
    Receipt,
    ReceiptKind,
    ReceiptWriter,
    Refusal,
)
from hub.medcom.schemas import OioxmlSchemas
from tests.convert.test_service import DIRECTORY, EXAMPLES, TABLES, flow1_roots, one, send_examples, table_rows

TABLE = TABLES / "Mapning-XCTL-Acknowledgement.xlsx"
MAPPING = MAPPINGS / "medcom-xctl-acknowledgement.json"
RECORDS = {c.__name__: c for c in (ReadReceipt, LetterRecord, EnvelopeRecord, MessageRecord, ReceiptKind, Refusal)}
STATUSES = ("field", "rule", "not-applicable", "gap")
GLN, SOR = "https://www.gs1.org/gln", "urn:oid:1.2.208.176.1.1"
ERROR_CODES = "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-acknowledgement-error-codes"
EVENT = {"system": "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-messaging-eventCodes",
         "code": "acknowledgement-message"}
BASE = "https://hub.example/fhir"

# Rows MedCom's table asks for that hub/convert/receipts.py does not do yet (the mapping file's `gap` entries say
# what is missing). Implementing one means turning its entry into a field/rule and taking it off this list.
KNOWN_GAPS: set[tuple[str, str]] = set()



@pytest.fixture(scope="module")
def converter(data_root: Path, packages: Any) -> Converter:
    return Converter(data_root / "standards/files/medcom/xml/schemas", DIRECTORY.organisation,
                     danish_display(packages), BASE)



@pytest.fixture(scope="module")
def writer(data_root: Path) -> ReceiptWriter:
    return ReceiptWriter(data_root / "standards/files/medcom/xml/schemas")


# --- MedCom's table, every row accounted for ----------------------------------------------------------------

def block_kind(element: str) -> str | None:
    """The one receipt kind an XCTL element names (MedCom writes NegativVANSReceipt, NegativReceipt,
    PositiveReceipt), or None for an element of every receipt or of the envelope."""
    step = element.split(".")[1] if "." in element else ""
    lowered = step.lower()
    if "/" in step or not lowered.endswith(("receipt", "receiptt")):
        return None
    return "NegativeVansReceipt" if "vans" in lowered else "NegativeReceipt" if lowered.startswith(
        "negativ") else "PositiveReceipt"


def receipt_rows(path: Path) -> list[tuple[str, int, str]]:
    """(sheet, row number, key) of every row with content, the heading row included (as its first cell, `Name`).
    The key is table_rows' key; a Name the sheet repeats (its refusal rows come once per receipt kind) is followed
    by the receipt kind of its block: the last XCTL element at or above the row that names one kind."""
    rows = table_rows(path)
    keyed = []
    for sheet in openpyxl.load_workbook(path, read_only=True).worksheets:
        cells = [[str(c).strip() if c is not None else "" for c in row] for row in sheet.iter_rows(values_only=True)]
        column = cells[0].index("XCTL element")
        kinds: dict[int, str | None] = {}
        kind = None
        for number, row in enumerate(cells, 1):
            kind = block_kind(row[column]) or kind
            kinds[number] = kind
        mine = [(number, key) for name, number, key in rows if name == sheet.title]
        repeated = {key for key, count in Counter(key for _, key in mine).items() if count > 1}
        keyed.append((sheet.title, 1, cells[0][0]))
        for number, key in mine:
            assert key not in repeated or kinds[number], (sheet.title, number, key)
            keyed.append((sheet.title, number, f"{key} ({kinds[number]})" if key in repeated else key))
    return keyed


def test_every_row_of_medcoms_xctl_acknowledgement_table_is_accounted_for() -> None:
    mapping = json.loads(MAPPING.read_text(encoding="utf-8"))
    rows = receipt_rows(TABLE)
    assert Counter(sheet for sheet, _, _ in rows) == {"XCTL -> Acknowledgement": 47, "Acknowledgement -> XCTL": 45}
    assert mapping["sheets"] == {"XCTL -> Acknowledgement": "to-fhir", "Acknowledgement -> XCTL": "to-oioxml"}
    assert len(set(rows)) == len({(sheet, key) for sheet, _, key in rows}) == len(rows)  # one key, one row
    missing, gaps, used = [], set(), set()
    for sheet, number, key in rows:
        direction = mapping["sheets"][sheet]
        entry = mapping["rows"][direction].get(key)
        if entry is None:
            missing.append(f"{sheet} row {number}: {key}")
            continue
        used.add((direction, key))
        statuses = [s for s in STATUSES if s in entry]
        assert statuses, (sheet, number, key)
        assert not ({"gap", "not-applicable"} & set(statuses)) or len(statuses) == 1, (sheet, number, entry)
        if "field" in entry:
            record, _, attribute = entry["field"].partition(".")
            assert record in RECORDS, (sheet, number, entry)
            assert attribute in {f.name for f in dataclasses.fields(RECORDS[record])}, (sheet, number, entry)
        if "rule" in entry:
            functions = RECEIPT_RULES.get(entry["rule"], ())
            assert functions and all(callable(f) for f in functions), (sheet, number, entry)
        for said in ("not-applicable", "gap"):
            if said in entry:
                assert len(entry[said]) > 10, "a reason, in words"
        if "gap" in entry:
            gaps.add((direction, key))
    assert missing == []
    stale = {(d, k) for d, entries in mapping["rows"].items() for k in entries} - used
    assert stale == set(), "entries for rows MedCom's table does not have"
    named = {e["rule"] for entries in mapping["rows"].values() for e in entries.values() if "rule" in e}
    assert named == set(RECEIPT_RULES), "every registered rule is a rule of the table"
    assert gaps == KNOWN_GAPS


# --- RefuseCode ⇄ MedCom's error codes and issue types (Refuse Code, Additional refuse code, Refuse text) ------

REFUSALS = [  # RefuseCode, issue.code, issue.details.coding (MedCom), the RefuseCode that Acknowledgement gives back
    ("ukendt_lokationsnummer", "not-found", "MSG_Receiver_Identifier_UNKNOWN", "ukendt_lokationsnummer"),
    ("problem_med_modtagerID", "not-found", "MSG_Receiver_Identifier_UNKNOWN", "ukendt_lokationsnummer"),
    ("problem_med_version", "not-supported", "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE", "problem_med_version"),
    ("syntaksfejl", "structure", None, "syntaksfejl"),
    ("ikke_specificeret", "processing", None, "ikke_specificeret"),
]


def test_the_refuse_codes_are_every_refuse_code_of_the_receipt_schema(data_root: Path) -> None:
    xsd = data_root / "standards/files/medcom/xml/schemas/2005/08/07/NegativeReceipt.xsd"
    tree = etree.parse(str(xsd), etree.XMLParser(resolve_entities=False, no_network=True))
    allowed = set(tree.xpath("//xs:element[@name='RefuseCode']//xs:enumeration/@value",
                             namespaces={"xs": "http://www.w3.org/2001/XMLSchema"}))
    assert allowed == {code for code, *_ in REFUSALS}


def converted(converter: Converter) -> Any:
    bundle = json.loads(next(p for p in send_examples() if p.suffix == ".json").read_bytes())
    return bundle, converter.to_oioxml(bundle)


def receipt_element(body: bytes, kind: ReceiptKind) -> etree._Element:
    return next(c for c in etree.fromstring(body) if etree.QName(c).localname == kind.element)


def xpath(root: etree._Element, path: str) -> str:
    return str(root.xpath(f"string({path})", namespaces={"m": etree.QName(root).namespace}))


@pytest.mark.parametrize(("refuse", "issue_code", "medcom", "back"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_refuse_code_becomes_medcoms_error_code_and_back(
        refuse: str, issue_code: str, medcom: str | None, back: str, converter: Converter, writer: ReceiptWriter,
        schemas: OioxmlSchemas, validator: Validator) -> None:
    _, conversion = converted(converter)
    letter = conversion.letters[0]
    envelope = EnvelopeRecord(letter.envelope_id, letter.sender_ean, letter.receiver_ean)
    body = writer.receipts(envelope, [Receipt(NEGATIVE, [(letter, Refusal(refuse, "Linje et\nLinje to"))])])
    ack = receipt_to_ack(read_receipt(receipt_element(body, NEGATIVE)), conversion.message, oioxml_codes(),
                         ErrorCodes.load(), EVENT, BASE, lambda: str(uuid.uuid4()))
    verdict = validator.validate(ack)
    assert verdict.ok, [i.diagnostics for i in verdict.issues if i.severity == "error"]
    assert ack["entry"][0]["resource"]["response"]["code"] == "fatal-error"
    [issue] = one(ack, "OperationOutcome")["issue"]
    assert (issue["severity"], issue["code"], issue["details"]["text"]) == ("error", issue_code, "Linje et\nLinje to")
    codings = issue["details"].get("coding", [])
    assert [c["code"] for c in codings if c["system"] == ERROR_CODES] == ([medcom] if medcom else [])

    [again] = ack_to_receipts(ack, conversion.letters, oioxml_codes(), writer)
    root = etree.fromstring(again)
    assert schemas.validate(root) == []
    assert xpath(root, "m:NegativeReceipt/m:OriginalEmessage/m:RefuseCode") == back  # on the envelope, as the table
    assert xpath(root, "m:NegativeReceipt/m:OriginalEmessage/m:OriginalLetter/m:RefuseCode") == ""
    text = root.find("{*}NegativeReceipt/{*}OriginalEmessage/{*}RefuseText")
    assert text is not None and text.text == "Linje et" and [b.tail for b in text] == ["Linje to"]


@pytest.mark.parametrize(("medcom", "issue_code", "refuse"), [
    ("MSG_Receiver_Identifier_MISSING", "required", "problem_med_modtagerID"),  # MedCom's code decides first
    ("MSG_Receiver_Identifier_UNKNOWN", "not-found", "ukendt_lokationsnummer"),
    ("MSG_SOMETHING_ELSE", "structure", "ikke_specificeret"),  # a MedCom code the map does not list
    (None, "required", "syntaksfejl"),  # no MedCom code: the issue type
    (None, "value", "syntaksfejl"),
    (None, "exception", "ikke_specificeret"),
])
def test_an_acknowledgements_issue_chooses_the_refuse_code(medcom: str | None, issue_code: str, refuse: str,
                                                           converter: Converter, writer: ReceiptWriter) -> None:
    [conversion] = converter.to_fhir(flow1_roots())
    ack = negative(issue_code, medcom, "Afvist")
    for body in ack_to_receipts(ack, conversion.letters, oioxml_codes(), writer):
        assert xpath(etree.fromstring(body), "m:NegativeReceipt/m:OriginalEmessage/m:RefuseCode") == refuse


# --- Acknowledgement → XCTL: a negative one, and where each part of the receipt comes from ------------------

def negative(issue_code: str, medcom: str | None, text: str, response: str = "fatal-error",
             timestamp: str = "2024-07-01T22:30:00Z") -> dict[str, Any]:
    """MedCom's flow 2 Acknowledgement, made negative, with one OperationOutcome issue."""
    ack = copy.deepcopy(parse_xml((EXAMPLES / "Flow2-Acknowledgement_Ex_to_OIOXML.xml").read_bytes()))
    ack["timestamp"] = timestamp
    header = ack["entry"][0]["resource"]
    header["response"] = {**header["response"], "code": response,
                          "details": {"reference": "OperationOutcome/8d3c6fe4-5d7c-4a4e-9d89-3a0c1f6e1b2a"}}
    details: dict[str, Any] = {"text": text}
    if medcom:
        details["coding"] = [{"system": ERROR_CODES, "code": medcom}]
    ack["entry"].append({"fullUrl": f"{BASE}/OperationOutcome/8d3c6fe4-5d7c-4a4e-9d89-3a0c1f6e1b2a", "resource": {
        "resourceType": "OperationOutcome", "id": "8d3c6fe4-5d7c-4a4e-9d89-3a0c1f6e1b2a",
        "issue": [{"severity": "error", "code": issue_code, "details": details}]}})
    return ack


@pytest.mark.parametrize("response", ["fatal-error", "transient-error"])
def test_a_negative_acknowledgement_becomes_an_xctl02_for_each_original_envelope(
        response: str, converter: Converter, writer: ReceiptWriter, schemas: OioxmlSchemas) -> None:
    [conversion] = converter.to_fhir(flow1_roots())
    ack = negative("not-supported", "MSG_RECEIVER_UNABLE_TO_RECEIVE_MSG_TYPE", "Kan ikke modtage\nden type",
                   response=response)
    produced = ack_to_receipts(ack, conversion.letters, oioxml_codes(), writer)
    assert len(produced) == len({one.envelope_id for one in conversion.letters}) == 2
    for body, letter in zip(produced, conversion.letters, strict=True):
        root = etree.fromstring(body)
        assert schemas.validate(root) == []
        assert [etree.QName(c).localname for c in root] == ["Envelope", "NegativeReceipt"]
        # Bundle.timestamp in Danish (summer) time; the receipt asks for no receipt
        assert (xpath(root, "m:Envelope/m:Sent/m:Date"), xpath(root, "m:Envelope/m:Sent/m:Time")) == \
            ("2024-07-02", "00:30")
        assert xpath(root, "m:Envelope/m:AcknowledgementCode") == "minuspositivkvitt"
        receipt = "m:NegativeReceipt/"
        assert xpath(root, receipt + "m:Letter/m:VersionCode") == "XC0230Q"  # NegativeReceipt.xsd's
        assert xpath(root, receipt + "m:Letter/m:StatisticalCode") == "XCTL02"
        # from the letter's receiver back to its sender; the original envelope and letter as the record says
        assert xpath(root, receipt + "m:Sender/m:EANIdentifier") == letter.receiver_ean == "5790000121441"
        assert xpath(root, receipt + "m:Receiver/m:EANIdentifier") == letter.sender_ean == "5790001382445"
        original = receipt + "m:OriginalEmessage/"
        assert xpath(root, original + "m:OriginalEnvelopeIdentifier") == letter.envelope_id
        assert xpath(root, original + "m:OriginalSender/m:EANIdentifier") == letter.sender_ean
        assert xpath(root, original + "m:OriginalReceiver/m:EANIdentifier") == letter.receiver_ean
        assert xpath(root, original + "m:OriginalLetter/m:OriginalLetterIdentifier") == letter.identifier
        assert xpath(root, original + "m:OriginalLetter/m:OriginalVersionCode") == letter.version_code
        assert xpath(root, original + "m:RefuseCode") == "problem_med_version"
        lines = [t.strip() for t in root.xpath(original + "m:RefuseText//text()",
                                               namespaces={"m": etree.QName(root).namespace})]
        expected = ["Kan ikke modtage", "den type"]
        assert lines == (["Midlertidig fejl, send igen senere.", *expected] if response == "transient-error"
                         else expected)
    assert [one.version_code for one in conversion.letters] == ["XD9134L", "XB0131X"]


# --- XCTL → Acknowledgement: each receipt kind, the parties, endpoints and times ----------------------------

@pytest.mark.parametrize(("kind", "code"), [(POSITIVE, "ok"), (NEGATIVE, "fatal-error"),
                                            (NEGATIVE_VANS, "fatal-error")], ids=lambda k: getattr(k, "element", k))
def test_a_receipt_becomes_an_acknowledgement_from_the_receipts_sender(
        kind: ReceiptKind, code: str, converter: Converter, writer: ReceiptWriter, validator: Validator) -> None:
    bundle, conversion = converted(converter)
    letter = conversion.letters[0]
    envelope = EnvelopeRecord(letter.envelope_id, letter.sender_ean, letter.receiver_ean)
    negative_one = kind is not POSITIVE
    refusal = Refusal("ukendt_lokationsnummer", "Ukendt modtager") if negative_one else None
    envelope_refusal = Refusal("syntaksfejl", "Kuverten kan ikke læses") if negative_one else None
    body = writer.receipts(envelope, [Receipt(kind, [(letter, refusal)], envelope_refusal)])
    element = receipt_element(body, kind)
    read = read_receipt(element)
    assert read.kind is kind
    assert (read.original_envelope, read.original_sender_ean, read.original_letters) == \
        (letter.envelope_id, letter.sender_ean, [letter.identifier])
    assert read.refusals == ([("syntaksfejl", "Kuverten kan ikke læses"), ("ukendt_lokationsnummer", "Ukendt modtager")]
                             if negative_one else [])  # the envelope's first

    now = datetime(2024, 3, 5, 9, 15, tzinfo=UTC)
    ack = receipt_to_ack(read, conversion.message, oioxml_codes(), ErrorCodes.load(), EVENT, BASE,
                         lambda: str(uuid.uuid4()), now)
    verdict = validator.validate(ack)
    assert verdict.ok, [i.diagnostics for i in verdict.issues if i.severity == "error"]
    assert ack["type"] == "message"
    header = ack["entry"][0]["resource"]
    assert header["response"]["code"] == code
    assert header["response"]["identifier"] == one(bundle, "MessageHeader")["id"]
    assert header["eventCoding"] == EVENT

    def organisation(reference: dict[str, str]) -> dict[str, str]:
        org = next(e["resource"] for e in ack["entry"] if e["fullUrl"].endswith(reference["reference"]))
        return {i["system"]: i["value"] for i in org["identifier"]} | {"name": org["name"]}

    ns = {"m": etree.QName(element).namespace}
    sender, receiver = organisation(header["sender"]), organisation(header["destination"][0]["receiver"])
    # EAN id for sender/receiver: the receipt's Sender and Receiver; Original sender: the Acknowledgement's receiver
    assert sender[GLN] == element.xpath("string(m:Sender/m:EANIdentifier)", namespaces=ns) == letter.receiver_ean
    assert receiver[GLN] == element.xpath("string(m:Receiver/m:EANIdentifier)", namespaces=ns) == \
        element.xpath("string(m:OriginalEmessage/m:OriginalSender/m:EANIdentifier)", namespaces=ns)
    assert sender[GLN] == element.xpath("string(m:OriginalEmessage/m:OriginalReceiver/m:EANIdentifier)",
                                        namespaces=ns)
    # SOR ids and names: the FHIR message's own Organizations, swapped
    message_header = one(bundle, "MessageHeader")
    sor = {role: next(i["value"] for i in org["identifier"] if i["system"] == SOR)
           for role, org in (("sender", conversion.message.sender), ("receiver", conversion.message.receiver))}
    assert (sender[SOR], sender["name"]) == (sor["receiver"], conversion.message.receiver["name"])
    assert (receiver[SOR], receiver["name"]) == (sor["sender"], conversion.message.sender["name"])
    assert receiver[SOR] == "441211000016000"
    # the endpoints swapped too, and the destination is primary
    assert header["destination"][0]["endpoint"] == message_header["source"]["endpoint"]
    assert header["source"]["endpoint"] == message_header["destination"][0]["endpoint"]
    assert header["destination"][0]["extension"][0]["valueCoding"]["code"] == "primary"
    provenance = one(ack, "Provenance")
    assert ack["timestamp"] == provenance["occurredDateTime"] == provenance["recorded"] == "2024-03-05T09:15:00Z"
    assert provenance["activity"]["coding"][0]["code"] == "acknowledgement"
    original = {"reference": f"MessageHeader/{message_header['id']}"}
    assert provenance["entity"] == [{"role": "revision", "what": original}]
    if negative_one:
        issues = one(ack, "OperationOutcome")["issue"]
        assert [(i["severity"], i["code"], i["details"]["text"]) for i in issues] == [
            ("error", "structure", "Kuverten kan ikke læses"), ("error", "not-found", "Ukendt modtager")]
    else:
        assert [e for e in ack["entry"] if e["resource"]["resourceType"] == "OperationOutcome"] == []


def test_the_same_receipt_gives_the_same_acknowledgement_at_the_receipts_time(
        converter: Converter, writer: ReceiptWriter) -> None:
    _, conversion = converted(converter)
    letter = conversion.letters[0]
    envelope = EnvelopeRecord(letter.envelope_id, letter.sender_ean, letter.receiver_ean)
    sent = datetime(2024, 12, 24, 9, 15, tzinfo=UTC)  # 10:15 in Copenhagen
    root = etree.fromstring(writer.receipts(envelope, [Receipt(POSITIVE, [(letter, None)])], sent))
    read = read_receipt(root.find("{*}PositiveReceipt"), root.find("{*}Envelope"))
    assert read.sent == "2024-12-24T10:15:00+01:00" and read.sender_ean == letter.receiver_ean

    def ack() -> dict[str, Any]:
        return receipt_to_ack(read, conversion.message, oioxml_codes(), ErrorCodes.load(), EVENT, BASE,
                              lambda: str(uuid.uuid4()))

    first, again = ack(), ack()
    assert first == again  # ids derived from the receipt's sender, envelope and letter ids; its time
    assert first["timestamp"] == "2024-12-24T09:15:00Z"
    assert first["id"] != first["entry"][0]["resource"]["id"]
    other = read_receipt(root.find("{*}PositiveReceipt"))  # without its envelope: fresh ids, the time of now
    assert receipt_to_ack(other, conversion.message, oioxml_codes(), ErrorCodes.load(), EVENT, BASE,
                          lambda: str(uuid.uuid4()))["id"] != first["id"]


def test_the_same_acknowledgement_gives_the_same_receipts(converter: Converter, writer: ReceiptWriter) -> None:
    [conversion] = converter.to_fhir(flow1_roots())
    ack = negative("not-found", None, "Ukendt")
    first = ack_to_receipts(ack, conversion.letters, oioxml_codes(), writer)
    assert first == ack_to_receipts(ack, conversion.letters, oioxml_codes(), writer)
    ids = {xpath(etree.fromstring(body), path) for body in first
           for path in ("m:Envelope/m:Identifier", "m:NegativeReceipt/m:Letter/m:Identifier")}
    assert len(ids) == 4 and all(len(i) == 14 for i in ids)  # two envelopes, each its own envelope and letter id
    ack["id"] = "0c8f1d2e-5b6a-4c3d-9e8f-7a6b5c4d3e2f"
    assert ack_to_receipts(ack, conversion.letters, oioxml_codes(), writer) != first
