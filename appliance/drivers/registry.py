"""Which adapter serves which `kind` of `[devices.NAME]` table: an explicit table.

Adapters are imported only when a configured device needs them, so a kiosk without
an NFC reader never loads nfcpy (no import side effects, quick start).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol

from appliance.drivers.base import DeviceBase
from appliance.errors import ConfigError

DRIVERS: dict[str, str] = {
    "serial_scanner": "appliance.drivers.serial_scanner:SerialScanner",
    "hid_scanner": "appliance.drivers.hid_scanner:EvdevScanner",
    "escpos_printer": "appliance.drivers.escpos_printer:EscposPrinter",
    "gpio_drawer": "appliance.drivers.gpio_drawer:GpioDrawer",
    "printer_drawer": "appliance.drivers.printer_drawer:PrinterKickDrawer",
    "nfc_reader": "appliance.drivers.nfc_reader:NfcpyReader",
    "sim_terminal": "appliance.drivers.sim_terminal:SimTerminal",
}

# Devices that others refer to are built first (a printer before its kick drawer).
BUILD_ORDER = ("escpos_printer",)


class DeviceFactory(Protocol):
    """An adapter class: builds itself from its settings table."""

    @classmethod
    def from_settings(cls, name: str, settings: Any, built: Mapping[str, DeviceBase]) -> DeviceBase:
        """Make the adapter; `built` holds the devices made before it, by name."""
        ...


def adapter_for(kind: str) -> DeviceFactory:
    """The adapter class registered for `kind`."""
    try:
        module_name, _, class_name = DRIVERS[kind].partition(":")
    except KeyError:
        raise ConfigError(f"no driver for device kind {kind!r}") from None
    factory: DeviceFactory = getattr(importlib.import_module(module_name), class_name)
    return factory
