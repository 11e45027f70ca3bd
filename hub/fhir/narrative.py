"""The narrative's XHTML and HTML in strings: FHIR's rules `txt-1` and `txt-2`, a profile's language control, and
the optional checks for markup where none belongs.

R4 states `txt-1` and `txt-2` as `htmlChecks()`, a function FHIRPath leaves to the validator, and defines what it
means in prose only (narrative.html: "only the basic html formatting elements and attributes described in
chapters 7-11 (except section 4 of chapter 9) and 15 of the HTML 4.0 standard, `<a>` elements (either name or
href), images and internally contained style attributes"), so no package carries the list: it is written here, as
the HL7 Java validator writes it. Written policy (README, "Validation policy"):
- `txt-1`: the `div` is well-formed XHTML in the XHTML namespace, its elements are among `ELEMENTS`, and no
  attribute is an event handler (`on…`) nor a link a `javascript:` one;
- `txt-2`: the `div` holds some text other than whitespace, or an image.
Pure: each function takes the `div` as JSON holds it (a string) and returns its verdict.
"""

from __future__ import annotations

import functools
import re

from lxml import etree

from hub.core.xml import XmlRefused, untrusted

XHTML_NS = "http://www.w3.org/1999/xhtml"
ELEMENTS = frozenset({
    "a", "abbr", "acronym", "address", "b", "bdo", "big", "blockquote", "br", "caption", "cite", "code", "col",
    "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd",
    "li", "ol", "p", "pre", "q", "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "tt", "ul", "var",
})
_LINKS = frozenset({"href", "src", "longdesc", "cite"})
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Markup in a string: `<` opening or closing a tag name (`<script>`, `</b>`, `<img src=…>`)
_TAG = re.compile(r"<\s*/?\s*([A-Za-z][A-Za-z0-9]*)(?=[\s/>])")
# Markup in markdown: any `<` opening what looks like a tag (`<resource type>`)
_MARKDOWN_TAG = re.compile(r"<[A-Za-z/]")


@functools.lru_cache(maxsize=512)
def _parsed(div: str) -> etree._Element | str:
    """The div's root element, or why it could not be read."""
    try:
        return untrusted(div.encode("utf-8"))
    except XmlRefused as exc:
        return exc.text


@functools.lru_cache(maxsize=512)
def faults(div: str) -> list[str]:
    """What breaks `txt-1` in the div, in words; empty when it keeps the rule."""
    root = _parsed(div)
    if isinstance(root, str):
        return [f"the XHTML is {root}"]
    found = []
    if root.tag != f"{{{XHTML_NS}}}div":
        found.append("the narrative's root is not an XHTML div")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # a comment or a processing instruction
        name = etree.QName(element)
        if name.namespace != XHTML_NS or name.localname not in ELEMENTS:
            found.append(f"the element '{name.localname}' is not allowed in the XHTML")
        for attribute, value in element.attrib.items():
            local = etree.QName(attribute).localname
            if local.lower().startswith("on"):
                found.append(f"the attribute '{local}' (an event handler) is not allowed in the XHTML")
            elif local in _LINKS and value.strip().lower().startswith("javascript:"):
                found.append(f"the attribute '{local}' of '{name.localname}' is a script")
    return found


def keeps_txt_2(div: object) -> bool:
    """The div has some non-whitespace text, or an image."""
    return not isinstance(div, str) or _has_content(div)


@functools.lru_cache(maxsize=512)
def _has_content(div: str) -> bool:
    root = _parsed(div)
    if isinstance(root, str):
        return True  # not readable: txt-1 says so
    return bool("".join(root.itertext()).strip()) or any(
        isinstance(e.tag, str) and etree.QName(e).localname == "img" for e in root.iter())


@functools.lru_cache(maxsize=512)
def local_links(div: str) -> tuple[str, ...]:
    """The links within the resource the div makes (`href` or `src` of `#id`)."""
    root = _parsed(div)
    if isinstance(root, str):
        return ()
    return tuple(value for e in root.iter() if isinstance(e.tag, str) for name in ("href", "src")
                 if (value := e.get(name, "")).startswith("#"))


def unresolved_links(div: str, targets: set[str]) -> list[str]:
    """The div's links within the resource (`<a href="#x">`) that lead nowhere: to no anchor of the div (an
    `id` or `name`) and to none of `targets` (the ids of the resource's contained resources)."""
    root = _parsed(div)
    if isinstance(root, str):
        return []
    anchors = {v for e in root.iter() if isinstance(e.tag, str) for n in ("id", "name") if (v := e.get(n))}
    return [link for link in local_links(div) if link != "#" and link[1:] not in anchors | targets]


def language_sections(div: str) -> list[str]:
    """The languages of the div's sections: its child elements with `lang` or `xml:lang`, in order."""
    root = _parsed(div)
    if isinstance(root, str):
        return []
    found = []
    for child in root:
        if isinstance(child.tag, str):
            lang = child.get("lang") or child.get(_XML_LANG)
            if lang:
                found.append(lang)
    return found


def language_control(control: str, div: str, resource_language: str | None) -> str | None:
    """What breaks a profile's `narrative-language-control` (`_no`: no language sections, `_yes`: language
    sections, `_resource`: a section in the resource's language, else the codes of the sections required)."""
    sections = language_sections(div)
    shown = ", ".join(sorted(set(sections)))
    if control == "_no":
        return f"the XHTML has language sections ({shown}), which this profile prohibits" if sections else None
    if control == "_yes":
        return None if sections else "the XHTML has no language sections, which this profile requires"
    wanted = [resource_language] if control == "_resource" else control.split()
    missing = [w for w in wanted if w and w not in sections]
    if missing:
        return (f"the XHTML has no section in the language {', '.join(missing)} that this profile requires "
                f"(found: {shown or 'none'})")
    return None


def tags_in_text(text: str) -> list[str]:
    """The HTML tag names a plain string holds (`Standard <script>…`): markup where the security checks want
    none."""
    return [m.group(1) for m in _TAG.finditer(text) if m.group(1).lower() in ELEMENTS | _DANGEROUS]


def tag_in_markdown(text: str) -> str | None:
    """Where markdown holds what looks like an HTML tag, shown from its `<`; None when it holds none."""
    m = _MARKDOWN_TAG.search(text)
    return text[m.start():m.start() + 12] if m else None


_DANGEROUS = frozenset({"script", "iframe", "object", "embed", "form", "input", "style", "link", "meta", "base",
                        "frame", "frameset", "applet", "svg", "math", "body", "head", "html", "button", "textarea"})
