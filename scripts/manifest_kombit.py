"""Add KOMBIT's files the case-index work loads to schemas/manifest.json: the SF1470 v6 contract (WSDL, XSDs,
OIOIDWS policy; the Java sample's copy, SOAP 1.1), the STS WSDL, and the KLE data with its schemas.

Each entry's origin is the repository and path `kombit/SOURCES.md` gives for it. Run once when the standards
directory gains or changes these files: `.venv/bin/python scripts/manifest_kombit.py [../shared/standards]`.
Entries are replaced, not duplicated.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WANTED = ("SF1470-SagDokumentIndeks/wsdl/SagDokumentIndeksService_6.wsdl", "SF1470-SagDokumentIndeks/wsdl/xsd/",
          "STS-AdgangsstyringSystemer/", "KLE/")
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+?) \| `([^`]+)` \|")


def main() -> None:
    standards = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / ".." / "shared" / "standards")
    base = standards / "kombit"
    origins = {m.group(1): f"https://github.com/{m.group(2).strip()} {m.group(3)}"
               for line in (base / "SOURCES.md").read_text(encoding="utf-8").splitlines()
               if (m := ROW.match(line))}
    manifest_path = ROOT / "schemas" / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    kept = [s for s in manifest["standards"] if s["kind"] != "kombit"]
    added = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(base).as_posix()
        if not any(rel == w or (w.endswith("/") and rel.startswith(w)) for w in WANTED):
            continue
        origin = origins.get(rel, "derived, see kombit/SOURCES.md")
        added.append({"id": f"kombit/{rel}", "version": "sf1470-v6" if rel.startswith("SF1470") else "2026",
                      "kind": "kombit", "path": f"kombit/{rel}",
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "origin": origin})
    manifest["standards"] = kept + added
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(added)} KOMBIT files in the manifest")


if __name__ == "__main__":
    main()
