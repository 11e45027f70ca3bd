"""The one safe XML parser: what arrives from outside is read with DTDs, entities and network off."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from lxml import etree

from hub.core import xml


def test_a_document_is_read() -> None:
    root = xml.untrusted(b'<?xml version="1.0"?><a xmlns="urn:x"><b>text</b></a>')
    assert etree.QName(root).localname == "a" and root[0].text == "text"


@pytest.mark.parametrize("attack", [
    b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
    b'<?xml version="1.0"?>\n<!doctype a [<!ENTITY l "lol">]><a>&l;</a>',
    # UTF-16, where a byte search for "<!DOCTYPE" finds nothing: the parsed tree's doctype is asked too
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]><a/>'.encode("utf-16"),
])
def test_a_doctype_is_refused(attack: bytes) -> None:
    with pytest.raises(xml.XmlRefused) as refused:
        xml.untrusted(attack)
    assert refused.value.code == "security" and "DOCTYPE" in refused.value.text


@pytest.mark.parametrize("broken", [b"", b"not xml", b"<a><b></a>", b"<a>&undeclared;</a>"])
def test_what_is_not_well_formed_is_refused(broken: bytes) -> None:
    with pytest.raises(xml.XmlRefused) as refused:
        xml.untrusted(broken)
    assert refused.value.code == "structure" and "not well-formed XML" in refused.value.text


def test_huge_text_needs_the_huge_parser() -> None:
    big = b"<a>" + b"x" * (11 * 1024 * 1024) + b"</a>"  # over libxml2's 10 MB text-node limit
    with pytest.raises(xml.XmlRefused):
        xml.untrusted(big)
    assert len(xml.untrusted(big, huge=True).text or "") == 11 * 1024 * 1024


def test_each_thread_has_its_own_parser() -> None:
    here = xml.parser()
    assert xml.parser() is here  # built once per thread
    there: list[etree.XMLParser] = []
    thread = threading.Thread(target=lambda: there.append(xml.parser()))
    thread.start()
    thread.join()
    assert there and there[0] is not here


def test_a_schema_file_and_a_wrapper_compile_without_the_network(tmp_path: Path) -> None:
    xsd = tmp_path / "a.xsd"
    xsd.write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:a" '
                   'elementFormDefault="qualified"><xs:element name="a" type="xs:int"/></xs:schema>')
    direct = xml.schema(xsd)
    wrapper = xml.schema(f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:import namespace="urn:a" '
                         f'schemaLocation="{xsd.as_uri()}"/></xs:schema>'.encode())
    for schema in (direct, wrapper):
        assert schema.validate(xml.untrusted(b'<a xmlns="urn:a">1</a>'))
        assert not schema.validate(xml.untrusted(b'<a xmlns="urn:a">one</a>'))
    remote = tmp_path / "remote.xsd"
    remote.write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:import namespace="urn:r" '
                      'schemaLocation="http://127.0.0.1:9/r.xsd"/><xs:element name="r" type="xs:int"/></xs:schema>')
    xml.schema(remote)  # the import over the network is not fetched (no_network): the rest still compiles
