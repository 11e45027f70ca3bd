"""MedCom's TestScripts run against the messages a system sends, reported as a FHIR R4 TestReport.

MedCom certifies a sending system with TestScripts run by its test tooling (Touchstone): the system sends its
messages to a test server, and the scripts' asserts check what it sent. The hub runs the same scripts on the
messages alone, so a tester (and the hub's own tests) can check a message the way MedCom will, offline, and
exchange the verdict as the TestReport that FHIR testing tools read. The scripts are data: MedCom's TestScript
packages in the standards store (`schemas/manifest.json`, kind `fhir-testscripts`), never copied into the hub.

What a script means here (written policy):

- **Messages take the fixtures' place.** MedCom's fixtures (`../Fixtures/…xml`) are placeholders for what the
  system under test sends. The messages are bound to the `sourceId`s of the script's sending operations
  (`create`, `update`, `updateCreate`, in setup and tests) in the order they occur, or by `sourceId` by name.
  An operation's `responseId` names the same message: the test server answers a create with what was created,
  and the hospital-notification scripts read their variables from it.
- **Only the message is judged.** Operations that only keep the test server's books (`read`, `delete`, searches)
  are reported `skip`. Asserts about the server's answers (`direction: response`, and those without a direction
  and without a `sourceId`, which by the TestScript default read the last response) are `skip` with that
  reason. An assert with a `sourceId` reads that message whatever its direction (MedCom's
  `send-reply-changetopic` compares two messages without naming a direction).
- **`%resource`** is the message the assert (or variable) reads. **`${name}`** is replaced, as text, by the
  variable's value: its FHIRPath `expression` evaluated on the message its `sourceId` names, when first used. A
  variable that is not defined, names no message, gives no value (and has no `defaultValue`) or gives several is
  an `error` on the asserts that use it; a variable nothing uses is never evaluated (MedCom's CareCommunication
  `searchParamIdentifier-*` variables name a `sourceId` that no operation has).
- **Asserts**: `resource` (the message's type), `validateProfileId` (the script's `profile` by id, validated with
  the hub's validator; any error fails, warnings do not), `expression` alone (FHIRPath's singleton rule: true or
  one non-boolean value passes; false or nothing fails), `expression` with `operator`/`value`, or with
  `compareToSourceId`/`compareToSourceExpression`. Compared values are the results' text (`true`, `2`, the
  string): `equals` passes when there is at least one value and every value equals it, `notEquals` when none
  does, `in`/`notIn` likewise against the comma-separated list, `contains`/`notContains` by substring, `empty`
  and `notEmpty` on the result's size. A multi-valued result meets `equals` when each value does: a hospital
  notification that revises two earlier ones has two `entity.role` values, both `revision`. What the hub cannot
  evaluate (XPath/JSONPath `path`, HTTP headers, `minimumId`) is an `error` that says so, never a pass.
- **`count() = 'N'` is read as `count() = N`.** MedCom writes `payload.count() = '2'`. FHIRPath (and fhirpathpy)
  never equals an integer to a string, so the assert could never pass; MedCom's scripts rely on the two
  comparing by their text, as HAPI's FHIRPath engine (under Touchstone) compares primitives. This one form (a
  `count()` compared with `=`/`!=` to a quoted integer) is read as the number, and the assert's message says
  so. Every other comparison is FHIRPath's.
- **Anything that cannot be evaluated is an `error` with the reason** (a FHIRPath syntax or run-time error, a
  missing message, a profile id the script does not list), never an exception out of `run`.
- **Profiles**: the message is validated against the script's profile as the package carrying that profile sees
  its dependencies: `…-careCommunication-message|5.0.1` as carecommunication 5.0.1 does; an unversioned canonical
  (the HospitalNotification scripts') as the newest version loaded, the one MedCom's test tooling validates
  against today. (Resolved as the HospitalNotification 3.0.1 the script package pins, no message passes, not
  even that version's own examples: 3.0.1 pins messaging 2.0.0, whose destinationUse pattern names the old
  `/fhir/dk-medcom-terminology/` code system.)
- **Result**: `fail` when any action failed or could not be evaluated (`error`); `pending` when no assert could be
  evaluated at all; else `pass`. `warningOnly` asserts that fail are `warning` and do not fail the report. The
  score is the percentage of evaluated asserts that passed.

Known defects of MedCom's material (the finding stands; `tests/conformance/test_testscript.py` records them):

- Variables the scripts use but do not define, so that assert is an `error` for every message:
  `carecommunication-send-forward-changetopic` (`${hospitalSOR-new-message}`, `${identifier-new-message-01}`),
  `…-forward-partialthread` (`${hospitalSOR-new-message}`; it defines `hospitalSOR-new-message-01`) and
  `…-reply-forward` (`${messageHeaderid-new-message-01}`; its first message is `forward-message-01`).
- `hospitalnotification-PF-send-tec-04` asserts `….period.end.(substring(19,3) = '…').exists().not`, which is not
  FHIRPath (a `.` before `(`, `not` without `()`): an `error`. fhirpathpy alone would have stopped reading at the
  `(` and passed any message with an end time; the hub checks the whole text against fhirpathpy's grammar first.
- The HospitalNotification 3.0.2 IG examples have absolute fullUrls but refer to their MessageHeader relatively
  (`Provenance.target` is `MessageHeader/<id>`); the send scripts compare `target.reference` and, from the second
  message on, `entity.what.reference` with the fullUrl as strings, so these examples fail those asserts. The
  Bundles MedCom publishes in the TestScript package itself (relative fullUrls, as in 3.0.1) pass.
- CareCommunication send examples: `S-Tek-C` replies to `S-A`'s MessageHeader but carries another
  `Communication.identifier` than `S-A`, which the reply scripts require to be kept; `S-Tek-A`/`S-Tek-B` write
  their episode-of-care UUID as `urn:uuid:…`, which `send-tec-05`'s anchored pattern refuses.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from hub.core import standards
from hub.fhir import io
from hub.fhir.validator import Validator

SENDING = ("create", "update", "updateCreate")  # operations whose request carries a fixture
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_QUOTED_COUNT = re.compile(r"count\(\)\s*(=|!=)\s*'(\d+)'")
_NOT_EVALUATED = ("path", "compareToSourcePath", "headerField", "minimumId", "navigationLinks", "requestMethod",
                  "requestURL", "contentType", "response", "responseCode")
_COMPARING = ("equals", "notEquals", "in", "notIn", "greaterThan", "lessThan", "contains", "notContains")


class ScriptNotFound(LookupError):
    """No TestScript with that id, url or name in the store (or the file is not one)."""


class EvaluationError(Exception):
    """An assert or variable the hub cannot evaluate; the reason becomes the action's `error` message."""


@dataclass(frozen=True, slots=True)
class TestScript:
    """A TestScript resource, and the package it came from."""

    __test__ = False  # not a pytest test class

    resource: dict[str, Any]
    package: str | None = None  # name#version of the package it came from; None for a file

    @property
    def id(self) -> str:
        return str(self.resource.get("id") or self.resource.get("name") or "TestScript")

    @property
    def sends(self) -> list[str]:
        """The `sourceId`s of the sending operations, in the order the script sends them (each once)."""
        out: list[str] = []
        for action in _all_actions(self.resource):
            op = action.get("operation")
            if isinstance(op, dict) and _code(op) in SENDING and op.get("sourceId") and op["sourceId"] not in out:
                out.append(op["sourceId"])
        return out


def _code(op: dict[str, Any]) -> str:
    return str((op.get("type") or {}).get("code") or "")


def _all_actions(script: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (script.get("setup") or {}).get("action") or []
    for test in script.get("test") or []:
        yield from test.get("action") or []
    yield from (script.get("teardown") or {}).get("action") or []


# --- finding a script ---------------------------------------------------------------------------------------------


def scripts(store: Path) -> Iterator[TestScript]:
    """Every TestScript of the TestScript packages in the store."""
    for folder in standards.package_dirs(store, "fhir-testscripts"):
        package = _package_of(folder)
        for path in sorted((folder / "example").glob("TestScript-*.json")):
            yield TestScript(json.loads(path.read_text(encoding="utf-8")), package)


def _package_of(folder: Path) -> str:
    meta = json.loads((folder / "package.json").read_text(encoding="utf-8"))
    return f"{meta['name']}#{meta['version']}"


def load(ref: str | Path, store: Path | None = None) -> TestScript:
    """A TestScript by file path (FHIR JSON or XML), or from the store by id, canonical url or (unique) name."""
    path = Path(ref)
    if path.is_file():
        try:
            resource = io.parse(path.read_bytes(), None)
        except Exception as exc:
            raise ScriptNotFound(f"{path} is not a FHIR resource: {exc}") from None
        if resource.get("resourceType") != "TestScript":
            raise ScriptNotFound(f"{path} is a {resource.get('resourceType')}, not a TestScript")
        return TestScript(resource)
    if store is None:
        raise ScriptNotFound(f"{ref} is not a file, and no standards store was given")
    name = str(ref)
    for folder in standards.package_dirs(store, "fhir-testscripts"):
        direct = folder / "example" / f"TestScript-{name}.json"  # the IG Publisher's file name for an id
        if direct.is_file():
            return TestScript(json.loads(direct.read_text(encoding="utf-8")), _package_of(folder))
    found = [s for s in scripts(store) if name in (s.resource.get("id"), s.resource.get("url"))]
    found = found or [s for s in scripts(store) if s.resource.get("name") == name]
    if len(found) == 1:
        return found[0]
    if found:
        raise ScriptNotFound(f"{len(found)} TestScripts are named {name}; give the id ({found[0].id}, …)")
    raise ScriptNotFound(f"no TestScript {name} in the store (ids like carecommunication-send-new-message)")


def bind(script: TestScript, messages: Mapping[str, dict[str, Any]] | Sequence[dict[str, Any]]
         ) -> dict[str, dict[str, Any]]:
    """The messages by the `sourceId` they stand for: a list in the order the script sends, or a mapping.
    Raises ValueError when a list has another length, or a mapping names a `sourceId` the script never sends."""
    sends = script.sends
    if isinstance(messages, Mapping):
        unknown = sorted(set(messages) - set(sends))
        if unknown:
            raise ValueError(f"{script.id} sends no fixture {', '.join(unknown)} (it sends {', '.join(sends)})")
        return dict(messages)
    if len(messages) != len(sends):
        raise ValueError(f"{script.id} sends {len(sends)} message(s) ({', '.join(sends)}); {len(messages)} given")
    return dict(zip(sends, messages, strict=True))


# --- running ------------------------------------------------------------------------------------------------------


def run(script: TestScript, messages: Mapping[str, dict[str, Any]] | Sequence[dict[str, Any]],
        validator: Validator, issued: datetime | None = None) -> dict[str, Any]:
    """Run the script on the messages the system sent; the FHIR R4 TestReport (policy in the module docstring)."""
    return _Run(script, bind(script, messages), validator).report(issued or datetime.now(UTC))


class _Run:
    def __init__(self, script: TestScript, messages: dict[str, dict[str, Any]], validator: Validator) -> None:
        self.script = script
        self.doc = script.resource
        self.messages = messages
        self.validator = validator
        self.alias: dict[str, str] = {}
        for action in _all_actions(self.doc):
            op = action.get("operation")
            if isinstance(op, dict) and _code(op) in SENDING and op.get("responseId") and op.get("sourceId"):
                self.alias[op["responseId"]] = op["sourceId"]
        self.variables = {v.get("name"): v for v in self.doc.get("variable") or [] if isinstance(v, dict)}
        self.values: dict[str, str | EvaluationError] = {}
        self.resolving: set[str] = set()
        self.profiles = {p.get("id"): p.get("reference") for p in self.doc.get("profile") or [] if isinstance(p, dict)}
        self.last: dict[str, Any] | None = None  # the request of the last operation

    def report(self, issued: datetime) -> dict[str, Any]:
        name = str(self.doc.get("title") or self.doc.get("name") or self.script.id).strip()
        out: dict[str, Any] = {"resourceType": "TestReport", "name": name, "status": "completed"}
        url = self.doc.get("url")
        out["testScript"] = {"reference": url or f"TestScript/{self.script.id}",
                             "display": " ".join(filter(None, [self.script.id, self.doc.get("version")]))}
        sections: dict[str, Any] = {}
        setup = self._actions((self.doc.get("setup") or {}).get("action") or [])
        if setup:
            sections["setup"] = {"action": setup}
        tests = []
        for test in self.doc.get("test") or []:
            actions = self._actions(test.get("action") or [])
            if actions:
                tests.append({k: v for k, v in (("name", test.get("name")), ("description", test.get("description")),
                                                ("action", actions)) if v})
        if tests:
            sections["test"] = tests
        teardown = self._actions((self.doc.get("teardown") or {}).get("action") or [])
        if teardown:
            sections["teardown"] = {"action": teardown}
        done = [(kind, part["result"]) for a in _report_actions(sections) for kind, part in a.items()]
        judged = [result for kind, result in done if kind == "assert" and result != "skip"]
        failed = any(result in ("fail", "error") for _, result in done)
        out["result"] = "fail" if failed else "pending" if not judged else "pass"
        if judged:
            out["score"] = round(100 * judged.count("pass") / len(judged), 2)
        out["tester"] = "hub testscript"
        out["issued"] = issued.isoformat(timespec="seconds")
        out.update(sections)
        return out

    def _actions(self, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for action in actions:
            if isinstance(action.get("operation"), dict):
                result, message = self._operation(action["operation"])
                out.append({"operation": {"result": result, "message": message}})
            elif isinstance(action.get("assert"), dict):
                result, message = self._assert(action["assert"])
                out.append({"assert": {"result": result, "message": message}})
        return out

    # --- operations -----------------------------------------------------------------------------------------------

    def _operation(self, op: dict[str, Any]) -> tuple[str, str]:
        code = _code(op)
        what = str(op.get("description") or code).strip().rstrip(".")
        if code not in SENDING:
            self.last = None
            return "skip", f"{what}: a {code} keeps the test server's books, nothing the system sends; skipped"
        source = op.get("sourceId")
        message = self.messages.get(source) if source else None
        self.last = message
        if message is None:
            return "error", f"{what}: no message was given for fixture {source}"
        return "pass", f"{what}: the message for fixture {source} (Bundle {message.get('id', 'without id')})"

    # --- asserts --------------------------------------------------------------------------------------------------

    def _assert(self, a: dict[str, Any]) -> tuple[str, str]:
        what = str(a.get("description") or a.get("label") or "assert").strip().rstrip(".")
        direction = a.get("direction")
        if direction == "response" or (direction is None and not a.get("sourceId")):
            about = ", ".join(k for k in ("responseCode", "response", "headerField", "expression", "resource")
                              if k in a) or "the response"
            return "skip", f"{what}: about the test server's response ({about}), not the message; skipped"
        try:
            ok, reason = self._check(a)
        except EvaluationError as exc:
            return "error", f"{what}: {exc}"
        if ok:
            return "pass", f"{what}{f' ({reason})' if reason else ''}"
        return ("warning" if a.get("warningOnly") else "fail"), f"{what}: {reason}"

    def _check(self, a: dict[str, Any]) -> tuple[bool, str]:
        unsupported = [k for k in _NOT_EVALUATED if k in a]
        if unsupported:
            raise EvaluationError(f"{', '.join(unsupported)} is not evaluated by the hub, which checks messages "
                                  "(FHIRPath expressions, profiles, resource types), not HTTP exchanges")
        source_id = a.get("sourceId")
        source = self._source(str(source_id)) if source_id else self.last
        if source is None:
            raise EvaluationError(f"no message to assert on ({source_id or 'the last operation sent none'})")
        checked = False
        notes: list[str] = []
        if "resource" in a:
            checked = True
            if source.get("resourceType") != a["resource"]:
                return False, f"the message is a {source.get('resourceType')}, not a {a['resource']}"
        if "validateProfileId" in a:
            checked = True
            ok, reason = self._profile(a["validateProfileId"], source)
            if not ok:
                return False, reason
        if "expression" in a:
            checked = True
            ok, reason = self._expression(a, source)
            if not ok:
                return False, reason
            notes.append(reason)
        if not checked:
            raise EvaluationError("the assert names nothing the hub can check")
        return True, "; ".join(n for n in notes if n)

    def _source(self, source_id: str) -> dict[str, Any] | None:
        return self.messages.get(self.alias.get(source_id, source_id))

    def _profile(self, profile_id: str, message: dict[str, Any]) -> tuple[bool, str]:
        canonical = self.profiles.get(profile_id)
        if not canonical:
            raise EvaluationError(f"the script lists no profile with id {profile_id}")
        context = self._context(canonical)
        errors = [i for i in self.validator.validate(message, [canonical], context=context).issues
                  if i.severity in ("fatal", "error")]
        if not errors:
            return True, ""
        shown = "; ".join(f"{i.diagnostics}" + (f" @ {i.expression}" if i.expression else "") for i in errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return False, f"{len(errors)} error(s) against {canonical}: {shown}{more}"

    def _context(self, canonical: str) -> str | None:
        """The package that carries the profile (at its `|version`, else the newest loaded): the message is
        validated as that package sees its dependencies."""
        found = self.validator.packages.locate(canonical, "StructureDefinition")
        return found[1] if found is not None else None

    def _expression(self, a: dict[str, Any], source: dict[str, Any]) -> tuple[bool, str]:
        expression, note = _touchstone_reading(self._substitute(a["expression"]))
        result = self._evaluate(expression, source)
        operator = a.get("operator")
        if "compareToSourceId" in a or "compareToSourceExpression" in a:
            other = self._source(a.get("compareToSourceId") or "")
            if other is None:
                raise EvaluationError(f"compareToSourceId {a.get('compareToSourceId')} names no message")
            if not a.get("compareToSourceExpression"):
                raise EvaluationError("compareToSourceId without compareToSourceExpression")
            against = self._evaluate(self._substitute(a["compareToSourceExpression"]), other)
            return _compare_results(result, operator or "equals", against)
        if operator == "empty":
            return not result, "" if not result else f"expected nothing, got {_shown(result)}"
        if operator == "notEmpty":
            return bool(result), "" if result else "expected a value, got nothing"
        if "value" in a or operator in _COMPARING:
            ok, reason = _compare(result, operator or "equals", self._substitute(str(a.get("value", ""))))
            return ok, reason if not ok else note
        if operator not in (None, "eval"):
            raise EvaluationError(f"operator {operator} needs a value")
        if len(result) > 1:
            raise EvaluationError(f"the expression gives {len(result)} values where one boolean is expected")
        if result == [False]:
            return False, f"{expression} is false" + (f" ({note})" if note else "")
        if not result:
            return False, f"{expression} gives nothing (an empty result)" + (f" ({note})" if note else "")
        return True, note

    def _evaluate(self, expression: str, message: dict[str, Any]) -> list[Any]:
        wrong = _syntax_error(expression)
        if wrong is not None:
            raise EvaluationError(f"FHIRPath {expression!r} cannot be evaluated: {wrong}")
        try:
            return self.validator.invariants.evaluate(expression, message, message, message)
        except Exception as exc:  # fhirpathpy raises plain Exceptions for syntax and run-time errors alike
            raise EvaluationError(f"FHIRPath {expression!r} cannot be evaluated: {exc or type(exc).__name__}"
                                  ) from None

    # --- variables ------------------------------------------------------------------------------------------------

    def _substitute(self, text: str) -> str:
        return _VARIABLE.sub(lambda m: self._variable(m.group(1)), text)

    def _variable(self, name: str) -> str:
        found = self.values.get(name)
        if found is None:
            try:
                found = self._evaluate_variable(name)
            except EvaluationError as exc:
                found = exc
            self.values[name] = found
        if isinstance(found, EvaluationError):
            raise found
        return found

    def _evaluate_variable(self, name: str) -> str:
        spec = self.variables.get(name)
        if spec is None:
            raise EvaluationError(f"variable {name} is not defined by the script")
        if name in self.resolving:
            raise EvaluationError(f"variable {name} refers to itself")
        if not spec.get("expression"):
            if "defaultValue" in spec:
                return str(spec["defaultValue"])
            raise EvaluationError(f"variable {name} has no FHIRPath expression (the hub does not evaluate "
                                  "headerField or path)")
        source_id = spec.get("sourceId")
        message = self._source(source_id) if source_id else None
        if message is None:
            raise EvaluationError(f"variable {name} reads {source_id or 'no sourceId'}, which names no message "
                                  "the script sends")
        self.resolving.add(name)
        try:
            result = self._evaluate(self._substitute(spec["expression"]), message)
        finally:
            self.resolving.discard(name)
        if len(result) > 1:
            raise EvaluationError(f"variable {name} gives {len(result)} values on {source_id}: {_shown(result)}")
        if not result:
            if "defaultValue" in spec:
                return str(spec["defaultValue"])
            raise EvaluationError(f"variable {name} gives no value on {source_id}")
        return _text(result[0])


class _BadSyntax(Exception):
    pass


class _Refuse(ErrorListener):  # type: ignore[misc]
    def syntaxError(self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any) -> None:
        raise _BadSyntax(f"column {column + 1}: {msg}")


@functools.lru_cache(maxsize=4096)
def _syntax_error(expression: str) -> str | None:
    """What is wrong with the expression's syntax, by fhirpathpy's own grammar, to the end of the text. fhirpathpy
    itself recovers from syntax errors silently and stops at the first token it cannot use, so that
    `where(code = 'x'` (no closing parenthesis) would be evaluated as if it were whole."""
    refuse = _Refuse()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(refuse)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(refuse)
    try:
        parser.entireExpression()  # type: ignore[no-untyped-call]
    except _BadSyntax as exc:
        return str(exc)
    return None


def _report_actions(sections: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (sections.get("setup") or {}).get("action", [])
    for test in sections.get("test") or []:
        yield from test["action"]
    yield from (sections.get("teardown") or {}).get("action", [])


def _touchstone_reading(expression: str) -> tuple[str, str]:
    """`count() = 'N'` read as `count() = N` (module docstring), and the note that says so."""
    read = _QUOTED_COUNT.sub(lambda m: f"count() {m.group(1)} {m.group(2)}", expression)
    if read == expression:
        return expression, ""
    return read, "a count compared with a quoted number is read as the number, as MedCom's scripts mean it"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _shown(values: list[Any]) -> str:
    texts = [_text(v) for v in values]
    if not texts:
        return "nothing"
    return repr(texts[0]) if len(texts) == 1 else "[" + ", ".join(repr(t) for t in texts) + "]"


def _compare(result: list[Any], operator: str, value: str) -> tuple[bool, str]:
    texts = [_text(v) for v in result]
    got = _shown(result)
    listed = [v.strip() for v in value.split(",")]
    if operator == "equals":
        return bool(texts) and all(t == value for t in texts), f"expected {value!r}, got {got}"
    if operator == "notEquals":
        return all(t != value for t in texts), f"expected anything but {value!r}, got {got}"
    if operator == "in":
        return bool(texts) and all(t in listed for t in texts), f"expected one of {listed}, got {got}"
    if operator == "notIn":
        return not any(t in listed for t in texts), f"expected none of {listed}, got {got}"
    if operator == "contains":
        return any(value in t for t in texts), f"expected a value containing {value!r}, got {got}"
    if operator == "notContains":
        return not any(value in t for t in texts), f"expected no value containing {value!r}, got {got}"
    if operator in ("greaterThan", "lessThan"):
        if len(texts) != 1:
            raise EvaluationError(f"{operator} needs one value, the expression gives {got}")
        try:
            left, right = Decimal(texts[0]), Decimal(value)
        except ArithmeticError:
            raise EvaluationError(f"{operator} compares numbers; got {got} and {value!r}") from None
        ok = left > right if operator == "greaterThan" else left < right
        return ok, f"expected {'more' if operator == 'greaterThan' else 'less'} than {value}, got {got}"
    raise EvaluationError(f"operator {operator} is not one the hub evaluates")


def _compare_results(left: list[Any], operator: str, right: list[Any]) -> tuple[bool, str]:
    lt, rt = [_text(v) for v in left], [_text(v) for v in right]
    got = f"got {_shown(left)} against {_shown(right)}"
    if operator == "equals":
        return bool(lt) and lt == rt, f"expected the same values, {got}"
    if operator == "notEquals":
        return lt != rt, f"expected different values, {got}"
    if operator == "in":
        return bool(lt) and all(t in rt for t in lt), f"expected values among the other's, {got}"
    if operator == "notIn":
        return not any(t in rt for t in lt), f"expected no value among the other's, {got}"
    raise EvaluationError(f"operator {operator} is not evaluated between two messages")


def summary(report: dict[str, Any]) -> str:
    """One line: the script, the result, and the actions by result."""
    counts: dict[str, int] = {}
    for action in _report_actions(report):
        for part in action.values():
            counts[part["result"]] = counts.get(part["result"], 0) + 1
    shown = ", ".join(f"{counts[k]} {k}" for k in ("pass", "fail", "warning", "error", "skip") if k in counts)
    score = f", score {report['score']:g}%" if "score" in report else ""
    return f"{report['testScript'].get('display', '')}: {report['result']} ({shown}{score})"
