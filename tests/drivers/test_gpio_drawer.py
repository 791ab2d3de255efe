"""GpioDrawer over gpiozero MockFactory pins driven by SimDrawer (the far side of the GPIO)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import msgspec
import pytest

from appliance.core.clock import SystemClock
from appliance.core.devices import (
    DeviceHealthChanged,
    DrawerClosed,
    DrawerLeftOpen,
    DrawerOpened,
    DrawerOpening,
)
from appliance.core.events import Event, EventBus
from appliance.device_settings import GpioDrawerSettings
from appliance.drivers.gpio_drawer import KICK_WINDOW, LEFT_OPEN, STUCK_OPEN, GpioDrawer
from appliance.drivers.registry import adapter_for
from appliance.drivers.sim.drawer import SimDrawer
from appliance.errors import DeviceError

E = TypeVar("E", bound=Event)
PULSE_MS = 30
WAIT = 5.0  # generous: only an upper bound on waiting, never asserted


class Recorder:
    """Every event the bus delivers, in order."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.events: list[Event] = []
        bus.subscribe(Event, self.events.append)

    def drain(self) -> list[Event]:
        self.bus.drain()
        return self.events

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.drain() if isinstance(e, kind)]

    def wait_for(self, predicate: Callable[[list[Event]], bool]) -> list[Event]:
        self.bus.drain()
        deadline = threading.Event()
        timer = threading.Timer(WAIT, deadline.set)
        timer.start()
        try:
            while not predicate(self.events) and not deadline.is_set():
                self.bus.wait(0.05)
        finally:
            timer.cancel()
            timer.join()
        assert predicate(self.events), self.events
        return self.events


# Every thread a test starts is joined by its end (tests/drivers/conftest.py).
pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder(EventBus())


@pytest.fixture
def sim() -> Iterator[SimDrawer]:
    with SimDrawer(kick_pin=17, sensor_pin=27) as sim:
        yield sim
    sim.factory.close()


def drawer_on(sim: SimDrawer, **changes: Any) -> GpioDrawer:
    table = GpioDrawerSettings(
        pin=sim.kick_pin_number,
        sensor_pin=sim.sensor_pin_number,
        active_high=sim.active_high,
        sensor_open_when_high=sim.sensor_open_when_high,
        pulse_ms=PULSE_MS,
        left_open_seconds=60.0,
    )
    return GpioDrawer("till", msgspec.structs.replace(table, **changes), pin_factory=sim.factory)


def levels(sim: SimDrawer) -> list[bool]:
    """The kick pin's levels after the first recorded one."""
    return [bool(change.state) for change in sim.kick_pin.states[1:]]


def test_a_kick_pulses_the_pin_high_for_at_least_pulse_ms(
    sim: SimDrawer, recorder: Recorder
) -> None:
    sim.auto_open_on_kick = False
    with drawer_on(sim) as drawer:
        drawer.open(recorder.bus)
        drawer.kick(DrawerOpening("sale", reference="sale-1"))
    assert levels(sim) == [True, False]
    assert sim.kicks == 1
    [pulse] = sim.pulses
    assert pulse >= PULSE_MS / 1000


def test_an_active_low_drawer_idles_high_and_pulses_low() -> None:
    with SimDrawer(active_high=False, auto_open_on_kick=False) as sim:
        with drawer_on(sim) as drawer:
            drawer.open(EventBus())
            assert sim.kick_pin.state == 1  # idle: the relay board sees "off"
            drawer.kick(DrawerOpening("sale"))
        # Made an output at its idle (high) level, then one low pulse.
        assert levels(sim) == [True, False, True]
        assert sim.kicks == 1
        [pulse] = sim.pulses
        assert pulse >= PULSE_MS / 1000
    sim.factory.close()


def test_every_kick_posts_drawer_opened_with_reason_and_staff(
    sim: SimDrawer, recorder: Recorder
) -> None:
    opening = DrawerOpening("no_sale", staff="Ana", reference="cmd-7")
    with drawer_on(sim) as drawer:
        drawer.open(recorder.bus)
        drawer.kick(opening)
        sim.close()
        drawer.kick(DrawerOpening("remote", reference="cmd-8"))
        assert recorder.of(DrawerOpened) == [
            DrawerOpened("till", opening),
            DrawerOpened("till", DrawerOpening("remote", reference="cmd-8")),
        ]


def test_a_no_sale_without_staff_is_refused_and_nothing_pulses(
    sim: SimDrawer, recorder: Recorder
) -> None:
    with drawer_on(sim) as drawer:
        drawer.open(recorder.bus)
        with pytest.raises(DeviceError, match="staff"):
            drawer.kick(DrawerOpening("no_sale", staff="  "))
        assert sim.kicks == 0
        assert recorder.of(DrawerOpened) == []


def test_the_sensor_reports_open_and_closed_and_posts_drawer_closed(
    sim: SimDrawer, recorder: Recorder
) -> None:
    with drawer_on(sim) as drawer:
        drawer.open(recorder.bus)
        assert drawer.is_open is False
        drawer.kick(DrawerOpening("sale"))
        assert drawer.is_open is True  # the simulated drawer sprang open on the pulse
        sim.close()
        assert drawer.is_open is False
        assert recorder.of(DrawerClosed) == [DrawerClosed("till")]
        assert drawer.health.state == "ok"


def test_sensor_polarity_open_when_low() -> None:
    with SimDrawer(sensor_open_when_high=False) as sim, drawer_on(sim) as drawer:
        bus = EventBus()
        drawer.open(bus)
        assert drawer.is_open is False
        sim.open()
        assert sim.sensor_pin.state == 0
        assert drawer.is_open is True
        sim.close()
        assert drawer.is_open is False
    sim.factory.close()


def test_a_drawer_left_open_posts_once_and_degrades_until_closed(
    sim: SimDrawer, recorder: Recorder
) -> None:
    with drawer_on(sim, left_open_seconds=0.2) as drawer:
        drawer.open(recorder.bus)
        drawer.kick(DrawerOpening("sale"))
        recorder.wait_for(lambda events: any(isinstance(e, DrawerLeftOpen) for e in events))
        [left] = recorder.of(DrawerLeftOpen)
        assert left.device == "till"
        assert left.seconds >= 0.2
        assert (drawer.health.state, drawer.health.reason) == ("degraded", LEFT_OPEN)
        sim.close()
        assert drawer.health.state == "ok"
        # A second opening (by hand: no kick) gets its own alarm.
        sim.open()
        recorder.wait_for(
            lambda events: len([e for e in events if isinstance(e, DrawerLeftOpen)]) == 2
        )
        sim.close()
        kinds = [type(e) for e in recorder.drain() if not isinstance(e, DeviceHealthChanged)]
        assert kinds == [
            DrawerOpened,
            DrawerLeftOpen,
            DrawerClosed,
            DrawerOpened,
            DrawerLeftOpen,
            DrawerClosed,
        ]


def test_a_drawer_still_open_at_the_next_kick_degrades_as_stuck_open(
    sim: SimDrawer, recorder: Recorder
) -> None:
    with drawer_on(sim) as drawer:
        drawer.open(recorder.bus)
        drawer.kick(DrawerOpening("sale"))
        assert drawer.health.state == "ok"
        drawer.kick(DrawerOpening("sale"))  # nobody closed it
        assert (drawer.health.state, drawer.health.reason) == ("degraded", STUCK_OPEN)
        assert sim.kicks == 2
        assert len(recorder.of(DrawerOpened)) == 2
        health = [e.health for e in recorder.of(DeviceHealthChanged)]
        assert health[-1].reason == STUCK_OPEN
        sim.close()
        assert drawer.health.state == "ok"


def test_a_drawer_open_at_start_up_starts_the_left_open_clock(
    sim: SimDrawer, recorder: Recorder
) -> None:
    sim.open()
    with drawer_on(sim, left_open_seconds=0.1) as drawer:
        drawer.open(recorder.bus)
        assert drawer.is_open is True
        recorder.wait_for(lambda events: any(isinstance(e, DrawerLeftOpen) for e in events))


def test_without_a_sensor_is_open_is_none_and_kicks_still_work(recorder: Recorder) -> None:
    with SimDrawer(sensor_pin=None) as sim, drawer_on(sim) as drawer:
        drawer.open(recorder.bus)
        assert drawer.is_open is None
        drawer.kick(DrawerOpening("selftest"))
        assert sim.kicks == 1
        assert recorder.of(DrawerOpened) == [DrawerOpened("till", DrawerOpening("selftest"))]
    sim.factory.close()


def test_kicks_from_two_threads_never_overlap(sim: SimDrawer) -> None:
    sim.auto_open_on_kick = False
    with drawer_on(sim) as drawer:
        drawer.open(EventBus())
        threads = [
            threading.Thread(target=drawer.kick, args=(DrawerOpening("sale"),)) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    assert levels(sim) == [True, False] * 3
    assert all(pulse >= PULSE_MS / 1000 for pulse in sim.pulses)


def test_a_pin_that_cannot_be_used_leaves_the_drawer_offline(recorder: Recorder) -> None:
    with SimDrawer(sensor_pin=None) as sim:
        drawer = GpioDrawer("till", GpioDrawerSettings(pin="GPIO99"), pin_factory=sim.factory)
        drawer.open(recorder.bus)
        assert drawer.health.state == "offline"
        assert "GPIO99" in drawer.health.reason
        with pytest.raises(DeviceError, match="offline"):
            drawer.kick(DrawerOpening("sale"))
        drawer.close()
    sim.factory.close()


def test_close_is_safe_twice_and_releases_the_pins(sim: SimDrawer) -> None:
    drawer = drawer_on(sim, left_open_seconds=30.0)
    drawer.open(EventBus())
    drawer.kick(DrawerOpening("sale"))  # opens the drawer: a left-open timer is running
    drawer.close()
    drawer.close()
    assert drawer.health.state == "offline"
    assert drawer.is_open is None
    with pytest.raises(DeviceError):
        drawer.kick(DrawerOpening("sale"))
    # The pins are free again: a new adapter can claim them.
    with drawer_on(sim) as again:
        again.open(EventBus())
        assert again.health.state == "ok"


def test_the_registry_builds_it_from_its_table() -> None:
    table = GpioDrawerSettings(pin=17, sensor_pin=27)
    drawer = adapter_for("gpio_drawer").from_settings("till", table, {})
    assert isinstance(drawer, GpioDrawer)
    assert drawer.address == "gpio:17"


def test_an_opening_with_no_kick_before_it_is_posted_as_by_hand(
    sim: SimDrawer, recorder: Recorder
) -> None:
    with drawer_on(sim) as drawer:
        drawer.open(recorder.bus)
        drawer.kick(DrawerOpening("sale", reference="sale-1"))  # springs open: the kick's
        sim.close()
        sim.open()  # a key, or force: no kick before it
        sim.close()
        assert [e.opening for e in recorder.of(DrawerOpened)] == [
            DrawerOpening("sale", reference="sale-1"),
            DrawerOpening("by_hand"),
        ]
        [by_hand] = [e for e in recorder.drain() if isinstance(e, DrawerOpened)][1:]
        assert by_hand.device == "till"


class FakeClock(SystemClock):
    """The system clock, with monotonic time moved on by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def monotonic(self) -> float:
        return super().monotonic() + self.offset


def test_an_opening_long_after_a_kick_is_by_hand(sim: SimDrawer, recorder: Recorder) -> None:
    clock = FakeClock()
    sim.auto_open_on_kick = False  # the latch released, but nobody pulled the drawer
    table = GpioDrawerSettings(pin=17, sensor_pin=27, pulse_ms=PULSE_MS, left_open_seconds=60.0)
    with GpioDrawer("till", table, pin_factory=sim.factory, clock=clock) as drawer:
        drawer.open(recorder.bus)
        drawer.kick(DrawerOpening("no_sale", staff="Ana"))
        clock.advance(KICK_WINDOW + 1)
        sim.open()
        sim.close()
        assert [e.opening.reason for e in recorder.of(DrawerOpened)] == ["no_sale", "by_hand"]


def test_a_drawer_already_open_at_start_up_is_not_called_by_hand(
    sim: SimDrawer, recorder: Recorder
) -> None:
    sim.open()
    with drawer_on(sim) as drawer:
        drawer.open(recorder.bus)
        sim.close()
        assert recorder.of(DrawerOpened) == []
