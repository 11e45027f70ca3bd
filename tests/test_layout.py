"""The floors stay apart: every import in `hub/` (read with `ast`, those inside functions too) goes down, never up.

The kernel imports nothing of the hub outside itself; the format adapters import the kernel and each other (where a
standard defines a direct conversion), never a flow, delivery, the store, the wiring, the API or the CLI; the store
imports only the kernel; the local stand-in services are started by the CLI alone (`../shared/DESIGN.md` and the
README, "Layout").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HUB = Path(__file__).resolve().parents[1] / "hub"
ADAPTERS = frozenset({"fhir", "medcom", "hl7v2", "convert", "sdi", "video", "conformance"})
BELOW: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "auth": frozenset({"core", "auth"}),  # tokens and scopes: pure, like an adapter, used by the wiring and the API
    **{adapter: frozenset({"core"}) | ADAPTERS for adapter in ADAPTERS},
    "store": frozenset({"core", "store"}),
    "delivery": frozenset({"core", "store", "delivery"}) | ADAPTERS,
    "flows": frozenset({"core", "store", "delivery", "flows"}) | ADAPTERS,
    "wiring": frozenset({"core", "auth", "store", "delivery", "flows", "wiring"}) | ADAPTERS,
    "api": frozenset({"core", "auth", "store", "delivery", "flows", "wiring", "api"}) | ADAPTERS,
    "cli": frozenset({"core", "auth", "store", "delivery", "flows", "wiring", "api", "cli"}) | ADAPTERS,
}
MAX_LINES = 900


def module_name(path: Path) -> str:
    parts = path.relative_to(HUB.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The hub modules (or packages) the file at `path` imports."""
    return imports_of(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """The hub modules (or packages) `source`, the text of `module`, imports; relative imports resolved."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found |= {name} | {f"{name}.{alias.name}" for alias in node.names}
    return {name for name in found if name == "hub" or name.startswith("hub.")}


def floor(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def violations(modules: dict[str, set[str]]) -> list[str]:
    """`importer -> imported` for every import against the rules."""
    wrong = []
    for importer, names in sorted(modules.items()):
        own = floor(importer)
        if own not in BELOW:
            continue  # hub/__main__.py
        for name in sorted(names):
            target = floor(name)
            if target in BELOW and target not in BELOW[own]:
                wrong.append(f"{importer} -> {name}")
            # a local stand-in is started by the CLI and used by nothing else of the hub
            parts = name.split(".")
            local = ".".join(parts[: parts.index("local") + 1]) if "local" in parts[2:] else None
            if local and not (importer + ".").startswith(local + ".") and own != "cli":
                wrong.append(f"{importer} -> {name} (a local stand-in)")
    return wrong


def hub_modules() -> dict[str, set[str]]:
    return {module_name(path): imported(path) for path in HUB.rglob("*.py")}


def test_every_import_goes_down_a_floor() -> None:
    modules = hub_modules()
    assert len(modules) > 100 and any(names for names in modules.values())
    assert violations(modules) == []


@pytest.mark.parametrize(("importer", "name"), [
    ("hub.core.model", "hub.fhir.io"),  # the kernel reaching into an adapter
    ("hub.store.appointments", "hub.fhir.search"),  # the store reaching into an adapter
    ("hub.hl7v2.ack", "hub.store.db"),  # an adapter reaching into the store
    ("hub.fhir.messaging", "hub.flows.message"),  # an adapter reaching into a flow
    ("hub.delivery.http", "hub.flows.vans"),  # a delivery reaching up into a flow
    ("hub.flows.booking", "hub.wiring"),  # a flow reaching into the composition root
    ("hub.wiring", "hub.api.deps"),
    ("hub.sdi.client", "hub.sdi.local.index"),  # the adapter using its stand-in
    ("hub.api.app", "hub.video.local"),
])
def test_an_import_against_the_rules_is_found(importer: str, name: str) -> None:
    assert violations({importer: {name}})


def test_what_the_rules_allow_passes() -> None:
    allowed = {"hub.convert.receipts": {"hub.medcom.receipts", "hub.core.outcome"},
               "hub.flows.letter": {"hub.delivery.http", "hub.store.inbox"},
               "hub.sdi.local.service": {"hub.sdi.local.index", "hub.sdi.contract"},
               "hub.cli": {"hub.sdi.local.app", "hub.wiring"}}
    assert violations(allowed) == []


def test_imports_inside_functions_and_relative_ones_are_read() -> None:
    source = "from . import booking\nfrom ..store import db\n\ndef later():\n    import hub.api.app\n"
    assert {"hub.flows.booking", "hub.store.db", "hub.api.app"} <= imports_of(source, "hub.flows.probe", False)
    assert "hub.flows.booking" in imports_of("from .booking import BookingFlow\n", "hub.flows", True)


def test_no_module_is_over_900_lines() -> None:
    long = {str(p.relative_to(HUB.parent)): n for p in HUB.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
