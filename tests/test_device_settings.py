"""`[devices.NAME]` tables: each kind validated on its own, errors name the device and key."""

from __future__ import annotations

import pytest

from appliance.device_settings import (
    EscposPrinterSettings,
    HidScannerSettings,
    SerialScannerSettings,
)
from appliance.errors import ConfigError
from appliance.settings import parse_settings


def _with(devices: dict[str, object]) -> dict[str, object]:
    return {"device": {"id": "kiosk-1"}, "devices": devices}


def test_each_kind_becomes_its_own_typed_settings() -> None:
    settings = parse_settings(
        _with(
            {
                "scan": {"kind": "serial_scanner", "port": "/dev/serial/by-id/x"},
                "printer": {"kind": "escpos_printer", "host": "127.0.0.1"},
                "drawer": {"kind": "printer_drawer", "printer": "printer"},
            }
        )
    )
    assert isinstance(settings.devices["scan"], SerialScannerSettings)
    printer = settings.devices["printer"]
    assert isinstance(printer, EscposPrinterSettings)
    assert printer.address == "127.0.0.1:9100"


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        (
            {"scan": {"kind": "serial_scanner", "port": "/dev/x", "baudrate": "fast"}},
            "devices.scan.baudrate: Expected `int`, got `str`",
        ),
        ({"scan": {"kind": "serial_scanner"}}, "devices.scan.port: required key is missing"),
        ({"p": {"kind": "escpos_printer"}}, "devices.p.host: a network printer needs its address"),
        ({"p": {"kind": "laser"}}, "devices.p.kind: Invalid value 'laser'"),
        (
            {"d": {"kind": "gpio_drawer", "pin": 17, "colour": "red"}},
            "devices.d.colour: unknown key",
        ),
        (
            {"d": {"kind": "gpio_drawer", "pin": 17, "pulse_ms": 5000}},
            "devices.d.pulse_ms: Expected `int` <= 1000",
        ),
        (
            {"d": {"kind": "printer_drawer", "printer": "nope"}},
            "d.printer names 'nope', which is not an escpos_printer device",
        ),
        ({"bad name!": {"kind": "zvt_terminal", "host": "127.0.0.1"}}, "devices"),
    ],
)
def test_a_bad_device_table_is_reported_with_its_name_and_key(
    devices: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_with(devices))
    assert message in str(caught.value)


@pytest.mark.parametrize("kind", ["serial_scanner", "hid_scanner"])
def test_scanners_take_the_hold_gap_and_still_read_the_old_debounce_key(kind: str) -> None:
    """hold_gap_ms defaults to 200; a table from before it, with debounce_ms, still loads."""
    where = {"port": "/dev/x"} if kind == "serial_scanner" else {"device": "/dev/input/x"}
    settings = parse_settings(
        _with(
            {
                "new": {"kind": kind, **where},
                "old": {"kind": kind, **where, "debounce_ms": 800},
            }
        )
    )
    new, old = settings.devices["new"], settings.devices["old"]
    assert isinstance(new, SerialScannerSettings | HidScannerSettings)
    assert isinstance(old, SerialScannerSettings | HidScannerSettings)
    assert (new.hold_gap_ms, new.debounce_ms) == (200, None)
    assert (old.hold_gap_ms, old.debounce_ms) == (200, 800)


def test_a_hold_gap_long_enough_to_swallow_an_item_is_refused() -> None:
    """Past a second, a second identical item put down at a normal pace would be lost."""
    with pytest.raises(ConfigError, match="hold_gap_ms"):
        parse_settings(
            _with({"scan": {"kind": "serial_scanner", "port": "/dev/x", "hold_gap_ms": 1500}})
        )
