"""Reports of a conformance run: text for people, JSON for programs, JUnit XML for CI systems, and one HTML page
for testers (files, verdicts, and every issue with its place and rule)."""

from __future__ import annotations

from collections.abc import Sequence

import lxml.html
import orjson
from lxml import etree
from lxml.html.builder import E

from hub.conformance.files import FileResult
from hub.core.outcome import Issue


def text(results: Sequence[FileResult], fail_on: str) -> str:
    lines: list[str] = []
    for r in results:
        lines.append(f"{'PASS' if r.valid(fail_on) else 'FAIL'}  {r.file}  ({r.format})")
        for i in r.outcome.issues:
            where = f" @ {i.expression}" if i.expression else ""
            rule = f" [{i.rule}]" if i.rule else ""
            lines.append(f"      {i.severity:<11} {i.diagnostics}{where}{rule}")
    failed = sum(not r.valid(fail_on) for r in results)
    lines.append(f"{len(results)} files, {len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def json(results: Sequence[FileResult], fail_on: str) -> str:
    doc = [{"file": r.file, "valid": r.valid(fail_on), "outcome": r.outcome.to_fhir()} for r in results]
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()


def junit(results: Sequence[FileResult], fail_on: str) -> str:
    failed = sum(not r.valid(fail_on) for r in results)
    suite = etree.Element("testsuite", name="hub validate", tests=str(len(results)), failures=str(failed))
    for r in results:
        case = etree.SubElement(suite, "testcase", classname=r.format, name=r.file)
        if not r.valid(fail_on):
            first = _first_failing(r, fail_on)
            failure = etree.SubElement(case, "failure", message=first.diagnostics or first.code if first else "invalid")
            failure.text = "\n".join(f"{i.severity}: {i.diagnostics} @ {i.expression or '-'} [{i.rule or '-'}]"
                                     for i in r.outcome.issues)
    return bytes(etree.tostring(suite, pretty_print=True, xml_declaration=True, encoding="UTF-8")).decode()


def _first_failing(result: FileResult, fail_on: str) -> Issue | None:
    """The issue a failure is named by: the first error (fatal first), else, failing on warnings, the first
    warning."""
    for severities in (("fatal",), ("error",), ("warning",) if fail_on == "warning" else ()):
        found = next((i for i in result.outcome.issues if i.severity in severities), None)
        if found is not None:
            return found
    return None


_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;width:100%}td,th{border:1px solid "
          "#ccc;padding:4px 8px;text-align:left;vertical-align:top}.pass{color:#1a7f37}.fail{color:#cf222e}"
          ".error,.fatal{background:#ffebe9}.warning{background:#fff8c5}code{font-size:90%}")


def html(results: Sequence[FileResult], fail_on: str) -> str:
    """One page: a summary, then a row per file with its verdict and a row per issue under it."""
    failed = sum(not r.valid(fail_on) for r in results)
    page = E.html(E.head(E.meta(charset="utf-8"), E.title("hub validate"), E.style(_STYLE)))
    body = E.body(E.h1("hub validate"),
                  E.p(f"{len(results)} files, {len(results) - failed} passed, {failed} failed "
                      f"(failing on {fail_on})"))
    table = E.table(E.tr(E.th("file"), E.th("format"), E.th("verdict"), E.th("severity"), E.th("issue"),
                         E.th("where"), E.th("rule")))
    for r in results:
        ok = r.valid(fail_on)
        table.append(E.tr(E.td(E.code(r.file)), E.td(r.format), E.td("PASS" if ok else "FAIL",
                                                                      **{"class": "pass" if ok else "fail"}),
                          E.td(), E.td(), E.td(), E.td()))
        for i in r.outcome.issues:
            table.append(E.tr(E.td(), E.td(), E.td(), E.td(i.severity), E.td(i.diagnostics or i.code),
                              E.td(E.code(i.expression or "")), E.td(i.rule or ""), **{"class": i.severity}))
    body.append(table)
    page.append(body)
    return "<!DOCTYPE html>\n" + str(lxml.html.tostring(page, encoding="unicode", pretty_print=True))


FORMATS = {"text": text, "json": json, "junit": junit, "html": html}
