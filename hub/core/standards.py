"""The hub's store of official standards: copied from a standards directory, checked against the manifest.

The project commits none of the official files. `schemas/manifest.json` names each file the hub needs with
its checksum and public origin; `sync` copies (or, with `fetch`, downloads) them into the store and unpacks
FHIR packages, so the rest of the hub reads one local, verified tree.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = Path(__file__).resolve().parents[2] / "schemas" / "manifest.json"

# Kinds unpacked as FHIR packages. Only `fhir-package` is loaded by the validator: MedCom's TestScript packages carry
# examples and fixtures (Bundles without canonicals) that are test material, not conformance resources.
PACKAGE_KINDS = ("fhir-package", "fhir-testscripts")


@dataclass(frozen=True, slots=True)
class Standard:
    """One official file the hub needs."""

    id: str
    version: str
    kind: str
    path: str
    sha256: str
    origin: str

    @property
    def package_dir_name(self) -> str:
        return f"{self.id}#{self.version}"


class SyncError(RuntimeError):
    """A standard is missing or does not match its checksum."""


def load_manifest(path: Path = MANIFEST) -> list[Standard]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return [Standard(**entry) for entry in doc["standards"]]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unpack_package(tgz: Path, target: Path) -> None:
    """Unpack a FHIR package tarball; members must stay inside `target` (no absolute or `..` paths)."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(tgz, "r:gz") as tar:
        tar.extractall(tmp, filter="data")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def sync(
    source_dir: Path,
    store: Path,
    standards: list[Standard] | None = None,
    fetch: Callable[[Standard, Path], None] | None = None,
    report: Callable[[str], None] = lambda _m: None,
) -> list[Standard]:
    """Bring the store up to date with the manifest; raises SyncError naming every file that failed."""
    standards = load_manifest() if standards is None else standards
    problems: list[str] = []
    for std in standards:
        src = source_dir / std.path
        dest = store / "files" / std.path
        if dest.exists() and _sha256(dest) == std.sha256 and _unpacked_ok(std, store):
            report(f"ok       {std.id} {std.version}")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.exists():
            shutil.copyfile(src, dest)
        elif fetch is not None:
            fetch(std, dest)
        else:
            problems.append(f"{std.id} {std.version}: {src} not found (origin: {std.origin})")
            continue
        digest = _sha256(dest)
        if digest != std.sha256:
            dest.unlink()
            problems.append(f"{std.id} {std.version}: sha256 {digest} does not match the manifest's {std.sha256}")
            continue
        if std.kind in PACKAGE_KINDS:
            _unpack_package(dest, store / "packages" / std.package_dir_name)
        report(f"synced   {std.id} {std.version}")
    if problems:
        raise SyncError("; ".join(problems))
    return standards


def _unpacked_ok(std: Standard, store: Path) -> bool:
    if std.kind not in PACKAGE_KINDS:
        return True
    return (store / "packages" / std.package_dir_name / "package" / "package.json").exists()


def file_path(store: Path, standard_id: str) -> Path:
    """Where a synced file lives in the store; raises SyncError when `hub schemas sync` has not been run."""
    for std in load_manifest():
        if std.id == standard_id:
            path = store / "files" / std.path
            if not path.exists():
                raise SyncError(f"{standard_id} is not in the store; run `hub schemas sync`")
            return path
    raise SyncError(f"{standard_id} is not in the manifest")


def package_dirs(store: Path, kind: str = "fhir-package") -> list[Path]:
    """The unpacked FHIR packages of a kind (their `package/` folders), in manifest order: by default those the
    validator loads; `fhir-testscripts` for MedCom's TestScript packages."""
    out = []
    for std in load_manifest():
        if std.kind == kind:
            p = store / "packages" / std.package_dir_name / "package"
            if not p.exists():
                raise SyncError(f"{std.id} {std.version} is not in the store; run `hub schemas sync`")
            out.append(p)
    return out
