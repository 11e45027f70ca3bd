"""fhirpathpy's parse trees of FHIRPath expressions: each expression parsed once, the trees kept between runs.

Why: fhirpathpy parses with ANTLR's Python runtime, about 5 ms an expression. A command that validates one input
compiles the hundred or so invariants its profiles carry: half a second of parsing before the first finding,
the same half second at every run. The trees are plain JSON (fhirpathpy's own form, which both the compiled
FHIRPath and fhirpathpy evaluate), so the command line keeps them in a file (`hub.conformance.parse_cache`)
and hands them over here at start. Pure: this module holds the trees; the edge reads and writes the file.
"""

from __future__ import annotations

import importlib.metadata
import threading
from typing import Any

from fhirpathpy.parser import parse

# The version of the parser the trees come from: trees of another version are not used.
PARSER = f"fhirpathpy {importlib.metadata.version('fhirpathpy')}"

_trees: dict[str, dict[str, Any]] = {}
_new: set[str] = set()
_lock = threading.Lock()


def tree(expression: str) -> dict[str, Any]:
    """The parse tree of an expression (raises what fhirpathpy's parser raises for one it cannot parse). The
    trees are shared: callers read them, never change them."""
    found = _trees.get(expression)
    if found is None:
        found = parse(expression)  # type: ignore[no-untyped-call]
        with _lock:
            _trees[expression] = found
            _new.add(expression)
    return found


def known(trees: dict[str, dict[str, Any]]) -> None:
    """Trees parsed before (by an earlier run of `PARSER`), taken as they are."""
    with _lock:
        for expression, found in trees.items():
            _trees.setdefault(expression, found)


def parsed_here() -> dict[str, dict[str, Any]]:
    """The trees parsed in this process, not handed over by `known`."""
    with _lock:
        return {e: _trees[e] for e in _new}
