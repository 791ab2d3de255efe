"""A misspelled printer profile is reported with the device and key, never a bare KeyError."""

from __future__ import annotations

import pytest

from appliance.core.devices import DrawerOpening
from appliance.core.events import EventBus
from appliance.device_settings import EscposPrinterSettings
from appliance.drivers.escpos_printer import EscposPrinter
from appliance.drivers.manager import DeviceManager
from appliance.drivers.printer_drawer import PrinterKickDrawer
from appliance.errors import DeviceError

REASON = r"devices\.front\.profile: unknown printer profile 'TM-T88X'"


def test_an_unknown_profile_makes_the_printer_offline_with_the_reason() -> None:
    manager = DeviceManager.build(
        {"front": EscposPrinterSettings(host="127.0.0.1", profile="TM-T88X")}
    )
    manager.open_all(EventBus())
    try:
        printer = manager["front"]
        assert isinstance(printer, EscposPrinter)
        assert printer.wait_ready(10)
        (health,) = manager.health()
        assert health.state == "offline"
        assert "unknown printer profile" in health.reason
        with pytest.raises(DeviceError, match=REASON):
            printer.print_test_page()
    finally:
        manager.close_all()


def test_a_kick_through_such_a_printer_is_a_device_error() -> None:
    printer = EscposPrinter("front", EscposPrinterSettings(host="127.0.0.1", profile="TM-T88X"))
    drawer = PrinterKickDrawer("drawer", printer)
    bus = EventBus()
    printer.open(bus)
    drawer.open(bus)
    try:
        with pytest.raises(DeviceError, match=REASON):
            drawer.kick(DrawerOpening("sale", reference="s-1"))
    finally:
        drawer.close()
        printer.close()
