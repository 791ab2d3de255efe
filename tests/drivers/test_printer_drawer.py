"""PrinterKickDrawer through a real EscposPrinter over TCP to SimPrinter on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import pytest

from appliance.core.devices import DeviceHealthChanged, DrawerOpened, DrawerOpening
from appliance.core.events import Event, EventBus
from appliance.device_settings import (
    EscposPrinterSettings,
    GpioDrawerSettings,
    PrinterDrawerSettings,
)
from appliance.drivers.escpos_printer import EscposPrinter
from appliance.drivers.gpio_drawer import GpioDrawer
from appliance.drivers.printer_drawer import PrinterKickDrawer
from appliance.drivers.registry import adapter_for
from appliance.drivers.sim.printer import SimPrinter
from appliance.errors import ConfigError, DeviceError

ESC_P = b"\x1b\x70"


# Every thread a test starts is joined by its end (tests/drivers/conftest.py).
pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def sim() -> Iterator[SimPrinter]:
    with SimPrinter() as sim:
        yield sim


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture
def printer(sim: SimPrinter, bus: EventBus) -> Iterator[EscposPrinter]:
    table = EscposPrinterSettings(transport="network", host=sim.host, port=sim.port, timeout=2.0)
    with EscposPrinter("receipts", table) as printer:
        printer.open(bus)
        yield printer


def build(
    printer: EscposPrinter, kick_pin: Literal[2, 5] = 2, pulse_ms: int = 100
) -> PrinterKickDrawer:
    table = PrinterDrawerSettings(printer="receipts", kick_pin=kick_pin, pulse_ms=pulse_ms)
    drawer = adapter_for("printer_drawer").from_settings("till", table, {"receipts": printer})
    assert isinstance(drawer, PrinterKickDrawer)
    return drawer


def recorded(bus: EventBus) -> list[Event]:
    """Every event from now on, in order; drain the bus to fill it."""
    seen: list[Event] = []
    bus.subscribe(Event, seen.append)
    return seen


def test_a_kick_sends_esc_p_for_pin_2_in_2_ms_units(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus
) -> None:
    with build(printer, kick_pin=2, pulse_ms=100) as drawer:
        drawer.open(bus)
        drawer.kick(DrawerOpening("sale", reference="sale-1"))
    # ESC p m t1 t2: connector pin 2 is m=0; 100 ms on (and off) is 50 units of 2 ms.
    assert sim.received.count(ESC_P) == 1
    assert b"\x1b\x70\x00\x32\x32" in sim.received
    assert sim.wait_for_kicks(1) == [(2, 100)]


def test_a_kick_on_pin_5_with_a_short_pulse(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus
) -> None:
    with build(printer, kick_pin=5, pulse_ms=50) as drawer:
        drawer.open(bus)
        drawer.kick(DrawerOpening("selftest"))
    assert b"\x1b\x70\x01\x19\x19" in sim.received
    assert sim.wait_for_kicks(1) == [(5, 50)]


def test_every_kick_posts_drawer_opened_and_the_drawer_has_no_sensor(
    printer: EscposPrinter, bus: EventBus
) -> None:
    opening = DrawerOpening("no_sale", staff="Ana", reference="cmd-3")
    seen = recorded(bus)
    with build(printer) as drawer:
        drawer.open(bus)
        assert drawer.is_open is None
        drawer.kick(opening)
    bus.drain()
    assert [e for e in seen if isinstance(e, DrawerOpened)] == [DrawerOpened("till", opening)]


def test_a_no_sale_without_staff_sends_nothing(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus
) -> None:
    seen = recorded(bus)
    with build(printer) as drawer:
        drawer.open(bus)
        with pytest.raises(DeviceError, match="staff"):
            drawer.kick(DrawerOpening("no_sale"))
    bus.drain()
    assert ESC_P not in sim.received
    assert not any(isinstance(e, DrawerOpened) for e in seen)


def test_a_vanished_printer_fails_the_kick_and_the_drawer_goes_offline_then_recovers(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus
) -> None:
    with build(printer) as drawer:
        drawer.open(bus)
        sim.vanish()
        with pytest.raises(DeviceError):
            drawer.kick(DrawerOpening("sale"))
        assert drawer.health.state == "offline"
        assert "receipts" in drawer.health.reason
        sim.restore()
        drawer.kick(DrawerOpening("sale"))
        assert drawer.health.state == "ok"
    assert sim.wait_for_kicks(1) == [(2, 100)]


def test_health_follows_the_printer_through_the_bus(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus
) -> None:
    seen = recorded(bus)
    with build(printer) as drawer:
        drawer.open(bus)
        printer.status()  # the printer learns it is reachable ...
        bus.drain()  # ... and the drawer hears it on the main loop
        assert drawer.health.state == "ok"
        sim.vanish()
        assert not printer.status().online
        bus.drain()
        assert drawer.health.state == "offline"
        assert drawer.health.reason.startswith("printer receipts offline")
        sim.restore()
        assert printer.status().online
        bus.drain()
        assert drawer.health.state == "ok"
    bus.drain()
    till = [
        e.health for e in seen if isinstance(e, DeviceHealthChanged) and e.health.device == "till"
    ]
    # Each change is posted once: up with the printer, down with it, up again, then closed.
    assert [h.state for h in till][-4:] == ["ok", "offline", "ok", "offline"]
    assert till[-1].reason == "closed"


def test_a_drawer_needs_an_existing_printer_with_a_kick_port(printer: EscposPrinter) -> None:
    table = PrinterDrawerSettings(printer="nope")
    with pytest.raises(ConfigError, match="nope"):
        PrinterKickDrawer.from_settings("till", table, {"receipts": printer})
    gpio = GpioDrawer("other", GpioDrawerSettings(pin=17))
    with pytest.raises(ConfigError, match="kick port"):
        PrinterKickDrawer.from_settings("till", PrinterDrawerSettings(printer="x"), {"x": gpio})


def test_close_is_safe_twice_and_a_closed_drawer_refuses_to_kick(
    printer: EscposPrinter, bus: EventBus
) -> None:
    drawer = build(printer)
    drawer.open(bus)
    drawer.close()
    drawer.close()
    with pytest.raises(DeviceError):
        drawer.kick(DrawerOpening("sale"))
