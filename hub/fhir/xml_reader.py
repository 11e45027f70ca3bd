"""FHIR XML read into the same form as FHIR JSON, by the hub itself, driven by the R4 definitions.

The structure validator's compiled types (`hub.fhir.structure`) say, for every element, whether it repeats and of
which type it is, so XML becomes exactly the dictionary the JSON of the same resource parses to, and everything
after reading (structure, profiles, invariants) sees one form. The rules of FHIR's XML representation:
- the root element names the resource type (`resourceType`); a `Resource`-typed element (`contained`,
  `Bundle.entry.resource`, `Parameters.parameter.resource`) holds one resource element;
- a primitive's value is its `value` attribute, typed as JSON types it (boolean, integer, decimal); its `id`
  attribute and `extension` children go to `_name`, arrays of both aligned with `null`s;
- an element's `id` and an extension's `url` are attributes; the narrative's `div` stays XHTML, as a string;
- comments and processing instructions are not content and are skipped wherever they are.
An element the definitions do not know is kept under its name (its `value`, or its children), so the structure
check reports it in the same words as in JSON. What only XML can get wrong (text where none is allowed, an element
in another namespace, elements out of the definition's order) is reported here, each at its FHIRPath place.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lxml import etree

from hub.core.errors import InvalidInput
from hub.core.outcome import Outcome, single
from hub.fhir import io
from hub.fhir.narrative import XHTML_NS
from hub.fhir.structure import Field, Node, StructureValidator

FHIR_NS = "http://hl7.org/fhir"
_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INTEGERS = frozenset({"integer", "positiveInt", "unsignedInt"})
ORDER_RULE = "xml-order"
_ATTRIBUTES = frozenset({"id", "url"})  # an element's id and an extension's url are XML attributes


def _typed(value: str, type_code: str) -> Any:
    """A primitive's `value` attribute as JSON writes it; a value of the wrong form stays a string, so the
    structure check reports it as it would the same JSON."""
    if type_code == "boolean" and value in ("true", "false"):
        return value == "true"
    if type_code in _INTEGERS and _INTEGER.fullmatch(value):
        return int(value)
    if type_code == "decimal" and _DECIMAL.fullmatch(value):
        return json.loads(value)
    return value


class XmlReader:
    """Reads FHIR R4 XML with the types of `structure`; thread-safe, as the structure validator is."""

    def __init__(self, structure: StructureValidator) -> None:
        self.structure = structure

    def read(self, body: bytes, lenient: bool = False) -> dict[str, Any]:
        """The resource as FHIR JSON would give it; `InvalidInput` for what is not FHIR XML, or breaks a rule only
        XML can break. `lenient` lets elements out of order pass: conformance resources loaded as definitions
        are read as the Java validator loads them, which does not mind the order."""
        root = io.parse_xml_root(body)
        if etree.QName(root).namespace != FHIR_NS:
            raise InvalidInput(single("structure", f"The root element is not in the FHIR namespace {FHIR_NS}"))
        out = Outcome()
        resource = self._resource(root, etree.QName(root).localname, out)
        if lenient:
            out.issues = [i for i in out.issues if i.rule != ORDER_RULE]
        if not out.ok:
            raise InvalidInput(out)
        return resource

    # --- elements -------------------------------------------------------------------------------------------

    def _node(self, field: Field | None) -> Node | None:
        if field is None:
            return None
        if field.inline is not None:
            return field.inline
        found = self.structure.definition(field.type)
        return found if isinstance(found, Node) else None

    def _resource(self, element: etree._Element, where: str, out: Outcome) -> dict[str, Any]:
        rtype = etree.QName(element).localname
        found = self.structure.definition(rtype)
        node = found if isinstance(found, Node) and found.is_resource else None
        resource: dict[str, Any] = {"resourceType": rtype}
        self._children(element, node, resource, where, out, is_resource=True)
        return resource

    def _children(self, element: etree._Element, node: Node | None, into: dict[str, Any], where: str,
                  out: Outcome, is_resource: bool = False, primitive: bool = False) -> None:
        """The attributes and child elements of `element` as the properties of `into`."""
        own = etree.QName(element).localname
        for name in element.attrib:
            if str(name).startswith("{"):
                continue  # another namespace's (xsi:schemaLocation): not FHIR content
            if name in _ATTRIBUTES and not is_resource:
                into[name] = element.attrib[name]
            elif not (primitive and name == "value"):
                out.error("structure", f"Undefined attribute '@{name}' on {own}", where, rule="xml")
        if (element.text or "").strip() or any((c.tail or "").strip() for c in element):
            out.error("structure", f"Text is not allowed in the element '{own}'", where, rule="xml")
        order = _order(node)
        last = -1
        found: dict[str, list[tuple[Any, dict[str, Any] | None]]] = {}
        fields: dict[str, Field | None] = {}
        for child in element:
            if not isinstance(child.tag, str):
                continue  # a comment or a processing instruction
            qname = etree.QName(child)
            name = qname.localname
            field = node.fields.get(name) if node is not None else None
            if qname.namespace != FHIR_NS and not (qname.namespace == XHTML_NS and field is not None
                                                   and field.type == "xhtml"):
                out.error("structure", f"The element '{name}' is in the namespace '{qname.namespace}', not FHIR's",
                          f"{where}.{name}", rule="xml")
                continue
            if field is not None and order:
                position = order[field.element]
                if position < last:
                    out.error("structure", f"The element '{name}' is out of order", f"{where}.{name}",
                              rule=ORDER_RULE)
                last = max(last, position)
            many = field is None or field.many
            place = f"{where}.{name}" + (f"[{len(found.get(name, []))}]" if many else "")
            found.setdefault(name, []).append(self._value(child, field, place, out))
            fields[name] = field
        for name, items in found.items():
            field = fields[name]
            values, extras = [v for v, _ in items], [e for _, e in items]
            if (field is not None and field.many) or len(items) > 1:  # twice where once is allowed: a list, so
                if any(v is not None for v in values):  # the structure check says it does not repeat
                    into[name] = values
                if any(e is not None for e in extras):
                    into[f"_{name}"] = extras
            else:
                if values[0] is not None:
                    into[name] = values[0]
                if extras[0] is not None:
                    into[f"_{name}"] = extras[0]

    def _value(self, child: etree._Element, field: Field | None, place: str,
               out: Outcome) -> tuple[Any, dict[str, Any] | None]:
        """One element's JSON value, and for a primitive what it carries besides (`id`, extensions)."""
        definition = self.structure.definition(field.type) if field is not None else None
        if field is not None and field.type == "xhtml":
            return etree.tostring(child, encoding=str, with_tail=False), None
        if field is not None and field.type in ("Resource", "DomainResource"):
            inner = [c for c in child if isinstance(c.tag, str)]
            if len(inner) != 1:
                out.error("structure", f"The element '{etree.QName(child).localname}' must hold exactly one "
                          "resource", place, rule="xml")
                return None, None
            return self._resource(inner[0], place, out), None
        if field is not None and definition is not None and not isinstance(definition, Node):
            extra: dict[str, Any] = {}
            element = self.structure.definition("Element")
            self._children(child, element if isinstance(element, Node) else None, extra, place, out, primitive=True)
            typed = _typed(child.attrib["value"], field.type) if "value" in child.attrib else None
            return typed, extra or None
        if field is None and "value" in child.attrib and not any(isinstance(c.tag, str) for c in child):
            return child.attrib["value"], None  # unknown: as the same JSON would carry it
        complex_value: dict[str, Any] = {}
        self._children(child, self._node(field), complex_value, place, out)
        return complex_value, None


def _order(node: Node | None) -> dict[str, int]:
    """Each element's position in its definition (choice types share their element's)."""
    if node is None:
        return {}
    return {element: i for i, element in enumerate(dict.fromkeys(f.element for f in node.fields.values()))}
