"""The VANS envelope (`hub/medcom/vans.py`) on MedCom's own example messages.

Expected values come from outside the module under test: the examples' own category, activity and response
codes, MedCom's CodeSystem and ConceptMap files read straight from the standards folder, and envelope XML
parsed here with lxml (or written here by hand in the schema's shape) rather than by `vans` itself.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from hub.core.errors import InvalidInput
from hub.fhir.io import parse_xml
from hub.medcom import vans
from hub.medcom.vans import Endpoint, InvalidEnvelope, StatisticalCodes, VansEnvelope
from tests.conftest import SHARED

MEDCOM = SHARED / "medcom"
SEND = MEDCOM / "fhir" / "medcom.fhir.dk.carecommunication" / "examples" / "SendExamples"
CC_PACKAGE = MEDCOM / "fhir" / "medcom.fhir.dk.carecommunication" / "5.0.2" / "package" / "example"
HN = MEDCOM / "fhir" / "medcom.fhir.dk.hospitalnotification" / "3.0.2" / "package" / "example"
ACK = MEDCOM / "fhir" / "medcom.fhir.dk.acknowledgement" / "2.0.3" / "package" / "example"
FLOWS = MEDCOM / "xml" / "examples" / "carecommunication-conversion"
TERMINOLOGY = MEDCOM / "fhir" / "medcom.fhir.dk.terminology" / "2.0.2" / "package"

NS = "urn:oio:medcom:vans-envelope:1.0.4"  # the namespace of Den Gode VANSEnvelope's schema, version 1.0.4
V = f"{{{NS}}}"
FHIR_NS = {"f": "http://hl7.org/fhir"}
CATEGORY_SYSTEM = "http://medcomfhir.dk/ig/terminology/CodeSystem/medcom-careCommunication-categoryCodes"
# Location numbers of the schema's own example envelope (both with a valid GS1 check digit).
SENDER = Endpoint("5790001659592")
RECEIVER = Endpoint("5790000121526")
ENVELOPE_ID = "068dadff-12bb-406d-8c86-083974dc0180"
MESSAGE_ID = "5f0c63a4-3b0e-4a57-9a9b-2a4f3c9e8d11"
SENT = datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def codes(packages: Any) -> StatisticalCodes:
    return StatisticalCodes.from_packages(packages)


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _bundle(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    return parse_xml(raw) if path.suffix == ".xml" else _json(path)


def _codesystem_codes() -> set[str]:
    """MedCom's statistical codes, read straight from the terminology package file."""
    return {c["code"] for c in _json(TERMINOLOGY / "CodeSystem-medcom-messaging-statisticalCodes.json")["concept"]}


def _category_in_file(path: Path) -> str:
    """The CareCommunication category the example file itself carries (JSON by keys, XML by XPath)."""
    if path.suffix == ".xml":
        tree = etree.parse(str(path))
        found = tree.xpath("//f:Communication/f:category/f:coding[f:system/@value=$s]/f:code/@value",
                           namespaces=FHIR_NS, s=CATEGORY_SYSTEM)
        assert len(found) == 1
        return str(found[0])
    found_json = [c["code"] for e in _json(path)["entry"] if e["resource"]["resourceType"] == "Communication"
                  for concept in e["resource"]["category"] for c in concept["coding"]
                  if c["system"] == CATEGORY_SYSTEM]
    assert len(found_json) == 1
    return str(found_json[0])


def _response_in_file(path: Path) -> str:
    if path.suffix == ".xml":
        found = etree.parse(str(path)).xpath("//f:MessageHeader/f:response/f:code/@value", namespaces=FHIR_NS)
        return str(found[0])
    match = re.search(r'"response"\s*:\s*\{[^}]*?"code"\s*:\s*"([^"]+)"', path.read_text(encoding="utf-8"))
    assert match
    return match.group(1)


def _envelope(path: Path, codes: StatisticalCodes, **changes: Any) -> VansEnvelope:
    raw = path.read_bytes()
    env = VansEnvelope(sender=SENDER, receiver=RECEIVER, envelope_id=ENVELOPE_ID, message_id=MESSAGE_ID, sent=SENT,
                       name=vans.document_name(_bundle(path), codes), mime_type=vans.fhir_mime_type(raw), data=raw,
                       version="5.0")
    return replace(env, **changes)


# --- the statistical codes are MedCom's, loaded from the packages -----------------------------------------------


def test_codes_are_medcoms_codesystem(codes: StatisticalCodes) -> None:
    assert set(codes.codes.values()) == _codesystem_codes()
    type_numbers = {c["code"] for c in _json(TERMINOLOGY / "CodeSystem-medcom-messaging-sorEdiSystem.json")["concept"]}
    assert codes.type_numbers == type_numbers == {"FDIS91", "FDIS20", "FCTL"}


def test_type_numbers_follow_medcoms_conceptmap() -> None:
    conceptmap = _json(TERMINOLOGY / "example" / "ConceptMap-medcom-messaging-mapFhirToSorEdi.json")
    medcom = {e["code"]: e["target"][0]["code"] for g in conceptmap["group"] for e in g["element"]}
    assert dict(vans.EVENT_TYPE_NUMBERS) == medcom


def test_hospital_notification_variants_cover_medcoms_activities(packages: Any) -> None:
    valueset = packages.get("http://medcomfhir.dk/ig/terminology/ValueSet/medcom-hospitalNotification-messageActivities",
                            "ValueSet")
    activities = {c["code"] for inc in valueset["compose"]["include"] for c in inc["concept"]}
    assert set(vans.HOSPITAL_NOTIFICATION_VARIANTS) <= activities
    # every activity that is not a correction or cancellation has its variant; those have none (decision 10)
    primary = {a for a in activities if not a.startswith(("revise-", "cancel-"))}
    assert primary == set(vans.HOSPITAL_NOTIFICATION_VARIANTS)
    fdis20 = {c for c in _codesystem_codes() if c.startswith("MCM:FDIS20#")}
    assert {f"MCM:FDIS20#{v}" for v in vans.HOSPITAL_NOTIFICATION_VARIANTS.values()} == fdis20


# --- the Document Name of each kind of message ------------------------------------------------------------------


CARE_COMMUNICATIONS = [*sorted(SEND.glob("Bundle-S-*")), FLOWS / "Flow1-CareCommunication_Ex_from_OIOXML.xml",
                       *sorted(CC_PACKAGE.glob("Bundle-*.json"))[:2]]


@pytest.mark.parametrize("path", CARE_COMMUNICATIONS, ids=lambda p: p.name[:24])
def test_name_of_a_carecommunication_is_fdis91_and_its_category(path: Path, codes: StatisticalCodes) -> None:
    expected = f"MCM:FDIS91#{_category_in_file(path)}"
    assert expected in _codesystem_codes()
    assert vans.document_name(_bundle(path), codes) == expected


# The activity of the Provenance that targets each example's MessageHeader, and the FDIS20 code whose display
# repeats that activity's display (terminology 2.0.2): corrections and cancellations have none.
HOSPITAL_NOTIFICATIONS = {
    "Bundle-a5e5b880-c087-4055-b9ec-99108695f81d.json": "MCM:FDIS20#AdmissionInpatient",  # admit-inpatient
    "Bundle-h1c8e4a8-6b45-4669-94ad-2a99ad96bf03.json": "MCM:FDIS20#AcuteAmbulant",  # admit-emergency
    "Bundle-d3128d9b-cede-4c7f-8904-809eab322d7d.json": "MCM:FDIS20#OnLeave",  # start-leave-inpatient
    "Bundle-e94de8ee-bd94-475e-b454-b8fbbef8a685.json": "MCM:FDIS20#EndOfLeave",  # end-leave-inpatient
    "Bundle-f4aa42a4-86db-4e68-9b38-9dda0dfd5774.json": "MCM:FDIS20#EndHospitalStay",  # discharge-inpatient-home
    "Bundle-kcab461b-f44e-4d97-a041-ef7e64800587.json": "MCM:FDIS20#EndHospitalStay",  # discharge-emergency-home
    "Bundle-bfab3e80-9584-11ec-b909-0242ac120002.json": "MCM:FDIS20",  # revise-admit-inpatient
    "Bundle-c83671a4-9584-11ec-b909-0242ac120002.json": "MCM:FDIS20",  # cancel-admit-inpatient
}


@pytest.mark.parametrize("name", sorted(HOSPITAL_NOTIFICATIONS))
def test_name_of_a_hospital_notification_is_fdis20_and_its_activity(name: str, codes: StatisticalCodes) -> None:
    assert vans.document_name(_json(HN / name), codes) == HOSPITAL_NOTIFICATIONS[name]


ACKNOWLEDGEMENTS = [ACK / "Bundle-a8c041b8-c65a-4fde-a90f-962076918834.json",
                    ACK / "Bundle-bc9535ef-ed94-4060-a928-7baddec7ee71.json",
                    ACK / "Bundle-c9c2b2f6-0807-11ed-861d-0242ac120002.json",
                    FLOWS / "Flow2-Acknowledgement_Ex_to_OIOXML.xml"]


@pytest.mark.parametrize("path", ACKNOWLEDGEMENTS, ids=lambda p: p.name[:24])
def test_name_of_an_acknowledgement_is_fctl_and_its_response(path: Path, codes: StatisticalCodes) -> None:
    expected = f"MCM:FCTL#{_response_in_file(path)}"
    assert expected in _codesystem_codes()
    assert vans.document_name(_bundle(path), codes) == expected


def _communication(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Communication")


def test_a_code_not_in_the_codesystem_is_not_written(codes: StatisticalCodes) -> None:
    cc = _json(SEND / "Bundle-S-A-new-1932711d-49d0-4ad7-b1ee-61de711892d2.json")
    _communication(cc)["category"][0]["coding"][0]["code"] = "no-such-category"
    assert vans.document_name(cc, codes) == "MCM:FDIS91"

    hn = _json(HN / "Bundle-a5e5b880-c087-4055-b9ec-99108695f81d.json")
    for entry in hn["entry"]:
        if entry["resource"]["resourceType"] == "Provenance":
            entry["resource"]["activity"]["coding"][0]["code"] = "transfer-inpatient"
    assert vans.document_name(hn, codes) == "MCM:FDIS20"

    # The same acknowledgement, judged by a copy of MedCom's CodeSystem that lacks its code
    statistical = _json(TERMINOLOGY / "CodeSystem-medcom-messaging-statisticalCodes.json")
    statistical["concept"] = [c for c in statistical["concept"] if c["code"] != "MCM:FCTL#ok"]
    ack = _json(ACKNOWLEDGEMENTS[0])
    assert vans.document_name(ack, codes) == "MCM:FCTL#ok"
    assert vans.document_name(ack, StatisticalCodes.from_codesystems(statistical)) == "MCM:FCTL"


def test_codes_match_without_case_and_keep_medcoms_spelling(codes: StatisticalCodes) -> None:
    cc = _json(SEND / "Bundle-S-A-new-1932711d-49d0-4ad7-b1ee-61de711892d2.json")
    _communication(cc)["category"][0]["coding"][0]["code"] = "CareCoordination"
    assert vans.document_name(cc, codes) == "MCM:FDIS91#carecoordination"
    _communication(cc)["category"][0]["coding"][0]["code"] = "assessment"  # deprecated, still in the CodeSystem
    assert vans.document_name(cc, codes) == "MCM:FDIS91#assessment"
    statistical = _json(TERMINOLOGY / "CodeSystem-medcom-messaging-statisticalCodes.json")
    for concept in statistical["concept"]:
        if concept["code"] == "MCM:FDIS91#assessment":
            concept["property"][0]["valueCode"] = "retired"
    assert vans.document_name(cc, StatisticalCodes.from_codesystems(statistical)) == "MCM:FDIS91"


def test_a_message_without_a_type_number_is_refused(codes: StatisticalCodes) -> None:
    empty = _json(ACK / "Bundle-eb26be85-fdb7-454d-a980-95cba6d1745b.json")  # MedCom's empty-message example
    with pytest.raises(InvalidInput, match="empty-message"):
        vans.document_name(empty, codes)
    with pytest.raises(InvalidInput, match="Bundle"):
        vans.document_name({"resourceType": "Patient"}, codes)


# --- wrap and unwrap ------------------------------------------------------------------------------------------


ROUND_TRIP = [SEND / "Bundle-S-A-new-1932711d-49d0-4ad7-b1ee-61de711892d2.json",
              SEND / "Bundle-S-B-new-720f68cf-21bf-4c40-a90c-a113e00e88a8.xml",
              FLOWS / "Flow1-CareCommunication_Ex_from_OIOXML.xml",
              HN / "Bundle-a5e5b880-c087-4055-b9ec-99108695f81d.json",
              HN / "Bundle-d3128d9b-cede-4c7f-8904-809eab322d7d.json",
              *ACKNOWLEDGEMENTS]


@pytest.mark.parametrize("path", ROUND_TRIP, ids=lambda p: p.name[:24])
def test_round_trip_of_medcoms_examples(path: Path, codes: StatisticalCodes) -> None:
    env = _envelope(path, codes)
    raw = vans.wrap(env, codes)

    root = etree.fromstring(raw)
    assert root.tag == f"{V}VANSEnvelope"
    assert root.findtext(f"{V}SenderID") == SENDER.id and root.find(f"{V}SenderID").get("EndPointType") == "EAN"
    assert root.findtext(f"{V}ReceiverID") == RECEIVER.id
    assert datetime.fromisoformat(root.findtext(f"{V}SentDateTime")) == SENT
    document = root.find(f"{V}Message/{V}MetaInformation/{V}Document")
    assert document.findtext(f"{V}Format") == "HL7"
    assert document.findtext(f"{V}Name") == env.name
    assert int(document.findtext(f"{V}SizeInBytes")) == len(path.read_bytes())
    tags = root.findall(f"{V}Message/{V}MetaInformation/{V}Transport/{V}ServiceTag")
    mime = "application/fhir+xml" if path.suffix == ".xml" else "application/fhir+json"
    assert [(t.get("name"), t.text) for t in tags] == [("MCM:MIME", mime)]
    assert root.findtext(f"{V}Message/{V}MetaInformation/{V}Transport/{V}TransformMessage") == "false"
    assert base64.b64decode(root.findtext(f"{V}Message/{V}Data")) == path.read_bytes()

    back = vans.unwrap(raw, codes)
    assert back == env
    assert back.data == path.read_bytes()


def test_danish_characters_survive(codes: StatisticalCodes) -> None:
    path = SEND / "Bundle-S-A-new-1932711d-49d0-4ad7-b1ee-61de711892d2.json"
    bundle = _json(path)
    _communication(bundle)["payload"][0]["contentString"] = "Søren Ærø fra Åbenrå: ønsker møde, æbler og ÅØÆ."
    data = json.dumps(bundle, ensure_ascii=False).encode("utf-8")
    env = replace(_envelope(path, codes), data=data,
                  service_tags=(("MCM:STATISTIC", "manuel håndtering"),))
    raw = vans.wrap(env, codes)
    assert raw.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    back = vans.unwrap(raw, codes)
    assert back.data == data
    assert "Søren Ærø fra Åbenrå: ønsker møde, æbler og ÅØÆ." in back.data.decode("utf-8")
    assert back.service_tags == (("MCM:STATISTIC", "manuel håndtering"),)
    assert "manuel håndtering" in raw.decode("utf-8")


def test_an_envelope_written_elsewhere_is_read() -> None:
    """An envelope in the schema example's shape, written by hand: base64 in 76-character lines, a local time
    without offset, another ServiceTag, a MIME type with a parameter."""
    message = '{"resourceType": "Bundle", "type": "message", "id": "x", "entry": [], "note": "Hillerød"}'.encode()
    b64 = base64.b64encode(message).decode()
    lines = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
    raw = f"""<?xml version="1.0" encoding="UTF-8"?>
<VANSEnvelope xmlns="{NS}">
  <SenderID EndPointType="EAN">5790001659592</SenderID>
  <ReceiverID EndPointType="EAN">5790000121526</ReceiverID>
  <EnvelopeIdentifier>068DADFF-12BB-406D-8C86-083974DC0180</EnvelopeIdentifier>
  <SentDateTime>2020-08-26T17:12:13</SentDateTime>
  <Message>
    <MetaInformation>
      <Identifier>068dadff-12bb-406d-8c86-083974dc0181</Identifier>
      <Document><Format>HL7</Format><Name>MCM:FDIS91#carecoordination</Name>
        <SizeInBytes>{len(message)}</SizeInBytes></Document>
      <Transport>
        <TransformMessage>false</TransformMessage>
        <ServiceTag name="MCM:STATISTIC">manual</ServiceTag>
        <ServiceTag name="MCM:MIME">Application/FHIR+JSON; charset=UTF-8</ServiceTag>
      </Transport>
    </MetaInformation>
    <Data>{lines}</Data>
  </Message>
</VANSEnvelope>""".encode()
    env = vans.unwrap(raw)
    assert env.data == message
    assert env.mime_type == "application/fhir+json"
    assert env.version is None and env.transport_type is None
    assert env.sent == datetime(2020, 8, 26, 15, 12, 13, tzinfo=UTC)  # Danish summer time is UTC+2
    assert env.service_tags == (("MCM:STATISTIC", "manual"),)
    assert env.sender == Endpoint("5790001659592", "EAN")


def test_a_message_over_libxmls_text_limit_round_trips(codes: StatisticalCodes) -> None:
    """libxml2 refuses text nodes over 10 MB unless told otherwise; MedCom allows messages up to 100 MB."""
    data = json.dumps({"resourceType": "Bundle", "padding": "å" * 6_000_000}, ensure_ascii=False).encode()
    assert len(base64.b64encode(data)) > 10_000_000
    env = replace(_envelope(ROUND_TRIP[0], codes), data=data)
    assert vans.unwrap(vans.wrap(env)).data == data


def test_an_envelope_over_the_size_cap_is_refused(codes: StatisticalCodes, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = vans.wrap(_envelope(ROUND_TRIP[0], codes))
    monkeypatch.setattr(vans, "MAX_ENVELOPE_BYTES", len(raw) - 1)
    with pytest.raises(InvalidEnvelope, match="over the") as exc:
        vans.unwrap(raw)
    assert exc.value.outcome.issues[0].code == "too-costly"


def test_mime_type_from_the_message() -> None:
    assert vans.fhir_mime_type(b'\xef\xbb\xbf  {"resourceType": "Bundle"}') == "application/fhir+json"
    assert vans.fhir_mime_type(b'\n<Bundle xmlns="http://hl7.org/fhir"/>') == "application/fhir+xml"
    with pytest.raises(InvalidEnvelope, match="neither FHIR XML nor FHIR JSON"):
        vans.fhir_mime_type(b"MSH|^~\\&|")


# --- bad input: what is wrong and where -------------------------------------------------------------------------

DOC = f"{V}Message/{V}MetaInformation/{V}Document"
TRANSPORT = f"{V}Message/{V}MetaInformation/{V}Transport"


def _set(path: str, text: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        root.find(path).text = text
    return change


def _drop(path: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        el = root.find(path)
        el.getparent().remove(el)
    return change


def _mime_tag(value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        next(t for t in root.iter(f"{V}ServiceTag") if t.get("name") == "MCM:MIME").text = value
    return change


def _drop_mime(root: etree._Element) -> None:
    tag = next(t for t in root.iter(f"{V}ServiceTag") if t.get("name") == "MCM:MIME")
    tag.getparent().remove(tag)


def _data(payload: bytes) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        root.find(f"{V}Message/{V}Data").text = base64.b64encode(payload).decode()
        root.find(f"{DOC}/{V}SizeInBytes").text = str(len(payload))
    return change


MIME = "VANSEnvelope/Message/MetaInformation/Transport/ServiceTag[@name='MCM:MIME']"
BAD = {
    "no Data": (_drop(f"{V}Message/{V}Data"), "VANSEnvelope/Message/Data", "missing"),
    "empty Data": (_set(f"{V}Message/{V}Data", "  "), "VANSEnvelope/Message/Data", "empty"),
    "Data not base64": (_set(f"{V}Message/{V}Data", "eyJ!!resource"), "VANSEnvelope/Message/Data", "base64"),
    "Data cut short": (_set(f"{V}Message/{V}Data", "eyJyZXNvdXJjZVR5cGU"), "VANSEnvelope/Message/Data", "base64"),
    "Data padded twice": (_set(f"{V}Message/{V}Data", "eyJyZXNvdXJjZVR5cGUi="), "VANSEnvelope/Message/Data",
                          "base64"),
    "Data not ASCII": (_set(f"{V}Message/{V}Data", "eyJyZXNvdXJjZVR5cGUiø"), "VANSEnvelope/Message/Data",
                       "base64"),
    "Data not UTF-8": (_data('{"text": "Hillerød"}'.encode("latin-1")), "VANSEnvelope/Message/Data", "UTF-8"),
    "Data not what MIME says": (_data(b'<Bundle xmlns="http://hl7.org/fhir"/>'), "VANSEnvelope/Message/Data",
                                "application/fhir+json as MCM:MIME says"),
    "MIME not FHIR": (_mime_tag("application/json"), MIME, "not a FHIR MIME type"),
    "MIME of an old draft": (_mime_tag("text/fhir+json"), MIME, "not a FHIR MIME type"),
    "no MIME tag": (_drop_mime, MIME, "missing"),
    "no Transport": (_drop(TRANSPORT), "VANSEnvelope/Message/MetaInformation/Transport", "missing"),
    "unreliable": (_set(f"{TRANSPORT}/{V}Type", "unreliable"), "VANSEnvelope/Message/MetaInformation/Transport/Type",
                   "reliable"),
    "Format not HL7": (_set(f"{DOC}/{V}Format", "XML"), "VANSEnvelope/Message/MetaInformation/Document/Format",
                       "'XML'"),
    "Name without MCM:": (_set(f"{DOC}/{V}Name", "FDIS91"), "VANSEnvelope/Message/MetaInformation/Document/Name",
                          "MCM:<type number>"),
    "Name not a statistical code": (_set(f"{DOC}/{V}Name", "MCM:FDIS91#no-such-category"),
                                    "VANSEnvelope/Message/MetaInformation/Document/Name", "statistical codes"),
    "no Document": (_drop(DOC), "VANSEnvelope/Message/MetaInformation/Document", "missing"),
    "SizeInBytes wrong": (_set(f"{DOC}/{V}SizeInBytes", "12"),
                          "VANSEnvelope/Message/MetaInformation/Document/SizeInBytes", "says 12"),
    "envelope id not a UUID": (_set(f"{V}EnvelopeIdentifier", "XBf0SM4TxFovQF"), "VANSEnvelope/EnvelopeIdentifier",
                               "not a UUID"),
    "message id missing": (_drop(f"{V}Message/{V}MetaInformation/{V}Identifier"),
                           "VANSEnvelope/Message/MetaInformation/Identifier", "missing"),
    "EAN check digit": (_set(f"{V}SenderID", "5790001659593"), "VANSEnvelope/SenderID", "check digit"),
    "no ReceiverID": (_drop(f"{V}ReceiverID"), "VANSEnvelope/ReceiverID", "missing"),
    "SentDateTime not a time": (_set(f"{V}SentDateTime", "2026-03-02"), "VANSEnvelope/SentDateTime",
                                "not an xs:dateTime"),
    "no Message": (_drop(f"{V}Message"), "VANSEnvelope/Message", "missing"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_envelope_says_what_and_where(case: str, codes: StatisticalCodes) -> None:
    change, path, words = BAD[case]
    root = etree.fromstring(vans.wrap(_envelope(ROUND_TRIP[0], codes)))
    change(root)
    with pytest.raises(InvalidEnvelope) as exc:
        vans.unwrap(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), codes)
    assert isinstance(exc.value, InvalidInput) and exc.value.status == 400
    message = str(exc.value)
    assert f"{path}:" in message and words in message, message
    assert path in [i.expression for i in exc.value.outcome.issues]


def test_every_problem_is_reported_at_once(codes: StatisticalCodes) -> None:
    root = etree.fromstring(vans.wrap(_envelope(ROUND_TRIP[0], codes)))
    _set(f"{DOC}/{V}Format", "EDIFACT")(root)
    _mime_tag("text/plain")(root)
    with pytest.raises(InvalidEnvelope) as exc:
        vans.unwrap(etree.tostring(root))
    assert [i.expression for i in exc.value.outcome.issues] == [
        "VANSEnvelope/Message/MetaInformation/Document/Format", MIME]


@pytest.mark.parametrize(("raw", "words"), [
    (b"this is not XML", "not well-formed XML"),
    (b"", "not well-formed XML"),
    (b'<VANSEnvelope xmlns="urn:oio:medcom:vans-envelope:1.0.4"><Message>', "not well-formed XML"),
    (b'<Emessage xmlns="http://rep.oio.dk/medcom.dk/xml/schemas/2006/07/01/"/>', "root element is"),
    (b'<VANSEnvelope xmlns="http://hl7.org/fhir"/>', "root element is"),
    (b"<VANSEnvelope/>", "root element is"),
])
def test_what_is_not_a_vans_envelope_is_refused(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidEnvelope, match=words):
        vans.unwrap(raw)


def test_a_receipt_is_not_a_message(codes: StatisticalCodes) -> None:
    receipt = vans.received_correctly(_envelope(ROUND_TRIP[0], codes), ENVELOPE_ID.replace("0180", "0999"), SENT)
    with pytest.raises(InvalidEnvelope, match="VANSEnvelope/Message: a VANS receipt, not a message"):
        vans.unwrap(vans.write_receipt(receipt))


def test_wrap_refuses_what_it_would_be_refused_for(codes: StatisticalCodes) -> None:
    env = _envelope(ROUND_TRIP[0], codes)
    for bad, words in [(replace(env, sent=datetime(2026, 3, 2, 9, 0)), "SentDateTime: the time needs a time zone"),
                       (replace(env, mime_type="application/json"), "not a FHIR MIME type"),
                       (replace(env, format="XML"), "Document/Format"),
                       (replace(env, message_id="1"), "MetaInformation/Identifier: '1' is not a UUID"),
                       (replace(env, sender=Endpoint("12345678", "GLN")), "EndPointType: 'GLN'"),
                       (replace(env, data=b""), "Data: the message is empty")]:
        with pytest.raises(InvalidEnvelope, match=re.escape(words)):
            vans.wrap(bad)
    with pytest.raises(InvalidEnvelope, match="statistical codes"):
        vans.wrap(replace(env, name="MCM:FDIS91#no-such-category"), codes)
    assert b"MCM:FDIS91#no-such-category" in vans.wrap(replace(env, name="MCM:FDIS91#no-such-category"))


# --- XML attacks ----------------------------------------------------------------------------------------------


def test_external_entities_are_refused(tmp_path: Path, codes: StatisticalCodes) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-5790")
    good = vans.wrap(_envelope(ROUND_TRIP[0], codes)).decode()
    body = good.split("?>", 1)[1].replace("<Name>MCM:FDIS91#acute-ambulant</Name>", "<Name>&xxe;</Name>")
    attack = f'<?xml version="1.0"?>\n<!DOCTYPE VANSEnvelope [<!ENTITY xxe SYSTEM "file://{secret}">]>{body}'
    with pytest.raises(InvalidEnvelope) as exc:
        vans.unwrap(attack.encode())
    assert exc.value.outcome.issues[0].code == "security"
    assert "TOP-SECRET" not in str(exc.value)
    # the same in UTF-16, where a byte search for "<!DOCTYPE" sees nothing: the parsed tree's doctype still counts
    with pytest.raises(InvalidEnvelope) as exc16:
        vans.unwrap(attack.replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
                    .encode("utf-16"))
    assert exc16.value.outcome.issues[0].code == "security"
    assert "TOP-SECRET" not in str(exc16.value)


def test_entity_expansion_is_refused() -> None:
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    attack = (f'<?xml version="1.0"?><!DOCTYPE VANSEnvelope [<!ENTITY l0 "ha">{laughs}]>'
              f'<VANSEnvelope xmlns="{NS}"><SenderID EndPointType="EAN">&l9;</SenderID></VANSEnvelope>')
    with pytest.raises(InvalidEnvelope, match="DOCTYPE"):
        vans.unwrap(attack.encode())
    # without a DOCTYPE, an entity reference is not expanded: the document is not well-formed
    with pytest.raises(InvalidEnvelope, match="not well-formed"):
        vans.unwrap(f'<VANSEnvelope xmlns="{NS}"><SenderID>&l9;</SenderID></VANSEnvelope>'.encode())


# --- VANS answers ---------------------------------------------------------------------------------------------

RECEIPT_ID = "9a6ff822-08de-4a6f-9670-9fa4b9d2f0dc"


@pytest.mark.parametrize(("make", "kind", "description"), [
    (vans.unknown_receiver, "NegativeVans", "Ukendt modtager"),
    (vans.unknown_type, "NegativeMessage", "Ukendt type"),
    (vans.received_correctly, "PositiveMessage", None),
])
def test_receipts_answer_the_sender(make: Callable[..., vans.VansReceipt], kind: str, description: str | None,
                                    codes: StatisticalCodes) -> None:
    original = _envelope(ROUND_TRIP[0], codes)
    answered = datetime(2026, 3, 2, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    root = etree.fromstring(vans.write_receipt(make(original, RECEIPT_ID, answered)))
    assert root.tag == f"{V}VANSEnvelope"
    assert root.findtext(f"{V}SenderID") == RECEIVER.id  # from the original's receiver …
    assert root.findtext(f"{V}ReceiverID") == SENDER.id  # … back to its sender
    assert root.findtext(f"{V}EnvelopeIdentifier") == RECEIPT_ID
    assert datetime.fromisoformat(root.findtext(f"{V}SentDateTime")) == answered
    assert root.find(f"{V}Message") is None
    body = root.find(f"{V}Receipt")
    assert [etree.QName(c).localname for c in body] == [kind]
    answer = body[0]
    assert answer.findtext(f"{V}Error/{V}Description") == description
    assert answer.findtext(f"{V}OriginalEnvelopeIdentifier") == ENVELOPE_ID
    assert answer.findtext(f"{V}OriginalMessage/{V}Identifier") == MESSAGE_ID
    assert answer.findtext(f"{V}OriginalMessage/{V}Document/{V}Name") == original.name
    assert answer.findtext(f"{V}OriginalMessage/{V}Document/{V}SizeInBytes") == str(len(original.data))
    assert answer.find(f".//{V}Data") is None


def test_receipts_refuse_an_error_where_it_does_not_belong(codes: StatisticalCodes) -> None:
    original = _envelope(ROUND_TRIP[0], codes)
    with pytest.raises(InvalidEnvelope, match="a positive receipt carries no error"):
        vans.write_receipt(vans.VansReceipt("PositiveMessage", original, RECEIPT_ID, SENT, "Ukendt type"))
    with pytest.raises(InvalidEnvelope, match="a negative receipt says why"):
        vans.write_receipt(vans.VansReceipt("NegativeVans", original, RECEIPT_ID, SENT))
