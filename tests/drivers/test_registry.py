"""The driver registry: every kind has an adapter, chosen by configuration only."""

from __future__ import annotations

import typing

import pytest

from appliance.device_settings import HardwareSettings
from appliance.drivers.registry import DEVICE_KINDS, DRIVERS, adapter_for
from appliance.errors import ConfigError


def test_every_device_kind_in_the_settings_has_a_driver() -> None:
    kinds = {t.__struct_config__.tag for t in typing.get_args(HardwareSettings)}
    assert kinds == set(DRIVERS)


def test_each_kind_has_exactly_one_row() -> None:
    kinds = [row.kind for row in DEVICE_KINDS]
    assert len(kinds) == len(set(kinds))


def test_an_unknown_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no driver"):
        adapter_for("laser_printer")


def test_importing_the_registry_loads_no_hardware_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, appliance.drivers.registry; "
        "print(sorted(m for m in ('serial','escpos','nfc','gpiozero','evdev') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
