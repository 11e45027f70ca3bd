"""Composite settings are read once, by the settings' validators, not where they are used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.core.config import Settings


def test_hl7v2_settings_are_parsed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_HL7V2_RECEIVER", "epj.example:2575")
    monkeypatch.setenv("HUB_HL7V2_ACK_ADDRESSES", "EPJ^OUH=127.0.0.1:2576; LAB^RH=lab:2577;")
    monkeypatch.setenv("HUB_HL7V2_VIDEO_CODES", "VIDEO, VIDEOKONS,,")
    monkeypatch.setenv("HUB_HL7V2_RECEIVER_APPLICATION", "EPJ")
    settings = Settings()
    assert settings.hl7v2_receiver == ("epj.example", 2575)
    assert settings.hl7v2_ack_addresses == {"EPJ^OUH": ("127.0.0.1", 2576), "LAB^RH": ("lab", 2577)}
    assert settings.hl7v2_video_codes == frozenset({"VIDEO", "VIDEOKONS"})
    assert settings.hl7v2_receiver_application == ("EPJ", "")  # a facility left out is empty
    assert settings.hl7v2_sending_application == ("HUB", "HUB")


def test_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.hl7v2_receiver is None and settings.hl7v2_ack_addresses == {}
    assert settings.hl7v2_video_codes == frozenset({"VIDEO"})
    assert settings.routing.routes == ()


@pytest.mark.parametrize(("name", "value", "said"), [
    ("hl7v2_receiver", "no-port", "HUB_HL7V2_RECEIVER"),
    ("hl7v2_receiver", "host:port", "HUB_HL7V2_RECEIVER"),
    ("hl7v2_ack_addresses", "EPJ^OUH", "APP^FACILITY=host:port"),
    ("hl7v2_ack_addresses", "=host:1", "APP^FACILITY=host:port"),
    ("hl7v2_ack_addresses", "EPJ^OUH=host", "APP^FACILITY=host:port"),
])
def test_a_broken_setting_is_refused_at_start_saying_which(name: str, value: str, said: str) -> None:
    with pytest.raises(ValidationError, match=said.replace("^", r"\^")):
        Settings(**{name: value})


def test_the_routing_table_is_read_with_the_settings(tmp_path: Path) -> None:
    table = tmp_path / "routes.json"
    table.write_text(json.dumps({"receivers": [{"name": "OUH", "sor": "123", "endpoint": "http://127.0.0.1:9/"}]}))
    assert Settings(routes=table).routing.find(("sor:123",)) is not None
    table.write_text("{not json")
    with pytest.raises(ValidationError, match="routing table"):
        Settings(routes=table)


def test_the_routing_follows_its_file_even_when_the_settings_are_copied(tmp_path: Path) -> None:
    table = tmp_path / "routes.json"
    table.write_text(json.dumps({"receivers": [{"name": "OUH", "sor": "123", "endpoint": "http://127.0.0.1:9/"}]}))
    copied = Settings(_env_file=None).model_copy(update={"routes": table})  # model_copy skips the validators
    assert copied.routing.find(("sor:123",)) is not None


def test_an_empty_receiver_is_no_receiver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_HL7V2_RECEIVER", "")
    assert Settings().hl7v2_receiver is None


def test_the_cli_says_which_setting_is_wrong_and_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hub.cli import app

    monkeypatch.setenv("HUB_ROUTES", str(tmp_path / "missing.json"))
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["outbox", "list"])
    assert result.exit_code == 2
    assert "routing table" in result.output and "missing.json" in result.output and "Traceback" not in result.output


def test_json_settings_take_inline_json_or_a_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    routes = {"receivers": [{"name": "OUH", "sor": "123", "endpoint": "http://127.0.0.1:9/"}]}
    monkeypatch.setenv("HUB_ROUTES", json.dumps(routes))
    monkeypatch.setenv("HUB_SDI_AGE_OVERRIDES", '{"27.24": 15}')
    units = tmp_path / "units.json"
    units.write_text(json.dumps({"Organization/1": ["00000000-0000-4000-8000-000000000009", "Hjemmeplejen"]}))
    monkeypatch.setenv("HUB_SDI_UNITS", str(units))
    monkeypatch.setenv("HUB_SDI_OPENINGS", '{"29189846": {"27": "2025-01-01"}}')
    settings = Settings(_env_file=None)
    assert settings.routing.find(("sor:123",)) is not None
    assert settings.sdi_age_overrides == {"27.24": 15}
    assert settings.sdi_units == {"Organization/1": ("00000000-0000-4000-8000-000000000009", "Hjemmeplejen")}
    assert str(settings.sdi_openings["29189846"]["27"]) == "2025-01-01"


@pytest.mark.parametrize(("name", "value", "said"), [
    ("HUB_ROUTES", '{"receivers": [', "inline JSON that does not parse"),
    ("HUB_SDI_UNITS", "/nowhere/units.json", "neither inline JSON nor a readable file"),
])
def test_a_json_setting_that_cannot_be_read_is_one_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, said: str) -> None:
    from typer.testing import CliRunner

    from hub.cli import app

    monkeypatch.setenv(name, value)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["outbox", "list"])
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output
    assert result.output.startswith(f"error: {name}" if name != "HUB_ROUTES" else "error:")
