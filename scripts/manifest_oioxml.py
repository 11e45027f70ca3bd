"""Add MedCom's OIOXML schema files (every .xsd under medcom/xml/schemas) to schemas/manifest.json.

Run once when the standards directory gains or changes schema files:
`.venv/bin/python scripts/manifest_oioxml.py [../shared/standards]`. Entries are replaced, not duplicated.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "https://github.com/glasdam/edifact_converter (commit cf9d20e052f3fdda36850b5825f193d9417aada7) data/xml/Schemas/"


def main() -> None:
    standards = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".." / "shared" / "standards")
    manifest_path = ROOT / "schemas" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    kept = [s for s in manifest["standards"] if s["kind"] != "xml-schema"]
    base = standards / "medcom" / "xml" / "schemas"
    added = []
    for path in sorted(base.rglob("*.xsd")):
        rel = path.relative_to(base).as_posix()
        version = "-".join(rel.split("/")[:3])
        added.append({"id": f"medcom.oioxml/{rel}", "version": version, "kind": "xml-schema",
                      "path": f"medcom/xml/schemas/{rel}", "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                      "origin": ORIGIN + rel})
    manifest["standards"] = kept + added
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(added)} schema files in the manifest")


if __name__ == "__main__":
    main()
