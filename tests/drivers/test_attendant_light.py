"""GpioAttendantLight over gpiozero MockFactory pins: the pin's level and its blink."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import msgspec
import pytest
from gpiozero.pins.mock import MockFactory

from appliance.core.devices import DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.device_settings import AttendantLightSettings, HardwareSettings
from appliance.drivers.attendant_light import GpioAttendantLight
from appliance.drivers.manager import DeviceManager
from appliance.drivers.registry import adapter_for

PIN = 22
WAIT = 5.0  # an upper bound on waiting only

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    factory = MockFactory()
    yield factory
    factory.close()


def light_on(factory: MockFactory, **changes: object) -> GpioAttendantLight:
    table = AttendantLightSettings(pin=PIN, flash_on_ms=100, flash_off_ms=100, **changes)  # type: ignore[arg-type]
    return GpioAttendantLight("pole", table, pin_factory=factory)


def wait_for_changes(pin: object, count: int) -> list[bool]:
    """The pin's levels once it has changed `count` times (a blink runs on its own thread)."""
    deadline = time.monotonic() + WAIT
    while len(pin.states) <= count and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.02)
    return [bool(s.state) for s in pin.states]  # type: ignore[attr-defined]


def test_steady_drives_the_pin_high_and_off_drives_it_low(factory: MockFactory) -> None:
    bus = EventBus()
    light = light_on(factory)
    pin = factory.pin(PIN)
    with light:
        light.open(bus)
        assert light.health.state == "ok" and pin.state is False
        light.show("steady")
        assert pin.state is True and light.state == "steady"
        light.show("off")
        assert pin.state is False


def test_flashing_blinks_the_pin_at_the_configured_times(factory: MockFactory) -> None:
    light = light_on(factory)
    pin = factory.pin(PIN)
    with light:
        light.open(EventBus())
        pin.clear_states()
        light.show("flashing")
        levels = wait_for_changes(pin, 4)
        assert levels[:5] == [False, True, False, True, False]
        # Each half period is the configured 100 ms (generously: the machine is shared).
        for change in pin.states[2:5]:
            assert 0.05 <= change.timestamp <= 1.0, pin.states
        light.show("steady")  # stops the blink and holds the light on
        assert pin.state is True
        time.sleep(0.25)
        assert pin.state is True


def test_an_active_low_relay_board_is_on_when_the_pin_is_low(factory: MockFactory) -> None:
    light = light_on(factory, active_high=False)
    pin = factory.pin(PIN)
    with light:
        light.open(EventBus())
        assert pin.state is True  # off: the relay's input held high
        light.show("steady")
        assert pin.state is False


def test_a_state_asked_before_opening_is_shown_at_open(factory: MockFactory) -> None:
    light = light_on(factory)
    light.show("steady")
    with light:
        light.open(EventBus())
        assert factory.pin(PIN).state is True


def test_closing_turns_the_light_off_and_stops_the_blink(factory: MockFactory) -> None:
    light = light_on(factory)
    pin = factory.pin(PIN)
    light.open(EventBus())
    light.show("flashing")
    wait_for_changes(pin, 2)
    light.close()
    light.close()  # safe twice
    assert pin.state is False
    assert not [t for t in threading.enumerate() if "blink" in t.name.lower()]


def test_a_pin_in_use_leaves_the_light_offline_and_the_rest_running(factory: MockFactory) -> None:
    bus = EventBus()
    health: list[DeviceHealthChanged] = []
    bus.subscribe(DeviceHealthChanged, health.append)
    first, second = light_on(factory), light_on(factory)
    with first, second:
        first.open(bus)
        second.open(bus)
        second.show("steady")  # nothing to switch: no error raised
        bus.drain()
        assert first.health.state == "ok"
        assert second.health.state == "offline" and f"GPIO {PIN}" in second.health.reason


def test_the_attendant_light_is_a_configured_device_kind() -> None:
    table = msgspec.convert({"kind": "attendant_light", "pin": 22}, HardwareSettings)
    assert isinstance(table, AttendantLightSettings)
    assert table.flash_on_ms == 500 and table.active_high is True
    assert adapter_for("attendant_light") is GpioAttendantLight
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"kind": "attendant_light", "pin": 22, "flash_on_ms": 10}, HardwareSettings)


def test_the_manager_offers_the_first_attendant_light(factory: MockFactory) -> None:
    light = light_on(factory)
    manager = DeviceManager.build({}, overrides={"pole": light})
    assert manager.attendant_light is light
    assert DeviceManager.build({}).attendant_light is None
