"""Which slice a value is in: the matching of `ElementDefinition.slicing` discriminators, for the validator.

A value is in the first slice whose discriminators it meets (value and pattern by the slice's fixed value,
pattern or required binding at the path; exists; type, also of what a reference resolves to; profile); a
slicing by one value that each slice fixes as a string is matched by one lookup. `SliceMatching` is a part of
the `Validator`, apart for size: it uses the validator's profiles, terminology and conformance check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.fhir.paths import step_parts, steps, typed_values_at, values_at
from hub.fhir.profile import ElementDef
from hub.fhir.structure import CORE
from hub.fhir.values import code_of, json_type_of, matches_pattern

if TYPE_CHECKING:
    from hub.fhir.packages import Terminology
    from hub.fhir.profile import Profile

Item = tuple[Any, str, str | None]  # a value, its place relative to its parent, the type its choice name gives


def _extension_urls(slice_ed: ElementDef) -> set[str]:
    """The canonicals of an extension slice's profiles: its `url`, where its definition is not loaded."""
    return {p.split("|")[0] for t in slice_ed.types if t.code == "Extension" for p in t.profiles}


class SliceMatching:
    terminology: Terminology
    _elements_at: dict[tuple[int, str], ElementDef | None]
    _slice_indexes: dict[int, tuple[str, dict[str, int]] | None]

    def profile(self, canonical: str, context: str | None = None) -> Profile | None:
        raise NotImplementedError

    def _conforms(self, item: Any, canonical: str, context: str | None, root: Any = None) -> bool:
        raise NotImplementedError

    def _slice_index(self, ed: ElementDef) -> tuple[str, dict[str, int]] | None:
        """For a slicing by one `value` discriminator whose every slice fixes a string there (extensions by
        `url`, identifiers by `system`): the path, and each string's first slice, so a value finds its slice by
        one lookup instead of a match against each slice. None where a slice sets its value otherwise."""
        try:
            return self._slice_indexes[id(ed)]
        except KeyError:
            found = self._slice_indexes[id(ed)] = self._make_slice_index(ed)
            return found

    def _make_slice_index(self, ed: ElementDef) -> tuple[str, dict[str, int]] | None:
        assert ed.slicing is not None
        if len(ed.slicing.discriminators) != 1 or ed.slicing.discriminators[0][0] not in ("value", "pattern"):
            return None
        path = ed.slicing.discriminators[0][1]
        keys: dict[str, int] = {}
        for i, s in enumerate(ed.slices):
            target = self._element_at(s, path)
            if target is None or (path == "url" and target.fixed is None):
                if path != "url":
                    return None
                strings = _extension_urls(s)
            else:
                fixed = target.fixed or target.pattern
                if fixed is None or type(fixed[1]) is not str:
                    return None
                strings = {fixed[1]}
            for text in strings:
                keys.setdefault(text, i)
        return path, keys

    def _in_slice(self, base: ElementDef, slice_ed: ElementDef, item: Item, root: Any) -> bool:
        assert base.slicing is not None
        for kind, path in base.slicing.discriminators:
            if not self._discriminated(kind, path, slice_ed, item, root):
                return False
        return bool(base.slicing.discriminators)

    def _discriminated(self, kind: str, path: str, slice_ed: ElementDef, one: Item, root: Any) -> bool:
        item, _, one_type = one
        if kind in ("value", "pattern"):
            # The value is set by the element's fixed value, its pattern, or its required binding (FHIR's
            # definition of the value discriminator), found in the slice or in the profile of its type.
            target = self._element_at(slice_ed, path)
            found = values_at(item, path, root)
            if target is None or (path == "url" and target.fixed is None):
                # An extension slice whose definition is not loaded: its url is the definition's canonical.
                urls = _extension_urls(slice_ed)
                return path == "url" and bool(urls) and any(v in urls for v in found)
            if target.fixed is not None or target.pattern is not None:
                expected = target.fixed[1] if target.fixed is not None else target.pattern[1]  # type: ignore[index]
                return any(matches_pattern(v, expected) for v in found)
            if target.max == 0:  # a value the slice prohibits: its slice is the values without one
                return not found
            if target.binding is not None and target.binding[0] == "required":
                try:
                    codes = self.terminology.codes(target.binding[1], target.package)
                except Exception:
                    return False
                return any(any(c == code_of(v) for _, c in codes) for v in found)
            return True  # a slice that sets no value there sets no condition by this discriminator
        if kind == "exists":
            target = self._element_at(slice_ed, path)
            present = bool(values_at(item, path, root))
            return present if target is None or target.min > 0 else (not present if target.max == 0 else True)
        if kind == "type":
            if steps(path)[-1:] == ("resolve()",):  # the type of the resource referred to: its target profiles'
                ref_ed = self._element_at(slice_ed, path.removesuffix("resolve()").rstrip(".")) or slice_ed
                type_codes = {prof.type if (prof := self.profile(p, ref_ed.package)) else p.rsplit("/", 1)[-1]
                              for t in ref_ed.types for p in t.target_profiles}
            else:
                type_codes = {t.code for t in (self._element_at(slice_ed, path) or slice_ed).types}
            if not steps(path):
                return one_type in type_codes if one_type is not None else True
            found = [t or (json_type_of(v) if isinstance(v, dict) else None)
                     for v, t in typed_values_at(item, path, root)]
            # `contentString` spells the type `string` with a capital: compare both spellings
            return any(t is not None and (t in type_codes or t[:1].lower() + t[1:] in type_codes) for t in found)
        if kind == "profile":
            # The values at the path conform to a profile the slice gives them; a slice that gives none there
            # sets no condition by this discriminator.
            ed = self._element_at(slice_ed, path) or slice_ed
            targets = [p for t in ed.types for p in t.profiles]
            if not targets:
                return True
            values = values_at(item, path, root) if steps(path) else [item]
            return any(self._conforms(v, p, ed.package, root) for v in values for p in targets)
        return False

    def _element_at(self, ed: ElementDef, path: str) -> ElementDef | None:
        """The definition a discriminator path leads to, through inline children, type profiles, choice
        elements and `extension('url')` steps (the extension slice whose profile has that url); found once."""
        key = (id(ed), path)
        try:
            return self._elements_at[key]
        except KeyError:
            found = self._elements_at[key] = self._find_element_at(ed, path)
            return found

    def _find_element_at(self, ed: ElementDef, path: str) -> ElementDef | None:
        node: ElementDef | None = ed
        for step in steps(path):
            if node is None:
                return None
            if step == "resolve()":  # into the profile the reference must point to
                targets = [p for t in node.types for p in t.target_profiles]
                profiles = [self.profile(p, node.package) for p in targets]
                node = next((p.root for p in profiles if p is not None), None)
                continue
            name, url = step_parts(step)
            if url is not None:
                slices = node.children["extension"].slices if "extension" in node.children else []
                node = next((s for s in slices if url in (p.split("|")[0] for t in s.types for p in t.profiles)
                             or (s.children.get("url") and s.children["url"].fixed
                                 and s.children["url"].fixed[1] == url)), None)
                continue
            node = (node.children.get(name) or node.children.get(name + "[x]") or self._type_root(node, name)
                    or self._type_root(node, name + "[x]"))
            if node is not None and len(node.slices) == 1:
                node = node.slices[0]  # `extension.value` through a profile's one extension slice
        return node

    def _type_root(self, ed: ElementDef, step: str) -> ElementDef | None:
        """A child defined not inline but by the element's type profile (e.g. an extension's `url`)."""
        for t in ed.types:
            for canonical in t.profiles or (CORE + t.code,):
                prof = self.profile(canonical, ed.package)
                if prof is not None and step in prof.root.children:
                    return prof.root.children[step]
        return None
