"""Where an extension may be used: its definition's `context` and `contextInvariant`, as the HL7 validator checks.

Every extension of a resource (on a resource, an element, a primitive's `_name`, or inside another extension) whose
definition is loaded is checked against the places its definition allows:
- `element` contexts name a type (`Address`, `boolean`, `Patient`), an element path (`Patient.name`,
  `DomainResource.text`), or a base (`Element` anywhere, `Resource`/`DomainResource` on a resource,
  `BackboneElement` on a backbone element, and R5's `CanonicalResource`/`MetadataResource` on an R4 resource
  with a `url` and a `status`: written policy, as extensions written for R5 name them);
- `extension` contexts name the url of the extension whose value or sub-extension this one may be;
- `fhirpath` contexts are evaluated on the resource: the extension's element must be among the results;
- each `contextInvariant` must hold on the extension's element.
A use nowhere allowed is an error at the element that carries the extension (the reference's place), with the
reference's wording. An extension whose definition is not loaded is an error, as the HL7 validator has it by default
("could not be found, so is not allowed here"), unless its url lies in a domain allowed any extension (those
configured, and the example domains the HL7 validator allows: `EXAMPLE_DOMAINS`), or names another FHIR version's
element (`http://hl7.org/fhir/5.0/StructureDefinition/extension-DocumentReference.version`: the HL7 validator makes
those definitions itself). Written policy: an unknown extension in HL7's own namespace (`http://hl7.org/fhir/…`) is a
warning that it was not checked, since HL7's extension pack and tools package, where the HL7 validator finds most of
them, are not in the store.

Written policy: R4 core's own conformance resources use several of R4 core's extensions outside the contexts those
extensions declare (`structuredefinition-fhir-type` on `ElementDefinition.type`, declared for `.type.code`;
`structuredefinition-normative-version` and `regex` on elements; the `concept-comments` extensions on concepts).
The contexts of R4 core's extensions are therefore not checked inside conformance resources (a resource with a
`url` and a `status`); everywhere else, and for every other package's extensions, they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hub.core.outcome import Outcome, Severity
from hub.fhir.fhirpath import InvariantEngine
from hub.fhir.packages import PackageSet
from hub.fhir.parts import WHOLE, Part
from hub.fhir.structure import Field, Node, StructureValidator

_EXTENSIONS = ("extension", "modifierExtension")
_RESOURCE_BASES = ("Resource", "DomainResource")
CORE_PACKAGE = "hl7.fhir.r4.core#"
# Where the HL7 validator takes any extension unseen: the domains of examples
EXAMPLE_DOMAINS = ("http://example.org/", "http://acme.com/", "http://nema.org/")
_HL7 = "http://hl7.org/fhir/"
# Another FHIR version's element as an R4 extension: the HL7 validator makes their definitions itself, none is loaded
_CROSS_VERSION = re.compile(r"http://hl7\.org/fhir/\d\.\d/StructureDefinition/extension-[A-Za-z]")
_CANONICAL_BASES = ("CanonicalResource", "MetadataResource")


@dataclass(frozen=True)
class _Host:
    """The element that carries an extension: where it is, what it is called and of which type."""

    value: Any
    where: str  # its FHIRPath place, with indexes
    names: tuple[str, ...]  # its element paths (in the resource, in its type) and its type
    type_code: str
    is_resource: bool
    root: dict[str, Any]  # the resource it is in
    extension_url: str | None = None  # the extension it is the value or sub-extension of


Trail = tuple[tuple[str, int | None], ...]  # the keys (and list indexes) from the resource to a value


class ExtensionContexts:
    """Checks the contexts of extensions; build once, with the validator (thread-safe).

    Most of a resource carries no extension, so the walk only collects where extensions are (a plain scan of the
    JSON); what carries each is worked out from the definitions for those places alone."""

    def __init__(self, packages: PackageSet, structure: StructureValidator, invariants: InvariantEngine,
                 unknown: Severity | None = "error", domains: tuple[str, ...] = ()) -> None:
        """`unknown`: how an extension whose definition is not loaded is reported (None: not at all); `domains`:
        url prefixes whose extensions are allowed unseen (the Java validator's extension domains)."""
        self.packages = packages
        self.structure = structure
        self.invariants = invariants
        self.unknown = unknown
        self.domains = domains
        self._definitions: dict[tuple[str, str | None], tuple[dict[str, Any], str] | None] = {}
        self._unknowns: dict[tuple[str, str | None], bool] = {}

    def check(self, resource: dict[str, Any], out: Outcome, context: str | None = None, part: Part = WHOLE) -> None:
        """The extensions in `resource`; in those Bundle entries only that `part` takes, and outside the
        entries only in the part that walks the Bundle itself."""
        for extension, trail in _extensions(resource, [], part if part.parted else None):
            url = extension.get("url")
            if not isinstance(url, str):
                continue
            if self.unknown is not None and self._unknown(url, context):
                if url.startswith(_HL7):
                    out.add("warning", "not-found", f"The extension {url} is not in the loaded packages (HL7's "
                            "extension and tools packages are not in the store); not checked",
                            _where(resource, trail), rule="extension-unknown")
                else:
                    out.add(self.unknown, "structure", f"The extension {url} could not be found, so it is not "
                            "allowed here", _where(resource, trail), rule="extension-unknown")
                continue
            located = self._definition(url, context)
            if located is None:
                continue
            host = self._host(resource, trail[:-1])
            if host is None or (located[1].startswith(CORE_PACKAGE) and self._canonical(host.root)):
                continue
            self._allowed(url, located[0], host, out)

    def _unknown(self, url: str, context: str | None) -> bool:
        """An absolute extension url no loaded package defines, outside the domains allowed any extension (a
        complex extension's parts have relative urls: their extension's definition says what they are)."""
        key = (url, context)
        found = self._unknowns.get(key)
        if found is None:
            found = self._unknowns[key] = (
                ("://" in url or url.startswith("urn:")) and not url.startswith(self.domains + EXAMPLE_DOMAINS)
                and not _CROSS_VERSION.match(url)
                and self.packages.locate(url, "StructureDefinition", context) is None)
        return found

    def _definition(self, url: str, context: str | None) -> tuple[dict[str, Any], str] | None:
        """The extension's definition and its package, when it restricts where it is used; found once."""
        key = (url, context)
        if key not in self._definitions:
            located = self.packages.locate(url, "StructureDefinition", context)
            restricts = located is not None and located[0].get("type") == "Extension" and any(
                c.get("expression") != "Element" for c in located[0].get("context", []) if isinstance(c, dict))
            self._definitions[key] = located if restricts or (located and located[0].get("contextInvariant")) \
                else None
        return self._definitions[key]

    def _host(self, resource: dict[str, Any], trail: Trail) -> _Host | None:
        """What carries the value at the end of `trail`, from the definitions."""
        rtype = str(resource.get("resourceType", ""))
        found = self.structure.definition(rtype)
        node: Node | None = found if isinstance(found, Node) else None
        value: Any = resource
        root, where, path = resource, rtype, rtype
        host = _Host(resource, rtype, (rtype,), rtype, True, resource)
        for key, index in trail:
            value = value.get(key) if isinstance(value, dict) else None
            if index is not None:
                value = value[index] if isinstance(value, list) and index < len(value) else None
            where += f".{key[1:] if key.startswith('_') else key}" + (f"[{index}]" if index is not None else "")
            if isinstance(value, dict) and value.get("resourceType"):  # a contained or entry resource
                rtype = str(value["resourceType"])
                found = self.structure.definition(rtype)
                node, root, path = (found if isinstance(found, Node) else None), value, rtype
                host = _Host(value, where, (rtype,), rtype, True, root)
                continue
            if key in _EXTENSIONS:  # inside an extension: what it holds is the extension's
                url = value.get("url") if isinstance(value, dict) else None
                found = self.structure.definition("Extension")
                node, path = (found if isinstance(found, Node) else None), "Extension"
                host = _Host(value, where, ("Extension",), "Extension", False, root, url)
                continue
            name = key[1:] if key.startswith("_") else key
            field = node.fields.get(name) if node is not None else None
            if field is None:
                return None
            names = ("Extension.value[x]", f"Extension.{name}", field.type) if path == "Extension" else \
                _names(path, field, name)
            host = _Host(value, where, names, field.type, False, root, host.extension_url if path == "Extension"
                         else None)
            child = field.inline or self.structure.definition(field.type)
            node = child if isinstance(child, Node) else None
            path = f"{path}.{name}"
        return host

    def _canonical(self, resource: dict[str, Any]) -> bool:
        """A conformance resource (R4's canonical resources: a `url` and a `status`)."""
        node = self.structure.definition(str(resource.get("resourceType", "")))
        return isinstance(node, Node) and "url" in node.fields and "status" in node.fields

    # --- the rules ----------------------------------------------------------------------------------------

    def _allowed(self, url: str, definition: dict[str, Any], host: _Host, out: Outcome) -> None:
        contexts = [c for c in definition.get("context", []) if isinstance(c, dict)]
        if contexts and not any(self._matches(c, host) for c in contexts):
            allowed = ", ".join(str(c.get("expression")) for c in contexts)
            out.error("structure", f"The extension {url} is not allowed to be used at this point (this element is "
                      f"[{', '.join(host.names)}]; allowed: {allowed})", host.where, rule="extension-context")
            return
        for invariant in definition.get("contextInvariant", []):
            try:
                holds = self.invariants.holds(str(invariant), host.value, host.root, host.root)
            except Exception:  # noqa: BLE001 - an expression the engine cannot evaluate is not a finding
                continue
            if not holds:
                out.error("invariant", f"The extension {url} is not allowed to be used at this point (based on "
                          f"context invariant '{invariant}')", host.where, rule="extension-context")

    def _matches(self, context: dict[str, Any], host: _Host) -> bool:
        kind, expression = context.get("type"), str(context.get("expression", ""))
        if kind == "extension":
            return host.extension_url is not None and expression.split("#")[0] == host.extension_url
        if kind == "fhirpath":
            try:
                found = self.invariants.evaluate(expression, host.root, host.root, host.root)
            except Exception:  # noqa: BLE001 - not evaluable here: not held against the use
                return True
            return any(item is host.value or item == host.value for item in found)
        if kind != "element":
            return True  # a kind of context this version does not know: not held against the use
        if expression in host.names or expression == "Element":
            return True
        if host.is_resource and expression in _RESOURCE_BASES:
            return True
        if host.is_resource and expression in _CANONICAL_BASES:  # R5's interfaces, in R4 terms: it has a url
            node = self.structure.definition(host.type_code)
            return isinstance(node, Node) and "url" in node.fields and "status" in node.fields
        if expression == "BackboneElement" and host.type_code == "BackboneElement":
            return True
        base, _, rest = expression.partition(".")
        return base in _RESOURCE_BASES and bool(rest) and any(
            n.split(".", 1)[1:] == [rest] for n in host.names if "." in n)


def _extensions(value: Any, trail: list[tuple[str, int | None]], part: Part | None = None
                ) -> list[tuple[dict[str, Any], Trail]]:
    """Every extension in `value`, with the trail to it (a plain scan: no definitions, one shared trail);
    with `part`, in a Bundle's part only. A list, made by plain recursion: nested generators would pass each
    extension up through every level."""
    found: list[tuple[dict[str, Any], Trail]] = []

    def scan(value: dict[str, Any], part: Part | None) -> None:
        for key, item in value.items():
            if part is not None and key != "entry" and not part.owns_root:
                continue
            if type(item) is list:
                for index, one in enumerate(item):
                    if part is not None and key == "entry" and not part.takes(index):
                        continue
                    if type(one) is dict:
                        trail.append((key, index))
                        if key in _EXTENSIONS:
                            found.append((one, tuple(trail)))
                        scan(one, None)
                        trail.pop()
            elif type(item) is dict:
                trail.append((key, None))
                scan(item, None)
                trail.pop()

    if isinstance(value, dict):
        scan(value, part)
    return found


def _where(resource: dict[str, Any], trail: Trail) -> str:
    """The FHIRPath place at the end of a trail (`Medication.extension[0]`)."""
    steps = "".join(f".{key[1:] if key.startswith('_') else key}" + (f"[{index}]" if index is not None else "")
                    for key, index in trail)
    return f"{resource.get('resourceType')}{steps}"


def _names(path: str, field: Field, name: str) -> tuple[str, ...]:
    """An element's names: its path in the resource (`Patient.address`), in its type's definition, its type."""
    element = field.element[:-3] if field.element.endswith("[x]") else field.element
    return tuple(dict.fromkeys((f"{path}.{name}", field.element, element, field.type)))
