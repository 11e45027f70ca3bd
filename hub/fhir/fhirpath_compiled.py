"""FHIRPath invariants compiled into Python closures over the JSON the validator walks.

Why: fhirpathpy interprets its parse tree on every call, through node wrappers, a registry lookup per function
and parameters typed anew per call: about 0.3 ms an invariant, and a MedCom message Bundle evaluates some 140
invariants. The invariants of the official packages use a small part of the language. This module compiles that
part, from fhirpathpy's own parse tree, into closures over the raw JSON values: the same meaning, at a small
fraction of the cost.

What it does not know is left to fhirpathpy, never guessed:
- at compile time (`NotCompiled`): a function, operator, literal or constant outside the part it implements;
- at run time (`Fallback`): a value it cannot decide exactly on raw JSON: date and time strings that differ
  (precision and time zones decide their equality), a primitive with an id or extensions (`_name`), a
  non-Boolean where a Boolean is expected, a collection where a single value is expected.

`and`, `or` and `implies` stop once their left side decides, which FHIRPath allows. Integer `mod` is the
remainder of truncated division, as the specification and the HL7 Java validator define it (fhirpathpy uses
Python's floored `%`: they differ only on negative operands, which no official invariant has). The test suite validates
every official example with and without compiled invariants and requires the same findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhirpathpy.models import models

from hub.fhir.fhirpath_trees import tree as parse
from hub.fhir.values import DATE_LIKE, text_decides

Node = dict[str, Any]
Items = list[Any]


class NotCompiled(Exception):
    """The expression uses something this compiler does not implement."""


class Fallback(Exception):
    """This evaluation met a value the compiled form cannot decide exactly."""


@dataclass(slots=True)
class Env:
    """What an evaluation sees besides its input: the constants, `$this`, and the FHIR functions' hooks."""

    resource: Any
    root: Any
    context: Items
    resolve: Callable[[Items], Items]
    member_of: Callable[[Items, str], Items]
    conforms_to: Callable[[Items, str], Items]
    this: Items = field(default_factory=list)
    index: int = 0
    memo: dict[int, Items] | None = None  # results of subexpressions that read no data, made on first use
    context_type: str | None = None  # the FHIR type of `%context`, when the caller knows it
    type_of: Callable[[Items, Env], Items] | None = None  # `type()`: the caller's (it raises Fallback if unknown)


Fn = Callable[[Items, Env], Items]

_MODEL = models["r4"]
_PARENT: dict[str, str] = _MODEL["type2Parent"]
# choice element name → the type suffixes its JSON names take (`value` → {`Quantity`, `String`, …})
_CHOICES: dict[str, frozenset[str]] = {}
for _element, _types in _MODEL["choiceTypePaths"].items():
    _name = _element.rsplit(".", 1)[-1]
    _CHOICES[_name] = _CHOICES.get(_name, frozenset()) | {t[:1].upper() + t[1:] for t in _types}
_CONSTANTS = {"ucum": "http://unitsofmeasure.org", "sct": "http://snomed.info/sct", "loinc": "http://loinc.org"}
_INTEGER = re.compile(r"[+-]?\d+")
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def is_resource_type(name: str) -> bool:
    """Whether `name` is Resource or a type derived from it (the types `is`/`ofType` can test on raw JSON)."""
    while name:
        if name == "Resource":
            return True
        name = _PARENT.get(name, "")
    return False


@dataclass(frozen=True, slots=True)
class Compiled:
    """A compiled expression, and what it reads of its focus: `guard` holds every JSON name the expression can
    read on the focus object (None when it can read more: `$this`, `%resource`, a type name, a function on the
    focus itself). A focus object with none of those names gives the same result as an empty object."""

    fn: Fn
    guard: frozenset[str] | None
    constant: Items | None = None  # the result, when it depends on nothing (`htmlChecks()`)


def compile_expression(expression: str) -> Compiled:
    """The closure for an expression; raises `NotCompiled` for what it does not implement."""
    try:
        tree = parse(expression)
    except Exception as exc:  # the same expression fails in fhirpathpy too, and is reported from there
        raise NotCompiled(str(exc)) from exc
    compiler = _Compiler()
    fn = compiler.node(tree["children"][0])
    guard = None
    if not compiler.open:
        guard = frozenset(key for name in compiler.roots
                          for suffix in ("", *_CHOICES.get(name, ())) for key in (name + suffix, "_" + name + suffix))
    return Compiled(fn, guard, _constant(fn))


# --- values ---------------------------------------------------------------------------------------------------


def _member(items: Items, name: str, hidden: str) -> Items:
    """The values of the member `name` (`hidden`: its `_name`) of each item."""
    out: Items = []
    for item in items:
        if not isinstance(item, dict):
            continue
        value = item.get(name)
        if hidden in item:
            raise Fallback  # a primitive with an id or extensions
        if value is None:
            suffixes = _CHOICES.get(name)
            if suffixes is not None:
                for key in item:
                    if key.startswith(name) and key[len(name):] in suffixes:
                        if "_" + key in item:
                            raise Fallback
                        value = item[key]
                        break
            elif name[:1].isupper() and item.get("resourceType") == name:
                value = item  # a path that starts with its context's type: `Bundle.entry`
        if value is None:
            continue
        if isinstance(value, list):
            out.extend(value if None not in value else [v for v in value if v is not None])
        else:
            out.append(value)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) and isinstance(b, str):
        if a != b and not text_decides(a, b):
            raise Fallback  # dates and times compare by precision and time zone
        return a == b
    return bool(a == b)


def _boolean(items: Items) -> bool | None:
    """Singleton evaluation as a Boolean: empty → None, one Boolean → itself, one other value → true."""
    if not items:
        return None
    if len(items) > 1:
        raise Fallback
    return items[0] if isinstance(items[0], bool) else True


def _criterion(items: Items) -> bool:
    """A criterion of `where`, `exists` or `all`: true only for a single true."""
    if not items:
        return False
    if len(items) == 1 and isinstance(items[0], bool):
        return items[0]
    raise Fallback


def _string(items: Items) -> str | None:
    if not items:
        return None
    if len(items) > 1 or not isinstance(items[0], str):
        raise Fallback
    return items[0]


def _distinct(items: Items) -> Items:
    if all(type(i) is str and not DATE_LIKE.match(i) or type(i) is int for i in items):
        return list(dict.fromkeys(items))  # plain strings and integers: equal exactly when Python says so
    out: Items = []
    for item in items:
        if not any(_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u":
                out.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _identifier(node: Node) -> str:
    return str(node["terminalNodeText"][0]).strip("`")


# --- the compiler ---------------------------------------------------------------------------------------------


class _Compiler:
    # Functions that, applied to the focus itself, read none of its names.
    _BLIND = frozenset({"iif", "exists", "empty", "count", "not", "hasValue", "htmlChecks"})

    def __init__(self) -> None:
        self.at_root = True  # whether the node being compiled is evaluated on the expression's focus
        self.roots: set[str] = set()  # the names read on the focus
        self.open = False  # whether more than those names is read

    def inner(self, n: Node) -> Fn:
        """Compile a node evaluated on something other than the focus."""
        saved, self.at_root = self.at_root, False
        try:
            return self.node(n)
        finally:
            self.at_root = saved

    def node(self, n: Node) -> Fn:
        kind = n.get("type")
        method = getattr(self, f"_{kind}", None)
        if method is None:
            raise NotCompiled(f"{kind} is not compiled")
        fn: Fn = method(n)
        if not self.at_root and kind in _COMPOUND and not _reads_data(n):
            return _memoised(fn)  # `%resource.type = 'batch'` inside `entry.all(…)`: once an evaluation
        return fn

    # terms

    def _TermExpression(self, n: Node) -> Fn:
        return self.node(n["children"][0])

    def _ParenthesizedTerm(self, n: Node) -> Fn:
        return self.node(n["children"][0])

    def _InvocationTerm(self, n: Node) -> Fn:
        return self.node(n["children"][0])

    def _LiteralTerm(self, n: Node) -> Fn:
        return self.node(n["children"][0])

    def _StringLiteral(self, n: Node) -> Fn:
        return _literal([_unescape(n["text"][1:-1])])

    def _NumberLiteral(self, n: Node) -> Fn:
        text = n["text"]
        return _literal([float(text) if "." in text else int(text)])

    def _BooleanLiteral(self, n: Node) -> Fn:
        return _literal([n["text"] == "true"])

    def _NullLiteral(self, n: Node) -> Fn:
        return _literal([])

    def _ExternalConstantTerm(self, n: Node) -> Fn:
        name = _identifier(n["children"][0]["children"][0])
        if name in ("resource", "rootResource", "context"):
            self.open = True
        if name == "resource":
            return lambda data, env: [env.resource]
        if name == "rootResource":
            return lambda data, env: [env.root]
        if name == "context":
            return lambda data, env: env.context
        if name in _CONSTANTS:
            return _literal([_CONSTANTS[name]])
        raise NotCompiled(f"%{name}")

    def _ThisInvocation(self, n: Node) -> Fn:
        self.open = self.open or self.at_root
        return lambda data, env: env.this

    def _IndexInvocation(self, n: Node) -> Fn:
        return lambda data, env: [env.index]

    def _MemberInvocation(self, n: Node) -> Fn:
        name = _identifier(n["children"][0])
        if self.at_root:
            if name[:1].isupper():
                self.open = True  # a type name: `Bundle.entry` reads the focus's resourceType
            self.roots.add(name)
        return _path((name,))

    def _FunctionInvocation(self, n: Node) -> Fn:
        functn = n["children"][0]
        if self.at_root and _identifier(functn["children"][0]) not in self._BLIND:
            self.open = True  # e.g. `extension(url)` or `resolve()` on the focus read its names
        return self.function(lambda data, env: data, functn, on_focus=self.at_root)

    # paths

    def _InvocationExpression(self, n: Node) -> Fn:
        left_node, right_node = n["children"]
        left = self.node(left_node)
        if right_node["type"] == "FunctionInvocation":
            return self.function(left, right_node["children"][0], on_focus=False)
        right = self.inner(right_node)
        steps: _Steps | None = getattr(right, "steps", None)
        if steps is None:
            return _then(left, right)
        before: _Steps | None = getattr(left, "steps", None)
        if before is not None:
            return _path(before[0] + steps[0], before[1])  # `a.b.c`: one function, not a closure a step
        return _path(steps[0], left)

    def _IndexerExpression(self, n: Node) -> Fn:
        base, index = (self.node(c) for c in n["children"])

        def indexer(data: Items, env: Env) -> Items:
            items = base(data, env)
            i = index(data, env)
            if not i:
                return []
            if len(i) > 1 or not isinstance(i[0], int) or isinstance(i[0], bool):
                raise Fallback
            return [items[i[0]]] if 0 <= i[0] < len(items) else []

        return indexer

    # operators

    def _PolarityExpression(self, n: Node) -> Fn:
        inner = self.node(n["children"][0])
        if n["terminalNodeText"][0] == "+":
            return inner

        def negate(data: Items, env: Env) -> Items:
            v = inner(data, env)
            if not v:
                return []
            if len(v) > 1 or not _is_number(v[0]):
                raise Fallback
            return [-v[0]]

        return negate

    def _EqualityExpression(self, n: Node) -> Fn:
        op = n["terminalNodeText"][0]
        if op not in ("=", "!="):
            raise NotCompiled(op)  # ~ and !~: equivalence
        left, right = (self.node(c) for c in n["children"])
        negated = op == "!="
        fixed = _constant(right)
        if fixed is not None and len(fixed) == 1:
            value = fixed[0]

            def equality_to(data: Items, env: Env) -> Items:
                a = left(data, env)
                if not a:
                    return []
                return [(len(a) == 1 and _equal(a[0], value)) != negated]
            return equality_to

        def equality(data: Items, env: Env) -> Items:
            a, b = left(data, env), right(data, env)
            if not a or not b:
                return []
            same = len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
            return [same != negated]

        return equality

    def _InequalityExpression(self, n: Node) -> Fn:
        op = n["terminalNodeText"][0]
        left, right = (self.node(c) for c in n["children"])
        compare: Callable[[Any, Any], bool] = {
            "<": lambda x, y: x < y, ">": lambda x, y: x > y,
            "<=": lambda x, y: x <= y, ">=": lambda x, y: x >= y}[op]

        def inequality(data: Items, env: Env) -> Items:
            pair = _operands(left, right, data, env)
            if pair is None:
                return []
            x, y = pair
            if _is_number(x) and _is_number(y):
                return [compare(x, y)]
            if isinstance(x, str) and isinstance(y, str) and text_decides(x, y):
                return [compare(x, y)]
            raise Fallback

        return inequality

    def _MembershipExpression(self, n: Node) -> Fn:
        op = n["terminalNodeText"][0]
        left, right = (self.node(c) for c in n["children"])
        if op == "contains":
            left, right = right, left

        def membership(data: Items, env: Env) -> Items:
            element, collection = left(data, env), right(data, env)
            if not element:
                return []
            if len(element) > 1:
                raise Fallback
            return [any(_equal(element[0], c) for c in collection)]

        return membership

    def _UnionExpression(self, n: Node) -> Fn:
        left, right = (self.node(c) for c in n["children"])
        return lambda data, env: _distinct(left(data, env) + right(data, env))

    def _AdditiveExpression(self, n: Node) -> Fn:
        op = n["terminalNodeText"][0]
        left, right = (self.node(c) for c in n["children"])
        if op == "&":
            def concatenate(data: Items, env: Env) -> Items:
                return ["".join(_string(s) or "" for s in (left(data, env), right(data, env)))]
            return concatenate
        return self._arithmetic(op, left, right)

    def _MultiplicativeExpression(self, n: Node) -> Fn:
        left, right = (self.node(c) for c in n["children"])
        return self._arithmetic(n["terminalNodeText"][0], left, right)

    @staticmethod
    def _arithmetic(op: str, left: Fn, right: Fn) -> Fn:
        compute = _ARITHMETIC.get(op)
        if compute is None:
            raise NotCompiled(op)  # `/` gives decimals whose precision rules are fhirpathpy's
        fixed = _constant(right)

        def arithmetic(data: Items, env: Env) -> Items:
            a = left(data, env)
            b = fixed if fixed is not None else right(data, env)
            if not a or not b:
                return []
            if len(a) > 1 or len(b) > 1:
                raise Fallback  # a collection where one value is expected: fhirpathpy's error
            x, y = a[0], b[0]
            if type(x) is int and type(y) is int:
                return compute(x, y)
            if op == "+" and isinstance(x, str) and isinstance(y, str):
                return [x + y]
            raise Fallback  # integers only: decimal arithmetic keeps fhirpathpy's precision rules

        return arithmetic

    def _AndExpression(self, n: Node) -> Fn:
        left, right = (self.node(c) for c in n["children"])
        return _connective(left, right, False, False, False)

    def _OrExpression(self, n: Node) -> Fn:
        left, right = (self.node(c) for c in n["children"])
        if n["terminalNodeText"][0] == "or":
            return _connective(left, right, True, True, True)

        def xor(data: Items, env: Env) -> Items:
            a, b = _boolean(left(data, env)), _boolean(right(data, env))
            return [] if a is None or b is None else [a != b]
        return xor

    def _ImpliesExpression(self, n: Node) -> Fn:
        left, right = (self.node(c) for c in n["children"])
        return _connective(left, right, False, True, True)

    def _TypeExpression(self, n: Node) -> Fn:
        operand = self.node(n["children"][0])
        type_name = n["children"][1]["text"]
        op = n["terminalNodeText"][0]
        return self.typed(operand, type_name, "is" if op == "is" else "as")

    # types

    def typed(self, operand: Fn, type_name: str, how: str) -> Fn:
        """`is`, `as` and `ofType` where raw JSON tells the type: resources by `resourceType`, and a choice
        element's value by its JSON name (`value.ofType(Quantity)` is `valueQuantity`)."""
        steps: _Steps | None = getattr(operand, "steps", None)
        select: Fn
        if is_resource_type(type_name):
            def of_type(data: Items, env: Env) -> Items:
                return [i for i in operand(data, env) if isinstance(i, dict) and _derives(i, type_name)]
            select = of_type
        elif steps is not None and steps[0][-1] in _CHOICES:
            names, base = steps
            suffix = type_name[:1].upper() + type_name[1:]
            if suffix not in _CHOICES[names[-1]]:
                raise NotCompiled(f"{names[-1]} is never a {type_name}")
            select = _path((*names[:-1], names[-1] + suffix), base)  # `value.ofType(Quantity)`: `valueQuantity`
        else:
            raise NotCompiled(f"{how} {type_name} on a value raw JSON does not type")
        if how == "ofType":
            return select
        if how == "as":
            def as_(data: Items, env: Env) -> Items:
                if len(operand(data, env)) > 1:
                    raise Fallback
                return select(data, env)
            return as_

        def is_(data: Items, env: Env) -> Items:
            items = operand(data, env)
            if not items:
                return []
            if len(items) > 1:
                raise Fallback
            return [bool(select(data, env))]
        return is_

    # functions

    def function(self, base: Fn, functn: Node, on_focus: bool) -> Fn:
        """`on_focus`: the function applies to the focus itself, so its parameters (criteria run per item of
        its input, the others on its input) read the focus: `iif(a.exists(), …)`, `exists(a)`."""
        name = _identifier(functn["children"][0])
        params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
        if name in ("ofType", "is", "as"):
            if len(params) != 1:
                raise NotCompiled(name)
            return self.typed(base, params[0]["text"], name)
        compiled = [self.node(p) if on_focus else self.inner(p) for p in params]
        make = _FUNCTIONS.get((name, len(compiled)))
        if make is None:
            raise NotCompiled(f"{name}() with {len(compiled)} parameters")
        return make(base, *compiled)


_COMPOUND = frozenset({"InvocationExpression", "IndexerExpression", "EqualityExpression", "InequalityExpression",
                       "MembershipExpression", "UnionExpression", "AdditiveExpression", "MultiplicativeExpression",
                       "AndExpression", "OrExpression", "ImpliesExpression", "TypeExpression"})
_DATA_LEAVES = frozenset({"MemberInvocation", "FunctionInvocation", "ThisInvocation", "IndexInvocation",
                          "TotalInvocation"})
_ON_OUTER_DATA = frozenset({"combine", "intersect", "exclude", "union"})  # parameters read the outer input


def _reads_data(n: Node) -> bool:
    """Whether a node's value depends on its input or `$this` (else only on constants and `%` variables)."""
    kind = n.get("type")
    if kind in _DATA_LEAVES:
        return True
    if kind == "InvocationExpression":
        left, right = n["children"]
        if _reads_data(left):
            return True
        functn = right["children"][0] if right.get("type") == "FunctionInvocation" else None
        if functn is not None and _identifier(functn["children"][0]) in _ON_OUTER_DATA:
            return any(_reads_data(p) for p in functn["children"][1:])
        return False
    if kind == "TypeSpecifier":
        return False
    return any(_reads_data(c) for c in n.get("children", ()))


def _memoised(fn: Fn) -> Fn:
    key = id(fn)

    def memoised(data: Items, env: Env) -> Items:
        if env.memo is None:
            env.memo = {}
        found = env.memo.get(key)
        if found is None:
            found = env.memo[key] = fn(data, env)
        return found
    return memoised


def _derives(resource: dict[str, Any], type_name: str) -> bool:
    key = (resource.get("resourceType", ""), type_name)
    found = _DERIVED.get(key)
    if found is None:
        name = key[0]
        while name and name != type_name:
            name = _PARENT.get(name, "")
        found = _DERIVED[key] = bool(name)
    return found


_DERIVED: dict[tuple[str, str], bool] = {}  # (resource type, type name) → whether the first is the second


def _operands(left: Fn, right: Fn, data: Items, env: Env) -> tuple[Any, Any] | None:
    """The single values of a binary operator's sides; None when a side is empty (the result is empty)."""
    a, b = left(data, env), right(data, env)
    if not a or not b:
        return None
    if len(a) > 1 or len(b) > 1:
        raise Fallback  # a collection where one value is expected: fhirpathpy's error
    return a[0], b[0]


def _connective(left: Fn, right: Fn, left_decides: bool, right_decides: bool, decided: bool) -> Fn:
    """`and`, `or`, `implies` in FHIRPath's three-valued logic: `decided` as soon as a side has the value that
    decides (the right side is then not evaluated when the left decides); otherwise empty when a side is
    empty, else the other outcome."""
    def connective(data: Items, env: Env) -> Items:
        a = _boolean(left(data, env))
        if a is left_decides:
            return [decided]
        b = _boolean(right(data, env))
        if b is right_decides:
            return [decided]
        return [] if a is None or b is None else [not decided]
    return connective


# Integer arithmetic; `mod` and `div` truncate towards zero, and by zero give empty, as FHIRPath defines them.
_ARITHMETIC: dict[str, Callable[[int, int], Items]] = {
    "+": lambda x, y: [x + y], "-": lambda x, y: [x - y], "*": lambda x, y: [x * y],
    "mod": lambda x, y: [x - y * _truncated(x, y)] if y else [],
    "div": lambda x, y: [_truncated(x, y)] if y else [],
}


def _truncated(x: int, y: int) -> int:
    quotient = abs(x) // abs(y)
    return quotient if (x < 0) == (y < 0) else -quotient


def _then(left: Fn, right: Fn) -> Fn:
    return lambda data, env: right(left(data, env), env)


_Steps = tuple[tuple[str, ...], Fn | None]


def _path(names: tuple[str, ...], base: Fn | None = None) -> Fn:
    """Member steps `a.b.c` on the input, or on what `base` gives: one function for the whole path. It keeps
    its `steps`, so that a further step or a choice type (`value.ofType(Quantity)`) extends it."""
    fn: Fn
    pairs = tuple((name, "_" + name) for name in names)
    if base is None and len(names) == 1:
        (name, hidden), = pairs

        def fn(data: Items, env: Env) -> Items:
            return _member(data, name, hidden)
    elif base is None and len(names) == 2:
        (first, first_hidden), (second, second_hidden) = pairs

        def fn(data: Items, env: Env) -> Items:
            return _member(_member(data, first, first_hidden), second, second_hidden)
    else:
        def fn(data: Items, env: Env) -> Items:
            if base is not None:
                data = base(data, env)
            for name, hidden in pairs:
                data = _member(data, name, hidden)
            return data
    fn.steps = (names, base)  # type: ignore[attr-defined]
    return fn


def _literal(value: Items) -> Fn:
    def fn(data: Items, env: Env) -> Items:
        return value
    fn.constant = value  # type: ignore[attr-defined]
    return fn


def _constant(fn: Fn) -> Items | None:
    """A literal's value, known when compiling."""
    return getattr(fn, "constant", None)


def _per_item(items: Items, env: Env, criterion: Fn) -> list[Items]:
    """What `criterion` gives for each item, `$this` and `$index` set as FHIRPath defines them."""
    saved, saved_index = env.this, env.index
    out = []
    try:
        for i, item in enumerate(items):
            env.this = this = [item]
            env.index = i
            out.append(criterion(this, env))
    finally:
        env.this, env.index = saved, saved_index
    return out


def _with_this(base: Fn, param: Fn) -> Callable[[Items, Env], tuple[Items, Items]]:
    """The input of a function and a parameter evaluated on that input, as fhirpathpy evaluates parameters."""
    def both(data: Items, env: Env) -> tuple[Items, Items]:
        items = base(data, env)
        saved = env.this
        env.this = items
        try:
            return items, param(items, env)
        finally:
            env.this = saved
    return both


def _string_fn(base: Fn, param: Fn, op: Callable[[str, str], Any]) -> Fn:
    fixed = _constant(param)
    if fixed is not None:  # a literal argument, as nearly always: read once
        p = _string(fixed)

        def on_literal(data: Items, env: Env) -> Items:
            s = _string(base(data, env))
            return [] if s is None or p is None else [op(s, p)]
        return on_literal
    both = _with_this(base, param)

    def fn(data: Items, env: Env) -> Items:
        items, arg = both(data, env)
        s, p = _string(items), _string(arg)
        if s is None or p is None:
            return []
        return [op(s, p)]
    return fn


def _matches(base: Fn, param: Fn) -> Fn:
    cache: dict[str, re.Pattern[str]] = {}

    def search(s: str, regex: str) -> bool:
        pattern = cache.get(regex)
        if pattern is None:
            pattern = cache[regex] = re.compile(regex, re.DOTALL)
        return pattern.search(s) is not None
    return _string_fn(base, param, search)


def _substring(base: Fn, start: Fn, length: Fn | None = None) -> Fn:
    both = _with_this(base, lambda items, env: [start(items, env), length(items, env) if length else []])
    fixed = (_constant(start), _constant(length) if length else [])
    if None not in fixed:  # literal bounds, as in check-digit rules: `substring(3, 1)`
        def on_literals(data: Items, env: Env) -> Items:
            return _cut(_string(base(data, env)), *fixed)  # type: ignore[arg-type]
        return on_literals

    def fn(data: Items, env: Env) -> Items:
        items, (s_items, l_items) = both(data, env)
        return _cut(_string(items), s_items, l_items)
    return fn


def _cut(s: str | None, start: Items, length: Items) -> Items:
    if s is None or not start:
        return []
    i = start[0]
    if not isinstance(i, int) or i < 0 or i >= len(s):
        return []
    if not length:
        return [s[i:]]
    return [s[i:i + length[0]]]


def _to_integer(items: Items) -> Items:
    if not items:
        return []
    if len(items) > 1:
        raise Fallback
    v = items[0]
    if isinstance(v, bool):
        return [int(v)]
    if isinstance(v, int):
        return [v]
    if isinstance(v, str) and _INTEGER.fullmatch(v):
        return [int(v)]
    return []


def _iif(base: Fn, cond: Fn, yes: Fn, no: Fn | None = None) -> Fn:
    def fn(data: Items, env: Env) -> Items:
        items = base(data, env)
        saved = env.this
        env.this = items
        try:
            c = _boolean(cond(items, env))
            if c is True:
                return yes(items, env)
            return no(items, env) if no is not None else []
        finally:
            env.this = saved
    return fn


def _extension(base: Fn, url: Fn) -> Fn:
    fixed = _constant(url)
    known = _string(fixed) if fixed is not None else None

    def fn(data: Items, env: Env) -> Items:
        items = base(data, env)
        wanted = known if fixed is not None else _string(url(items, env))
        extensions = _member(items, "extension", "_extension")
        return [e for e in extensions if isinstance(e, dict) and e.get("url") == wanted]
    return fn


def _hook(base: Fn, param: Fn, name: str) -> Fn:
    def fn(data: Items, env: Env) -> Items:
        items = base(data, env)
        arg = _string(param(items, env))
        if arg is None:
            return []
        result: Items = getattr(env, name)(items, arg)
        return result
    return fn


def _unary(op: Callable[[Items, Env], Items]) -> Callable[[Fn], Fn]:
    def make(base: Fn) -> Fn:
        return lambda data, env: op(base(data, env), env)
    return make


def _raise(exc: Exception) -> Items:
    raise exc


def _has_value(items: Items) -> Items:
    return [len(items) == 1 and not isinstance(items[0], dict | list)]


def _not(items: Items) -> Items:
    value = _boolean(items)
    return [] if value is None else [not value]


def _where(base: Fn, crit: Fn) -> Fn:
    def where(data: Items, env: Env) -> Items:
        items = base(data, env)
        return [i for i, r in zip(items, _per_item(items, env, crit), strict=True) if _criterion(r)]
    return where


def _exists_where(base: Fn, crit: Fn) -> Fn:
    return lambda data, env: [any(_criterion(r) for r in _per_item(base(data, env), env, crit))]


def _all(base: Fn, crit: Fn) -> Fn:
    return lambda data, env: [all(_criterion(r) for r in _per_item(base(data, env), env, crit))]


def _select(base: Fn, proj: Fn) -> Fn:
    return lambda data, env: [v for r in _per_item(base(data, env), env, proj) for v in r]


def _trace(base: Fn, *params: Fn) -> Fn:
    return base


def _combine(base: Fn, other: Fn) -> Fn:
    return lambda data, env: base(data, env) + other(data, env)


def _set_op(keep: bool) -> Callable[[Fn, Fn], Fn]:
    def make(base: Fn, other: Fn) -> Fn:
        def fn(data: Items, env: Env) -> Items:
            theirs = other(data, env)
            return _distinct([i for i in base(data, env) if any(_equal(i, o) for o in theirs) == keep])
        return fn
    return make


_FUNCTIONS: dict[tuple[str, int], Callable[..., Fn]] = {
    # the commonest, one call each
    ("empty", 0): lambda base: lambda data, env: [not base(data, env)],
    ("exists", 0): lambda base: lambda data, env: [bool(base(data, env))],
    ("count", 0): lambda base: lambda data, env: [len(base(data, env))],
    ("exists", 1): _exists_where,
    ("not", 0): lambda base: lambda data, env: _not(base(data, env)),
    ("hasValue", 0): _unary(lambda items, env: _has_value(items)),
    ("type", 0): _unary(lambda items, env: env.type_of(items, env) if env.type_of else _raise(Fallback())),
    ("first", 0): _unary(lambda items, env: items[:1]),
    ("last", 0): _unary(lambda items, env: items[-1:]),
    ("tail", 0): _unary(lambda items, env: items[1:]),
    ("distinct", 0): _unary(lambda items, env: _distinct(items)),
    ("isDistinct", 0): _unary(lambda items, env: [len(_distinct(items)) == len(items)]),
    ("toInteger", 0): lambda base: lambda data, env: _to_integer(base(data, env)),
    ("length", 0): _unary(lambda items, env: [len(s)] if (s := _string(items)) is not None else []),
    ("resolve", 0): _unary(lambda items, env: env.resolve(items)),
    ("htmlChecks", 0): lambda base: _literal([True]),
    ("where", 1): _where,
    ("all", 1): _all,
    ("select", 1): _select,
    ("trace", 1): _trace,
    ("trace", 2): _trace,
    ("combine", 1): _combine,
    ("intersect", 1): _set_op(True),
    ("exclude", 1): _set_op(False),
    ("matches", 1): _matches,
    ("contains", 1): lambda base, p: _string_fn(base, p, lambda s, x: x in s),
    ("startsWith", 1): lambda base, p: _string_fn(base, p, str.startswith),
    ("endsWith", 1): lambda base, p: _string_fn(base, p, str.endswith),
    ("substring", 1): _substring,
    ("substring", 2): _substring,
    ("iif", 2): _iif,
    ("iif", 3): _iif,
    ("extension", 1): _extension,
    ("memberOf", 1): lambda base, p: _hook(base, p, "member_of"),
    ("conformsTo", 1): lambda base, p: _hook(base, p, "conforms_to"),
}
