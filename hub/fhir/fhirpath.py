"""FHIRPath for profile invariants: fhirpathpy, each expression compiled once, plus the FHIR functions it lacks.

fhirpathpy implements FHIRPath's normative part. The FHIR-specific functions constraints use are added through
its user invocation table: `hasValue()`, `resolve()` (contained `#id`, and inside a Bundle by `fullUrl`,
`Type/id` and `urn:uuid:`), `memberOf()` (the hub's terminology), `conformsTo()` (the validator's own profile
check), `type()` of resources and of `%context` (whose type the validator knows; other values are typed by
fhirpathpy) and `htmlChecks()` (true here: `txt-1` and `txt-2`, the only constraints that call it, are checked
natively by the validator, `hub.fhir.narrative`).

Most invariants run as closures compiled by `hub.fhir.fhirpath_compiled`, with the same functions; what that
compiler leaves out, at compile or at run time, is evaluated by fhirpathpy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.engine.util import set_paths
from fhirpathpy.models import models

from hub.fhir import fhirpath_trees
from hub.fhir.fhirpath_compiled import Compiled, Env, Fallback, NotCompiled, compile_expression
from hub.fhir.packages import Terminology
from hub.fhir.values import parameter_resources

Evaluator = Callable[..., list[Any]]


class Unresolvable(Exception):
    """An invariant needs resources its input does not contain (references `resolve()` could not follow)."""

    def __init__(self, references: list[str]) -> None:
        self.references = references
        super().__init__(", ".join(dict.fromkeys(references)))


class InvariantEngine:
    """Compiled FHIRPath expressions; thread-safe."""

    def __init__(self, terminology: Terminology, compiled: bool = True) -> None:
        self.terminology = terminology
        self.use_compiled = compiled  # False: fhirpathpy alone (the tests compare both)
        self.conforms: Callable[[Any, str], bool] = lambda resource, canonical: False  # set by the validator
        self._compiled: dict[str, Evaluator] = {}
        self._closures: dict[str, tuple[Compiled, list[Any] | None] | None] = {}
        self._lock = threading.Lock()
        self._model = models["r4"]
        self._local = threading.local()  # the resource being evaluated, for resolve()
        self._hooks = (self._resolve, self._member_of, self._conforms_to)  # bound once, not per evaluation
        self._options = {"userInvocationTable": {
            "hasValue": {"fn": self._has_value, "arity": {0: []}},
            "resolve": {"fn": self._resolve, "arity": {0: []}},
            "memberOf": {"fn": self._member_of, "arity": {1: ["String"]}},
            "conformsTo": {"fn": self._conforms_to, "arity": {1: ["String"]}},
            "htmlChecks": {"fn": lambda inputs: [True], "arity": {0: []}},
        }, "traceFn": lambda *args: None}  # FUT's invariants call trace(): not onto our stdout

    def compiled(self, expression: str) -> Evaluator:
        found = self._compiled.get(expression)
        if found is None:
            with self._lock:
                found = self._compiled.get(expression)
                if found is None:
                    # fhirpathpy.compile, from the tree parsed once (`hub.fhir.fhirpath_trees`)
                    found = set_paths(fhirpathpy.apply_parsed_path, parsedPath=fhirpath_trees.tree(expression),
                                      model=self._model, options=self._options)  # type: ignore[no-untyped-call]
                    self._compiled[expression] = found
        return found

    def closure(self, expression: str) -> tuple[Compiled, list[Any] | None] | None:
        """The compiled expression and its result on an empty object (the result on any focus object without
        the names it reads), or None where fhirpathpy evaluates it."""
        try:
            return self._closures[expression]
        except KeyError:
            pass
        found: tuple[Compiled, list[Any] | None] | None = None
        try:
            compiled = compile_expression(expression)
        except NotCompiled:
            pass
        else:
            empty: list[Any] | None = None
            if compiled.guard is not None:
                env = Env({}, {}, [{}], self._resolve, self._member_of, self._conforms_to, [{}])
                try:
                    empty = compiled.fn([{}], env)
                except Exception:
                    empty = None
            found = (compiled, empty)
        self._closures[expression] = found
        return found

    def always_holds(self, expression: str) -> bool:
        """Whether the expression holds on any focus without evaluating it (its compiled form is a constant:
        `htmlChecks()`, whose rules the validator checks natively)."""
        found = self.closure(expression) if self.use_compiled else None
        return found is not None and found[0].constant is not None and found[0].constant != [False]

    def holds_without(self, expression: str) -> frozenset[str] | None:
        """The JSON names without which a focus object satisfies the invariant, so the validator need not
        evaluate it there: the guard of an expression whose result on an empty object holds. None: evaluate
        it on every focus."""
        found = self.closure(expression) if self.use_compiled else None
        if found is None or found[1] is None or found[1] == [False]:
            return None
        return found[0].guard

    def holds(self, expression: str, node: Any, resource: Any, root: Any, path: str | None = None,
              within: Any = None, node_type: str | None = None) -> bool:
        """Whether the invariant holds on `node` (empty counts as true, as FHIR's invariants are written).
        `root` is `%rootResource`; `within` the input `resolve()` looks in (a Bundle), `root` if not given;
        `node_type` the node's FHIR type, when known (`%context.type()`).

        Raises `Unresolvable` when it does not hold but `resolve()` met references to resources that are not
        in the input: then the verdict is unknown, not false.
        """
        result = self.evaluate(expression, node, resource, root, path, within, node_type)
        holds = not (len(result) == 1 and result[0] is False)
        if not holds and self._local.unresolved:
            raise Unresolvable(self._local.unresolved)
        return holds

    def evaluate(self, expression: str, node: Any, resource: Any, root: Any, path: str | None = None,
                 within: Any = None, node_type: str | None = None) -> list[Any]:
        """The expression's result on `node`: by its compiled closure, else (or where the closure falls back)
        by fhirpathpy. `path` is the node's element path, which fhirpathpy needs to type it."""
        self._local.root = root if within is None else within
        self._local.unresolved = []
        found = self.closure(expression) if self.use_compiled else None
        if found is not None:
            compiled, empty = found
            if empty is not None and isinstance(node, dict) and compiled.guard.isdisjoint(node):  # type: ignore[union-attr]
                return empty
            focus = [node]
            env = Env(resource, root, focus, *self._hooks, focus, context_type=node_type, type_of=fhir_type)
            try:
                return compiled.fn(focus, env)
            except Fallback:
                self._local.unresolved = []
        return self._interpreted(expression, node, resource, root, path)

    def _interpreted(self, expression: str, node: Any, resource: Any, root: Any, path: str | None) -> list[Any]:
        # An element is typed by its path, so that `value` finds `valueQuantity` on an Observation.component
        # too; a resource types itself (and its invariants may start with its type name: `Bundle.entry`).
        is_resource = isinstance(node, dict) and "resourceType" in node
        typed = node if is_resource or not path else ResourceNode.create_node(node, path)  # type: ignore[no-untyped-call]
        return self.compiled(expression)(typed, {"resource": resource, "rootResource": root})

    # --- the functions fhirpathpy lacks -------------------------------------------------------------------

    @staticmethod
    def _has_value(inputs: list[Any]) -> list[bool]:
        return [len(inputs) == 1 and not isinstance(inputs[0], dict | list) and inputs[0] is not None]

    def _member_of(self, inputs: list[Any], valueset: str) -> list[bool]:
        try:
            codes = self.terminology.codes(valueset)
        except Exception:
            return []
        out = []
        for item in inputs:
            if isinstance(item, str):
                out.append(any(code == item for _, code in codes))
            elif isinstance(item, dict):
                codings = item.get("coding", [item])
                out.append(any((c.get("system"), c.get("code")) in codes for c in codings if isinstance(c, dict)))
        return out

    def _conforms_to(self, inputs: list[Any], canonical: str) -> list[bool]:
        return [self.conforms(item, canonical) for item in inputs if isinstance(item, dict)]

    def _resolve(self, inputs: list[Any]) -> list[Any]:
        root = getattr(self._local, "root", None)
        out = []
        for item in inputs:
            ref = item.get("reference") if isinstance(item, dict) else item if isinstance(item, str) else None
            if isinstance(ref, str):
                target = resolve_reference(root, ref)
                if target is not None:
                    out.append(target)
                else:
                    self._local.unresolved.append(ref)
        return out


def fhir_type(items: list[Any], env: Env) -> list[Any]:
    """`type()` of resources (their `resourceType`) and of `%context` (the type the caller gave); any other value
    is left to fhirpathpy (`Fallback`)."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("resourceType"), str):
            out.append({"namespace": "FHIR", "name": item["resourceType"]})
        elif env.context_type is not None and env.context and item is env.context[0]:
            out.append({"namespace": "FHIR", "name": env.context_type})
        else:
            raise Fallback
    return out


def resolve_reference(root: Any, ref: str) -> dict[str, Any] | None:
    """The resource `ref` points at within `root`: a contained `#id`, a Bundle entry by fullUrl, by the `Type/id`
    a fullUrl ends with, or by its resource's `Type/id` (the first entry that matches, in order), or a resource
    of a Parameters by its `Type/id`."""
    if not isinstance(root, dict):
        return None
    if ref.startswith("#"):
        for c in root.get("contained", []) or []:
            if isinstance(c, dict) and c.get("id") == ref[1:]:
                return c
        return None
    if root.get("resourceType") == "Parameters":
        return next((r for _, r in parameter_resources(root.get("parameter"), "")
                     if ref == f"{r.get('resourceType')}/{r.get('id')}"), None)
    if root.get("resourceType") != "Bundle":
        return None
    hit = _bundle_index(root).get(ref)
    return hit[1] if hit is not None else None


_indexes = threading.local()  # the entry index of the last Bundles resolved in, per thread


def _bundle_index(bundle: dict[str, Any]) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each entry by its fullUrl, the `Type/id` its fullUrl ends with, and its resource's `Type/id`; the first
    entry for each key. Kept for the few Bundles last validated (a 10,000-entry Bundle has as many references,
    which would otherwise each scan it), and made anew when the Bundle's entries change."""
    kept: dict[int, tuple[Any, int, dict[str, tuple[int, dict[str, Any]]]]] = _indexes.__dict__.setdefault("kept", {})
    entries = bundle.get("entry") or []
    held = kept.get(id(bundle))
    if held is not None and held[0] is bundle and held[1] == len(entries):
        return held[2]
    index: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            continue
        res = entry["resource"]
        full = entry.get("fullUrl")
        for key in (full, _tail(full) if isinstance(full, str) else None, f"{res.get('resourceType')}/{res.get('id')}"):
            if isinstance(key, str) and key not in index:
                index[key] = (i, res)
    if len(kept) >= 4:
        kept.clear()
    kept[id(bundle)] = (bundle, len(entries), index)
    return index


def _tail(url: str) -> str | None:
    """The `Type/id` an absolute RESTful url ends with (`http://x/fhir/Patient/1` → `Patient/1`)."""
    parts = url.rsplit("/", 2)
    return f"{parts[1]}/{parts[2]}" if len(parts) == 3 and "://" in parts[0] + "/" else None
