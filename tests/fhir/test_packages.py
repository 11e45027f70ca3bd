"""The package index: canonicals resolved by version, by the package's context, else the newest."""

from __future__ import annotations


def test_canonicals_resolve_by_version_context_or_newest(packages: object) -> None:
    from hub.fhir.packages import PackageSet

    assert isinstance(packages, PackageSet)
    cpr = "http://hl7.dk/fhir/core/StructureDefinition/dk-core-cpr-identifier"
    assert packages.locate(cpr)[1] == "hl7.fhir.dk.core#3.7.0"  # type: ignore[index]  # newest
    assert packages.locate(cpr, context="dk.ehealth.sundhed.fhir.ig.core#8.0.0")[1] == "hl7.fhir.dk.core#1.1.0"  # type: ignore[index]
    assert packages.locate(cpr + "|2.0.0")[1] == "hl7.fhir.dk.core#2.0.0"  # type: ignore[index]
    header = "http://medcomfhir.dk/ig/messaging/StructureDefinition/medcom-messaging-messageHeader"
    assert packages.locate(header, context="medcom.fhir.dk.hospitalnotification#3.0.2")[1] == \
        "medcom.fhir.dk.messaging#2.1.0"  # type: ignore[index]  # what HospitalNotification 3.0.2 pins
    assert "dk.ehealth.sundhed.fhir.ig.core#8.0.0" in packages.closure("dk.ehealth.sundhed.fhir.ig.core#8.0.0")
    assert "hl7.fhir.uv.sdc#2.7.0" in packages.missing  # FUT's absent dependency, listed, not fatal


def test_supplements_do_not_hide_core_code_systems(packages: object) -> None:
    cs = packages.get("http://hl7.org/fhir/address-use", "CodeSystem")  # type: ignore[attr-defined]
    assert cs["content"] == "complete" and {c["code"] for c in cs["concept"]} >= {"home", "work", "temp"}
