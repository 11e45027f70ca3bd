"""The validator's options: what a tester may switch, named after the HL7 Java validator's where it has them.

The defaults are the hub's: they match the Java validator's, except that a RESTful reference not in the input
(`Group/12345`) is taken to point at the type it names (`rest_types`, the Java validator's
`assumeValidRestReferences`), so that a booking naming a Group where a Patient belongs is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.core.outcome import Severity


@dataclass(frozen=True, slots=True)
class ValidationOptions:
    security_checks: bool = False  # HTML tags in a `string` are errors (`-security-checks`)
    html_in_markdown: Severity = "warning"  # what looks like an HTML tag in markdown (error: `noHtmlInMarkdown`)
    example_urls: bool = True  # URLs of the example domains are allowed (`-allow-example-urls`)
    rest_types: bool = True  # the type a RESTful reference names is checked (`assumeValidRestReferences`)
    resolve_references: bool = False  # a reference must resolve in the input (`validateReference` CHECK_EXISTS)
    # (rule, profile): Bundle entries validated against a profile too; a rule is `Type:index` (the index-th
    # entry of that type, from 0) or `Type:*` (`-bundle`)
    bundle_profiles: tuple[tuple[str, str], ...] = ()
    contained: bool = True  # contained resources are validated (`validateContains`: CHECK_VALID; False: IGNORE)
    display_warnings: bool = False  # a display the code system does not give is a warning, not an error
    # (`-display-issues-are-warnings`)
