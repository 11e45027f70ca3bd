"""Reports of a conformance run: text for people, JSON for programs, JUnit XML for CI systems."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from lxml import etree

from hub.conformance.files import FileResult


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
            bad = [i for i in r.outcome.issues if i.severity in ("fatal", "error", "warning")]
            failure = etree.SubElement(case, "failure", message=bad[0].diagnostics if bad else "invalid")
            failure.text = "\n".join(f"{i.severity}: {i.diagnostics} @ {i.expression or '-'} [{i.rule or '-'}]"
                                     for i in r.outcome.issues)
    return bytes(etree.tostring(suite, pretty_print=True, xml_declaration=True, encoding="UTF-8")).decode()


FORMATS = {"text": text, "json": json, "junit": junit}
