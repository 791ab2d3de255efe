"""A misspelled printer profile is a configuration error, not a silent print failure."""

from __future__ import annotations

import pytest

from appliance.core.events import EventBus
from appliance.device_settings import EscposPrinterSettings
from appliance.drivers.escpos_printer import EscposPrinter
from appliance.drivers.manager import DeviceManager
from appliance.errors import ConfigError


def test_an_unknown_profile_is_refused_with_the_device_and_key() -> None:
    settings = EscposPrinterSettings(host="127.0.0.1", profile="TM-T88X")
    with pytest.raises(ConfigError, match=r"devices\.front\.profile: unknown printer profile"):
        EscposPrinter.from_settings("front", settings, {})


def test_the_manager_shows_such_a_printer_offline_with_the_reason() -> None:
    manager = DeviceManager.build(
        {"front": EscposPrinterSettings(host="127.0.0.1", profile="TM-T88X")}
    )
    manager.open_all(EventBus())
    try:
        (health,) = manager.health()
    finally:
        manager.close_all()
    assert health.state == "offline"
    assert "unknown printer profile" in health.reason
