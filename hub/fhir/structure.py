"""Structural validation of FHIR R4 JSON, driven by the core package's StructureDefinitions.

What it checks, each finding with its FHIRPath location and the element it breaks (`rule` = element path):
- every property is an element the type defines (choice elements by their typed names, `_x` for a
  primitive's id and extensions, `resourceType` on resources), and nothing is empty (`{}`, `[]`, `""`, null);
- arrays exactly where the element repeats, and the core cardinalities (`min`, `max`);
- the JSON type of every value (object, string, number, boolean), and the format of every primitive, by the
  regular expression its StructureDefinition gives (`date`, `dateTime`, `id`, `uri`, `decimal`, ...);
- contained and nested resources (`Resource` typed elements) by their own `resourceType`;
- an Attachment's `size` against its `data`: R4 defines `size` as the number of bytes of the content, so
  where the content is inline the two must agree.

Types are compiled from the snapshots on first use and kept; the walk over a resource is plain dictionary work,
several times cheaper than building a model of it. Profiles, bindings and invariants are the profile
validator's part (issue 3 of the hub), layered on this.

Markup where none belongs, as the HL7 Java validator reports it: `markdown` holding what looks like an HTML tag
is a warning (it will, or should, be escaped when shown), or an error where `html_in_markdown` says so; with
`security_checks`, a `string` holding HTML tags is an error (a stored-script risk for whoever shows it). Without
`example_urls`, a URL of an example domain (`http://example.org/…`) is an error (`hub.fhir.options`).

Written policy: R4 4.0.1 declares `Resource.id` (and so every resource's `id`) with the FHIR type `string`
(extension `structuredefinition-fhir-type`), while the specification's text and the HL7 Java validator hold it
to the `id` type; the hub checks it as `id` too.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hub.core.outcome import Outcome, single
from hub.fhir import narrative
from hub.fhir.options import ValidationOptions
from hub.fhir.packages import PackageSet
from hub.fhir.parts import WHOLE, Part

CORE = "http://hl7.org/fhir/StructureDefinition/"
_FHIR_TYPE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
_REGEX = "http://hl7.org/fhir/StructureDefinition/regex"
_SYSTEM = "http://hl7.org/fhirpath/System."
# How each primitive is written in JSON (FHIR R4 JSON, section 'Primitive Types'); the rest are strings.
_JSON_BOOL = {"boolean"}
_JSON_INT = {"integer", "positiveInt", "unsignedInt"}
_JSON_NUMBER = {"decimal"}
_URLS = frozenset({"uri", "url", "canonical"})
_EXAMPLE_URL = re.compile(r"https?://([^/]*\.)?(example\.(org|com|net)|acme\.(com|org))([:/]|$)")
_INT_MIN = {"positiveInt": 1, "unsignedInt": 0}  # and all of them 32-bit


@dataclass(slots=True)
class Field:
    """One element of a type as it appears in JSON."""

    element: str  # the element's path in its StructureDefinition, e.g. Appointment.participant.actor
    type: str  # FHIR type code: a primitive, a complex type, BackboneElement/Element (inline), or Resource
    many: bool
    min: int
    max: int | None  # None: unbounded
    inline: Node | None = None  # the children of a backbone element, defined in place
    definition: Node | _Primitive | None = None  # the definition of `type`, found on first use
    resolved: bool = False


@dataclass(slots=True)
class Node:
    """A type, or a backbone element: its JSON properties and what it requires."""

    fields: dict[str, Field] = field(default_factory=dict)  # JSON name → field, choices expanded
    required: list[tuple[tuple[str, ...], Field]] = field(default_factory=list)  # names any of which will do
    is_resource: bool = False


@dataclass(slots=True)
class _Primitive:
    regex: re.Pattern[str] | None
    native: Callable[[str], bool] | None = None  # the same language as `regex`, checked without it


_BASE64_CHARS = re.compile(r"[\s0-9a-zA-Z+/=]+", re.ASCII)


def is_base64(text: str) -> bool:
    r"""R4's base64Binary regex, `(\s*([0-9a-zA-Z\+/=]){4}\s*)+`, says: base64 characters in runs of four,
    whitespace only between runs. Python's regex engine matches it character by character through two groups,
    some 300 µs for a 10 kB attachment; this is the same language, several times faster."""
    if not _BASE64_CHARS.fullmatch(text):
        return False
    runs = text.split()  # only ASCII whitespace is left to split on
    return bool(runs) and all(len(run) % 4 == 0 for run in runs)


def attachment_size_fault(value: dict[str, Any]) -> str | None:
    """What is wrong with an Attachment's stated `size` given its inline `data` (the decoded bytes), if
    anything; nothing to say when either is missing or the data is not base64 (reported as such)."""
    data, size = value.get("data"), value.get("size")
    if not isinstance(data, str) or not isinstance(size, int) or isinstance(size, bool) or not is_base64(data):
        return None
    try:
        actual = len(base64.b64decode("".join(data.split()), validate=True))
    except (binascii.Error, ValueError):
        return None
    return None if actual == size else f"The stated size {size} is not the size of the data, {actual} bytes"


# Primitives whose regex is checked natively (README, "Written policy"), with a test that both agree.
NATIVE_FORMATS: dict[str, Callable[[str], bool]] = {"base64Binary": is_base64}


def _type_code(t: dict[str, Any], resource_id: bool) -> str:
    code = str(t["code"])
    if code.startswith(_SYSTEM):
        if resource_id:
            return "id"  # the policy above
        for ext in t.get("extension", []):
            if ext.get("url") == _FHIR_TYPE:
                return str(ext["valueUrl"])
        return "string"
    return code


def choice_name(base: str, type_code: str) -> str:
    """The JSON name of a choice element for one of its types: `value` + `dateTime` → `valueDateTime`."""
    return base + type_code[:1].upper() + type_code[1:]



class StructureValidator:
    """Checks resources against the core definitions of their types. Thread-safe; build one per process."""

    def __init__(self, packages: PackageSet, options: ValidationOptions = ValidationOptions()) -> None:
        self.packages = packages
        self.security_checks = options.security_checks
        self.html_in_markdown = options.html_in_markdown
        self.example_urls = options.example_urls
        self.contained = options.contained
        self._types: dict[str, Node | _Primitive | None] = {}
        self._lock = threading.Lock()

    def with_arrays(self, value: dict[str, Any], type_code: str,
                    primitive: Callable[[Any, str], Any] | None = None) -> dict[str, Any]:
        """`value` with each element its definition says repeats made a JSON array (a single value wrapped), a
        single-valued one given one value, a primitive given as an object (its extensions alone) as `_name`,
        and each primitive value passed through `primitive` with its FHIR type (to give text its JSON form):
        for JSON made by tables that do not say which elements repeat or what type a value is (the V2-to-FHIR
        IG's sheets). Names the definitions do not know are left as they are."""
        node = self.definition(type_code)
        return self._arrays(value, node, primitive or _same) if isinstance(node, Node) else value

    def _arrays(self, value: Any, node: Node, primitive: Callable[[Any, str], Any]) -> Any:
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            f = node.fields.get(key[1:] if key.startswith("_") else key)
            if f is None:
                out[key] = item
                continue
            inner = self.definition("Element") if key.startswith("_") else f.inline or (
                self.definition(f.type) if f.type[:1].isupper() else None)
            items = [self._arrays(i, inner, primitive) if isinstance(inner, Node) else primitive(i, f.type)
                     for i in (item if isinstance(item, list) else [item])]
            if inner is None and not key.startswith("_") and all(isinstance(i, dict) for i in items):
                key = "_" + key  # a primitive given as its extensions alone
                items = [self._arrays(i, self.definition("Element"), primitive) for i in items]  # type: ignore[arg-type]
            out[key] = items if f.many else items[0]
        return out

    # --- compiling --------------------------------------------------------------------------------------

    def definition(self, type_code: str) -> Node | _Primitive | None:
        found = self._types.get(type_code)
        if found is not None or type_code in self._types:
            return found
        with self._lock:
            if type_code not in self._types:
                self._types[type_code] = self._compile(type_code)
            return self._types[type_code]

    def _compile(self, type_code: str) -> Node | _Primitive | None:
        sd = self.packages.get(CORE + type_code, "StructureDefinition")
        if sd is None or sd.get("derivation") == "constraint":
            return None
        elements: list[dict[str, Any]] = sd["snapshot"]["element"]
        if sd["kind"] == "primitive-type":
            value = next((e for e in elements if e["path"] == f"{type_code}.value"), None)
            regex = None
            for t in (value or {}).get("type", []):
                for ext in t.get("extension", []):
                    if ext.get("url") == _REGEX:
                        # ASCII classes, as in the Java regular expressions the definitions are written for:
                        # `\S` must match a no-break space (FUT's own code systems have them).
                        regex = re.compile(ext["valueString"], re.ASCII)
            return _Primitive(regex, NATIVE_FORMATS.get(type_code) if regex is not None else None)
        by_path = {e["path"]: e for e in elements}
        return self._node(type_code, elements, by_path, {}, sd["kind"] == "resource")

    def _node(self, parent: str, elements: list[dict[str, Any]], by_path: dict[str, dict[str, Any]],
              made: dict[str, Node], is_resource: bool = False) -> Node:
        """The node for `parent`'s children; `made` holds the nodes of this type made so far, so an element
        that refers back to its ancestor (Questionnaire.item.item) shares its node instead of recursing."""
        if parent in made:
            return made[parent]
        node = made[parent] = Node(is_resource=is_resource)
        prefix = parent + "."
        for e in elements:
            path: str = e["path"]
            if not path.startswith(prefix) or "." in path[len(prefix):]:
                continue
            name = path[len(prefix):]
            many = e.get("max") != "1" and e.get("max") != "0"
            max_ = None if e.get("max", "*") == "*" else int(e["max"])
            min_ = int(e.get("min", 0))
            if "contentReference" in e:  # e.g. Questionnaire.item.item: the children of another element
                target = e["contentReference"].lstrip("#")
                types = [by_path[target]["type"][0]["code"]]
                inline_from: str | None = target
            else:
                types = [_type_code(t, is_resource and name == "id") for t in e.get("type", [])]
                inline_from = path if types and types[0] in ("BackboneElement", "Element") else None
            inline = self._node(inline_from, elements, by_path, made) if inline_from else None
            names: list[str] = []
            if name.endswith("[x]"):
                base = name[:-3]
                for code in types:
                    names.append(choice_name(base, code))
                    node.fields[names[-1]] = Field(path, code, many, min_, max_)
            else:
                names.append(name)
                node.fields[name] = Field(path, types[0] if types else "Element", many, min_, max_, inline)
            if min_ > 0:
                node.required.append((tuple(names + ["_" + n for n in names]), node.fields[names[0]]))
        return node

    # --- checking ---------------------------------------------------------------------------------------

    def check(self, resource: Any, expected_type: str | None = None, part: Part = WHOLE) -> Outcome:
        """The structural verdict on one resource (a parsed JSON object); of one part of it, for a Bundle the
        validator validates in parts (`hub.fhir.parts`)."""
        if not isinstance(resource, dict):
            return single("structure", "A resource must be a JSON object", None)
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            return single("structure", "Missing resourceType", None)
        if expected_type and rtype != expected_type:
            return single("invalid", f"Expected a {expected_type} resource, got {rtype}", "resourceType")
        out = Outcome()
        if not part.parted:
            self._resource(resource, rtype, out)
            return out
        node = self.definition(rtype)
        assert isinstance(node, Node)
        if part.owns_root:
            self._object({k: v for k, v in resource.items() if k != "entry"}, node, rtype, out)
        entry = node.fields["entry"]
        for i, one in enumerate(resource["entry"]):
            if part.takes(i):
                self._value(one, entry, f"{rtype}.entry[{i}]", out, None)
        return out

    def _resource(self, value: dict[str, Any], where: str, out: Outcome) -> None:
        rtype = value.get("resourceType")
        node = self.definition(rtype) if isinstance(rtype, str) else None
        if not isinstance(node, Node) or not node.is_resource:
            out.error("structure", f"Unknown resource type '{rtype}'", where, rule="structure")
            return
        self._object(value, node, where, out)

    def _object(self, value: dict[str, Any], node: Node, where: str, out: Outcome) -> None:
        if not value:
            out.error("structure", "An object must not be empty", where, rule="structure")
            return
        for key, item in value.items():
            if key == "resourceType" and node.is_resource or key == "contained" and not self.contained:
                continue
            f = node.fields.get(key)
            if f is not None:
                self._property(item, f, f"{where}.{key}", out, value.get("_" + key))
                continue
            if key.startswith("_") and (pf := node.fields.get(key[1:])) is not None:
                if key[1:] not in value:  # else checked alongside its value
                    self._extras_alone(item, pf, f"{where}.{key[1:]}", out)
                continue
            out.error("structure", f"Unknown element '{key}'", f"{where}.{key}", rule="structure")
        for names, f in node.required:
            if not any(n in value for n in names):
                name = f.element.rsplit(".", 1)[-1]
                # at the element that lacks it, as the HL7 validator places it
                out.error("required", f"Missing required element '{name}' (min {f.min})", where, rule=f.element)

    def _property(self, item: Any, f: Field, where: str, out: Outcome, extras: Any) -> None:
        if f.many:
            if not isinstance(item, list):
                out.error("structure", f"'{f.element}' repeats: expected a JSON array", where, rule=f.element)
                return
            if not item:
                out.error("structure", "An array must not be empty", where, rule=f.element)
                return
            if f.max is not None and len(item) > f.max:
                out.error("structure", f"At most {f.max} allowed, found {len(item)}", where, rule=f.element)
            if extras is not None and (not isinstance(extras, list) or len(extras) != len(item)):
                out.error("structure", "The '_' array must match its values one for one", where, rule=f.element)
                extras = None
            for i, one in enumerate(item):
                extra = extras[i] if extras is not None else None
                if one is None and extra is not None:
                    continue  # an extension-only repetition: null value, its '_' entry says the rest
                self._value(one, f, f"{where}[{i}]", out, extra)
        else:
            if isinstance(item, list):
                out.error("structure", f"'{f.element}' does not repeat: expected a single value, not an array",
                          where, rule=f.element)
                return
            self._value(item, f, where, out, extras)

    def _value(self, item: Any, f: Field, where: str, out: Outcome, extras: Any) -> None:
        if item is None:
            out.error("structure", "null is not a FHIR value", where, rule=f.element)
            return
        if f.inline is not None:
            if isinstance(item, dict):
                self._object(item, f.inline, where, out)
            else:
                out.error("structure", "Expected a JSON object", where, rule=f.element)
            return
        if f.type == "Resource":
            if isinstance(item, dict):
                self._resource(item, where, out)
            else:
                out.error("structure", "Expected a resource (JSON object)", where, rule=f.element)
            return
        if not f.resolved:
            f.definition, f.resolved = self.definition(f.type), True
        definition = f.definition
        if isinstance(definition, Node):
            if isinstance(item, dict):
                self._object(item, definition, where, out)
                if f.type == "Attachment" and (fault := attachment_size_fault(item)) is not None:
                    out.error("value", fault, where, rule="Attachment.size")
            else:
                out.error("structure", f"Expected a JSON object ({f.type})", where, rule=f.element)
            return
        self._primitive(item, f, definition, where, out)
        if extras is not None:
            self._primitive_extras(extras, f, where, out)

    def _primitive(self, item: Any, f: Field, definition: _Primitive | None, where: str, out: Outcome) -> None:
        t = f.type
        if t in _JSON_BOOL:
            ok = isinstance(item, bool)
        elif t in _JSON_INT:
            ok = isinstance(item, int) and not isinstance(item, bool)
        elif t in _JSON_NUMBER:
            ok = isinstance(item, int | float) and not isinstance(item, bool)
        else:
            ok = isinstance(item, str)
        if not ok:
            out.error("value", f"Invalid value: {item!r} is not a JSON {_json_kind(t)} ({t})", where, rule=f.element)
            return
        if isinstance(item, str):
            if not item.strip():
                out.error("value", "Invalid value: a string must not be empty", where, rule=f.element)
                return
            if t == "markdown" or (t == "string" and self.security_checks):
                self._markup(item, t, where, out)
            elif not self.example_urls and t in _URLS and _EXAMPLE_URL.match(item):
                out.error("value", f"Example URLs are not allowed here ({_short(item)})", where, rule="example-url")
            if definition is None:
                return
            valid = definition.native(item) if definition.native is not None else (
                definition.regex is None or definition.regex.fullmatch(item) is not None)
            if not valid:
                out.error("value", f"Invalid value: '{_short(item)}' is not a valid {t}", where, rule=f.element)
        elif t in _JSON_INT and not (_INT_MIN.get(t, -(2**31)) <= item < 2**31):
            out.error("value", f"Invalid value: {item} is not a valid {t}", where, rule=f.element)

    def _markup(self, item: str, t: str, where: str, out: Outcome) -> None:
        if t == "markdown":
            tag = narrative.tag_in_markdown(item)
            if tag is not None:
                out.add(self.html_in_markdown, "value", f"The markdown holds what looks like an HTML tag ('{tag}'); "
                        "it will be escaped when shown, so check that it is meant", where, rule="markdown-html")
        elif tags := narrative.tags_in_text(item):
            out.error("security", f"The string holds HTML tags ({', '.join(dict.fromkeys(tags))}), which are not "
                      "allowed in it", where, rule="security-string")

    def _extras_alone(self, extras: Any, f: Field, where: str, out: Outcome) -> None:
        """`_name` without `name`: the values are absent, only their ids or extensions are given."""
        if not f.many:
            self._primitive_extras(extras, f, where, out)
        elif not isinstance(extras, list) or not extras:
            out.error("structure", f"'{f.element}' repeats: expected a JSON array", where, rule=f.element)
        else:
            for i, one in enumerate(extras):
                if one is not None:
                    self._primitive_extras(one, f, f"{where}[{i}]", out)

    def _primitive_extras(self, extras: Any, f: Field, where: str, out: Outcome) -> None:
        """A primitive's `_name` object: its id and extensions (the Element type)."""
        element = self.definition("Element")
        if not isinstance(extras, dict) or not isinstance(element, Node):
            out.error("structure", "Expected a JSON object with the value's id or extensions", where,
                      rule=f.element)
            return
        self._object(extras, element, where, out)


def _json_kind(t: str) -> str:
    if t in _JSON_BOOL:
        return "boolean"
    if t in _JSON_INT:
        return "integer"
    if t in _JSON_NUMBER:
        return "number"
    return "string"


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"



def _same(item: Any, type_code: str) -> Any:
    return item
