"""The file that keeps FHIRPath parse trees between runs of `hub validate` (`hub.fhir.fhirpath_trees` says why).

It is a cache in the hub's data folder: read at start if it is there and written by the same parser version,
ignored when it is not (missing, unreadable, of another fhirpathpy), and written back, atomically, when a run
parsed expressions it did not hold. Two runs writing at once lose at most each other's additions.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from hub.fhir import fhirpath_trees

log = logging.getLogger(__name__)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("parser") != fhirpath_trees.PARSER or not isinstance(
            doc.get("trees"), dict):
        return {}
    return doc["trees"]  # type: ignore[no-any-return]


def load(path: Path) -> None:
    """Hand the trees the file holds to `fhirpath_trees`."""
    fhirpath_trees.known(_read(path))


def save(path: Path) -> None:
    """Add the trees parsed in this run to the file; a file that cannot be written is left as it is."""
    new = fhirpath_trees.parsed_here()
    if not new:
        return
    trees = {**_read(path), **new}
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(orjson.dumps({"parser": fhirpath_trees.PARSER, "trees": trees}))
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("the FHIRPath parse cache %s was not written: %s", path, exc)
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
