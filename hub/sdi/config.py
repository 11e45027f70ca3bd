"""The municipality's index configuration, from the settings (`HUB_SDI_*`).

Roles and relation types KOMBIT's sample gives are data in `mappings/` (`sf1470-roles.json`,
`sf1470-types.json`). The rest are the municipality's classes in Fælleskommunalt Klassifikationssystem, read from
the JSON file `HUB_SDI_CLASSES`:

    {"roles": {"Visningsklasse": "<uuid>", "Tilakteret": "<uuid>"}, "types": {"Dokument": "<uuid>"},
     "kle": {"29.21.04": "<uuid>", …}, "handlingsfacet": {"uuid": "…", "number": "G01", "title": "…"},
     "visningsklasse": {"uuid": "…", "number": "…", "title": "Visning undtaget for borger"}}

A real index (`HUB_SDI_URL`) must have every one of them: a UUID the index does not know would be refused, or
worse, taken. The hub's local index does not look classes up, so without the file it gets stand-ins, UUIDs derived
from the names (`placeholder`), and says so in the log.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from hub.core import jsonsetting, mappings
from hub.core.config import Settings
from hub.sdi.borgerblikket import VISNING_UNDTAGET, AgePolicy, Openings
from hub.sdi.case import IndexConfig, Klasse
from hub.sdi.rules import roles

log = logging.getLogger("hub.sdi")
PLACEHOLDER = uuid.UUID("9b1f7c52-0d3e-4a8f-b6c1-2e5d7a9f0c34")
NEEDED_ROLES = ("Visningsklasse", "Tilakteret")
NEEDED_TYPES = ("Dokument",)


def placeholder(name: str) -> str:
    """A stand-in class UUID for the local index, the same for the same name."""
    return str(uuid.uuid5(PLACEHOLDER, name))


class _Placeholders(dict[str, str]):
    """KLE number → a stand-in class UUID, for any number asked."""

    def __missing__(self, number: str) -> str:
        return placeholder(f"kle|{number}")


def index_config(settings: Settings) -> IndexConfig:
    """The configuration, checked: with a real index every class must be configured."""
    classes: dict[str, Any] = {}
    if settings.sdi_classes is not None:
        classes = jsonsetting.read(settings.sdi_classes)
    elif settings.sdi_url and not settings.sdi_local:
        raise ValueError("HUB_SDI_CLASSES is required with HUB_SDI_URL: the municipality's FK Klassifikation UUIDs")
    else:
        log.warning("the local case index gets stand-in class UUIDs (no HUB_SDI_CLASSES)")
    local = settings.sdi_classes is None
    role_uuids = {name: key for key, name in roles().items()} | classes.get("roles", {})
    types = mappings.table("sf1470-types.json")["types"] | classes.get("types", {})
    for found, section, names in ((role_uuids, "roles", NEEDED_ROLES), (types, "types", NEEDED_TYPES)):
        for name in names:
            if local:
                found.setdefault(name, placeholder(f"{section}|{name}"))
            elif name not in found:
                raise ValueError(f"HUB_SDI_CLASSES names no {section[:-1]} {name!r} (its UUID in FK Klassifikation)")
    kle: dict[str, str] = _Placeholders(classes.get("kle", {})) if local else dict(classes.get("kle", {}))
    return IndexConfig(
        cvr=settings.sdi_cvr, municipality=settings.sdi_municipality, organisation=settings.sdi_organisation,
        unit=(settings.sdi_unit, settings.sdi_unit_name), units=dict(settings.sdi_units),
        itsystem=settings.sdi_itsystem, system_name=settings.sdi_system_name, roles=role_uuids, types=types,
        handlingsfacet=_klasse(classes, "handlingsfacet", local, "G01", "Generelle sager"),
        visningsklasse=_klasse(classes, "visningsklasse", local, "VU", VISNING_UNDTAGET),
        kle_classes=kle,
        age=AgePolicy(settings.sdi_minimum_age, dict(settings.sdi_age_overrides),
                      settings.sdi_show_history_before_age),
        openings=Openings(dict(settings.sdi_openings)))


def _klasse(classes: dict[str, Any], name: str, local: bool, number: str, title: str) -> Klasse:
    given = classes.get(name)
    if given is None:
        if not local:
            raise ValueError(f"HUB_SDI_CLASSES names no {name} class")
        return Klasse(placeholder(name), number, title)
    return Klasse(str(given["uuid"]), str(given.get("number", number)), str(given.get("title", title)))
