"""The narrative's XHTML rules and markup in strings (`hub.fhir.narrative`)."""

from __future__ import annotations

import pytest

from hub.fhir import narrative

NS = 'xmlns="http://www.w3.org/1999/xhtml"'


@pytest.mark.parametrize(("div", "fault"), [
    (f"<div {NS}><p>ok <b>bold</b></p><table><tr><td>1</td></tr></table></div>", None),
    (f"<div {NS}><script>alert(1)</script></div>", "'script'"),
    (f"<div {NS}><p onclick=\"x()\">a</p></div>", "'onclick'"),
    (f"<div {NS}><a href=\"javascript:x()\">a</a></div>", "script"),
    (f"<div {NS}><p>unclosed</div>", "not well-formed"),
    ("<div><p>no namespace</p></div>", "XHTML div"),
    (f"<p {NS}>not a div</p>", "XHTML div"),
])
def test_txt_1_allows_only_basic_formatting(div: str, fault: str | None) -> None:
    faults = narrative.faults(div)
    assert (fault is None and faults == []) or (fault is not None and any(fault in f for f in faults)), faults


def test_txt_2_wants_text_or_an_image() -> None:
    assert not narrative.keeps_txt_2(f"<div {NS}>\n  <p/>\n</div>")
    assert narrative.keeps_txt_2(f"<div {NS}><p>x</p></div>")
    assert narrative.keeps_txt_2(f"<div {NS}><img src=\"#a\" alt=\"\"/></div>")


@pytest.mark.parametrize(("control", "div", "language", "broken"), [
    ("_no", f"<div {NS}><div lang=\"en\">a</div></div>", None, True),
    ("_no", f"<div {NS}>a</div>", None, False),
    ("_yes", f"<div {NS}>a</div>", None, True),
    ("_yes", f"<div {NS}><div xml:lang=\"da\">a</div></div>", None, False),
    ("_resource", f"<div {NS}><div lang=\"pt\">a</div><div lang=\"de\">b</div></div>", "en", True),
    ("_resource", f"<div {NS}><div lang=\"en\">a</div></div>", "en", False),
])
def test_a_profiles_language_control(control: str, div: str, language: str | None, broken: bool) -> None:
    assert (narrative.language_control(control, div, language) is not None) is broken


def test_markup_in_strings_and_markdown() -> None:
    assert narrative.tags_in_text("Standard <script>x</script>") == ["script", "script"]
    assert narrative.tags_in_text("3 < 4 and 5 > 2") == []
    assert narrative.tag_in_markdown("see <resource type>") == "<resource ty"
    assert narrative.tag_in_markdown("a **bold** claim, 3 < 4") is None
