"""A message Bundle against the MessageDefinition its MessageHeader names (`MessageHeader.definition`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.core.outcome import Outcome, Severity
from hub.fhir.fhirpath import resolve_reference
from hub.fhir.packages import PackageSet


def check_message(bundle: dict[str, Any], where: str, packages: PackageSet, context: str | None, out: Outcome,
                  once: Callable[[str, Severity, str, str, str, str], None],
                  conforms: Callable[[Any, str, str | None], bool]) -> None:
    """A message Bundle against what its MessageHeader's definition requires: the MessageDefinition named
    by `definition` is loaded, its event is the header's event, and the focus resources are there in the
    numbers, of the types and conforming to the profiles it names."""
    entries = [e for e in bundle.get("entry", []) or [] if isinstance(e, dict)]
    header = entries[0].get("resource") if entries else None
    if not isinstance(header, dict) or header.get("resourceType") != "MessageHeader":
        return  # bdl-? and the message profiles say so already
    hw = f"{where}.entry[0].resource"
    canonical = header.get("definition")
    if not isinstance(canonical, str):
        return
    found = packages.locate(canonical, "MessageDefinition", context)
    if found is None:
        once(canonical, "warning", "not-found", f"MessageDefinition {canonical} is not in the loaded packages; the "
             "message is not checked against it", f"{hw}.definition", "MessageHeader.definition")
        return
    definition, package = found
    expected = definition.get("eventCoding") or {}
    event = header.get("eventCoding") or {}
    if expected and (event.get("system"), event.get("code")) != (expected.get("system"), expected.get("code")):
        out.error("invariant", f"The event {event.get('system')}#{event.get('code')} is not the event of "
                  f"{canonical} ({expected.get('system')}#{expected.get('code')})", f"{hw}.eventCoding",
                  rule="MessageDefinition.eventCoding")
    focus_refs = [f.get("reference") for f in header.get("focus", []) or [] if isinstance(f, dict)]
    focus = [resolve_reference(bundle, r) for r in focus_refs if isinstance(r, str)]
    for rule in definition.get("focus", []) or []:
        of_type = [f for f in focus if f is not None and f.get("resourceType") == rule.get("code")]
        low, high = int(rule.get("min", 0)), rule.get("max", "*")
        if len(of_type) < low or (high != "*" and len(of_type) > int(high)):
            out.error("invariant", f"{canonical} wants {low}..{high} {rule.get('code')} as focus, the "
                      f"message has {len(of_type)}", f"{hw}.focus", rule="MessageDefinition.focus")
        if isinstance(rule.get("profile"), str):
            for f in of_type:
                if not conforms(f, rule["profile"], package):
                    out.error("invariant", f"The focus {f.get('resourceType')}/{f.get('id')} does not "
                              f"conform to {rule['profile']}", f"{hw}.focus", rule="MessageDefinition.focus")
