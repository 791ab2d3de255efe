"""The kinds of `[devices.NAME]` table: one row each, with its settings, adapter and port family.

A kind is named once, by the `tag` of its settings struct (device_settings); the rows
add what the drivers layer knows about it. Adapters are named, not imported: a module
is imported only when a configured device needs it, so a kiosk without an NFC reader
never loads nfcpy (no import side effects, quick start).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.core.devices import DeviceKind
from appliance.device_settings import (
    AttendantLightSettings,
    EscposPrinterSettings,
    GpioDrawerSettings,
    HardwareSettings,
    HidScannerSettings,
    NfcReaderSettings,
    PrinterDrawerSettings,
    SerialScaleSettings,
    SerialScannerSettings,
    ZvtTerminalSettings,
)
from appliance.drivers.base import DeviceBase
from appliance.errors import ConfigError


@dataclass(frozen=True, slots=True)
class DeviceKindRow:
    """One kind of device table: what parses it, which adapter serves it, its port family."""

    settings: type[HardwareSettings]
    adapter: str  # "module:Class", imported by adapter_for() when a device needs it
    family: DeviceKind  # known even when the adapter cannot be built, for its health
    build_first: bool = False  # other devices refer to it by name

    @property
    def kind(self) -> str:
        """The `kind = "..."` value that selects this row, e.g. "escpos_printer"."""
        return str(self.settings.__struct_config__.tag)


DEVICE_KINDS: tuple[DeviceKindRow, ...] = (
    DeviceKindRow(
        SerialScannerSettings, "appliance.drivers.serial_scanner:SerialScanner", "scanner"
    ),
    DeviceKindRow(HidScannerSettings, "appliance.drivers.hid_scanner:EvdevScanner", "scanner"),
    # Built before the drawers: a printer_drawer kicks through the printer it names.
    DeviceKindRow(
        EscposPrinterSettings,
        "appliance.drivers.escpos_printer:EscposPrinter",
        "printer",
        build_first=True,
    ),
    DeviceKindRow(GpioDrawerSettings, "appliance.drivers.gpio_drawer:GpioDrawer", "drawer"),
    DeviceKindRow(
        PrinterDrawerSettings, "appliance.drivers.printer_drawer:PrinterKickDrawer", "drawer"
    ),
    DeviceKindRow(NfcReaderSettings, "appliance.drivers.nfc_reader:NfcpyReader", "card_reader"),
    DeviceKindRow(
        ZvtTerminalSettings, "appliance.drivers.zvt.terminal:ZvtTerminal", "payment_terminal"
    ),
    DeviceKindRow(SerialScaleSettings, "appliance.drivers.serial_scale:SerialScale", "scale"),
    DeviceKindRow(
        AttendantLightSettings,
        "appliance.drivers.attendant_light:GpioAttendantLight",
        "attendant_light",
    ),
)

KINDS: dict[str, DeviceKindRow] = {row.kind: row for row in DEVICE_KINDS}

# kind -> adapter; a dict of its own so a test can point one kind at another module.
DRIVERS: dict[str, str] = {row.kind: row.adapter for row in DEVICE_KINDS}

BUILD_ORDER: tuple[str, ...] = tuple(row.kind for row in DEVICE_KINDS if row.build_first)


class DeviceFactory(Protocol):
    """An adapter class: builds itself from its settings table."""

    @classmethod
    def from_settings(cls, name: str, settings: Any, built: Mapping[str, DeviceBase]) -> DeviceBase:
        """Make the adapter; `built` holds the devices made before it, by name."""
        ...


def kind_of(table: HardwareSettings) -> str:
    """The `kind` of a parsed device table, e.g. "escpos_printer"."""
    return str(type(table).__struct_config__.tag)


def adapter_for(kind: str) -> DeviceFactory:
    """The adapter class registered for `kind`."""
    try:
        module_name, _, class_name = DRIVERS[kind].partition(":")
    except KeyError:
        raise ConfigError(f"no driver for device kind {kind!r}") from None
    factory: DeviceFactory = getattr(importlib.import_module(module_name), class_name)
    return factory
