"""Checks of a profile itself, when a StructureDefinition is what is validated (as the HL7 validator makes them).

Its differential's slicings: each discriminator's path must start at an element of the sliced element's type
(`url` on an Extension, `system` on an Identifier); `$this`, functions (`resolve()`, `extension('…')`,
`ofType(…)`) and paths into a choice by its plain name are taken as they stand. Pure over the structure check's
compiled types.
"""

from __future__ import annotations

from typing import Any

from hub.fhir.structure import Node, StructureValidator


def discriminator_faults(sd: dict[str, Any], structure: StructureValidator) -> list[tuple[str, str]]:
    """(place, text) for each discriminator path that leads nowhere in the element it slices."""
    found = []
    elements = (sd.get("differential") or {}).get("element") or []
    for i, element in enumerate(elements if isinstance(elements, list) else []):
        slicing = element.get("slicing") if isinstance(element, dict) else None
        if not isinstance(slicing, dict):
            continue
        node = _sliced_type(element, structure)
        if node is None:
            continue
        names = {f.element.rsplit(".", 1)[-1].removesuffix("[x]") for f in node.fields.values()}
        for j, discriminator in enumerate(slicing.get("discriminator") or []):
            path = str(discriminator.get("path", "")) if isinstance(discriminator, dict) else ""
            step = path.split(".", 1)[0]
            if step and step != "$this" and "(" not in step and step not in names:
                found.append((f"StructureDefinition.differential.element[{i}].slicing.discriminator[{j}]",
                              f"The discriminator path '{path}' does not lead to an element of "
                              f"'{element.get('path')}', which it slices"))
    return found


def _sliced_type(element: dict[str, Any], structure: StructureValidator) -> Node | None:
    """The compiled type of the sliced element: the one type the element names, else its type in R4 core."""
    types = [t.get("code") for t in element.get("type") or [] if isinstance(t, dict)]
    if len(types) == 1 and isinstance(types[0], str):
        found = structure.definition(types[0])
        return found if isinstance(found, Node) else None
    steps = str(element.get("path", "")).split(".")
    root = structure.definition(steps[0])
    node = root if isinstance(root, Node) else None
    for step in steps[1:]:
        field = next((f for f in node.fields.values() if f.element.rsplit(".", 1)[-1] == step), None) \
            if node is not None else None
        if field is None:
            return None
        child = field.inline or structure.definition(field.type)
        node = child if isinstance(child, Node) else None
    return node
