"""Reports of `hub validate`: a JUnit failure is named by its first error, one HTML page for testers, and
`--output` writes any format to a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lxml.html
from lxml import etree

from hub.conformance.files import FileResult
from hub.conformance.report import html, junit
from hub.core.outcome import Outcome


def results() -> list[FileResult]:
    warned_first = Outcome()
    warned_first.add("warning", "invariant", "dom-6: a resource should have narrative", "Patient")
    warned_first.error("required", "Patient.name: minimum required = 1, found 0", "Patient.name", rule="Patient.name")
    warned = Outcome()
    warned.add("warning", "invariant", "dom-6: a resource should have narrative", "Patient")
    return [FileResult("bad.json", "fhir+json", warned_first), FileResult("warned.json", "fhir+json", warned),
            FileResult("good.json", "fhir+json", Outcome())]


def test_a_junit_failure_is_named_by_its_first_error_not_a_warning_before_it() -> None:
    suite = etree.fromstring(junit(results(), "error").encode())
    failures = {case.get("name"): case.find("failure") for case in suite.iter("testcase")}
    assert suite.get("failures") == "1" and failures["warned.json"] is None and failures["good.json"] is None
    assert failures["bad.json"].get("message") == "Patient.name: minimum required = 1, found 0"
    on_warnings = etree.fromstring(junit(results(), "warning").encode())
    named = {c.get("name"): c.find("failure") for c in on_warnings.iter("testcase")}
    assert named["warned.json"].get("message").startswith("dom-6")


def test_the_html_report_shows_every_file_verdict_and_issue_with_its_place() -> None:
    page = lxml.html.fromstring(html(results(), "error"))
    rows = [[cell.text_content().strip() for cell in row] for row in page.iter("tr")][1:]
    assert ["bad.json", "fhir+json", "FAIL", "", "", "", ""] in rows
    assert ["", "", "", "error", "Patient.name: minimum required = 1, found 0", "Patient.name", "Patient.name"] in rows
    assert ["good.json", "fhir+json", "PASS", "", "", "", ""] in rows
    assert "3 files, 2 passed, 1 failed" in page.text_content()


def test_output_writes_the_report_to_a_file(data_root: Path, tmp_path: Path) -> None:
    resource = tmp_path / "patient.json"
    resource.write_text(json.dumps({"resourceType": "Patient", "gender": "x"}))
    env = {**os.environ, "HUB_DATA_DIR": str(data_root)}
    for fmt, check in (("html", lambda t: "<table" in t), ("junit", lambda t: "<testsuite" in t),
                       ("json", lambda t: json.loads(t)[0]["valid"] is False)):
        out = tmp_path / f"report.{fmt}"
        run = subprocess.run([sys.executable, "-m", "hub", "validate", str(resource), "--format", fmt, "--output",
                              str(out)], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 1 and run.stdout == "" and "1 files, 0 passed, 1 failed" in run.stderr
        assert check(out.read_text(encoding="utf-8"))
