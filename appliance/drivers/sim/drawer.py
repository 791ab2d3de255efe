"""SimDrawer: a cash drawer on gpiozero MockFactory pins, the far side of GpioDrawer.

Give `sim.factory` to the GpioDrawer as its pin factory. The kick pin records every
level it is driven to (`MockPin.states`); the sensor pin behaves like the drawer's
switch, which wins over whatever pull resistor the adapter configures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin


class _KickPin(MockPin):  # type: ignore[misc]
    """A mock output pin that reports each level change to the simulator."""

    on_change: Callable[[bool], None] | None = None

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        hook = self.on_change
        if changed and hook is not None and self._function == "output":
            hook(bool(value))
        return changed


class _SwitchPin(MockPin):  # type: ignore[misc]
    """A mock input wired to a switch: the switch's level wins over the pull resistor."""

    level: bool | None = None

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        if self.level is not None:
            self.set_level(self.level)

    def set_level(self, level: bool) -> None:
        """Drive the input as the switch would (only while the pin is an input)."""
        self.level = level
        if self._function == "input":
            if level:
                self.drive_high()
            else:
                self.drive_low()


class SimDrawer:
    """A simulated drawer: a MockFactory with a kick pin and an optional sensor switch.

    `open()` / `close()` move the drawer (both safe to repeat); `auto_open_on_kick` makes
    it spring open on each kick pulse, as a real one does. A context manager: leaving it
    calls `stop()`, safe twice.
    """

    def __init__(
        self,
        kick_pin: int = 17,
        sensor_pin: int | None = 27,
        *,
        active_high: bool = True,
        sensor_open_when_high: bool = True,
        auto_open_on_kick: bool = True,
    ) -> None:
        self.factory = MockFactory()
        self.kick_pin_number = kick_pin
        self.sensor_pin_number = sensor_pin
        self.active_high = active_high
        self.sensor_open_when_high = sensor_open_when_high
        self.auto_open_on_kick = auto_open_on_kick
        self._lock = threading.Lock()
        self._stopped = False
        self.kick_pin: Any = self.factory.pin(kick_pin, pin_class=_KickPin)
        self.kick_pin.on_change = self._kick_pin_changed
        self.sensor_pin: Any = None
        if sensor_pin is not None:
            self.sensor_pin = self.factory.pin(sensor_pin, pin_class=_SwitchPin)
            self.sensor_pin.set_level(not sensor_open_when_high)  # the drawer starts shut

    @property
    def kicks(self) -> int:
        """Kick pulses seen so far, counted from the kick pin's state history."""
        active = self.active_high
        return sum(1 for change in self.kick_pin.states[1:] if bool(change.state) == active)

    @property
    def pulses(self) -> list[float]:
        """The length in seconds of each completed kick pulse, from the state history."""
        lengths = []
        for before, after in zip(self.kick_pin.states[1:], self.kick_pin.states[2:], strict=False):
            if bool(before.state) == self.active_high and bool(after.state) != self.active_high:
                lengths.append(after.timestamp)  # timestamps are time since the last change
        return lengths

    @property
    def is_open(self) -> bool | None:
        """Whether the drawer is open; None without a sensor."""
        if self.sensor_pin is None:
            return None
        return bool(self.sensor_pin.level) == self.sensor_open_when_high

    def open(self) -> None:
        """Pull the drawer open: the sensor switch is released."""
        self._set_open(True)

    def close(self) -> None:
        """Push the drawer shut: the sensor switch is pressed. Safe to call twice."""
        self._set_open(False)

    def shut(self) -> None:
        """Push the drawer shut; the same as close()."""
        self.close()

    def stop(self) -> None:
        """Stop simulating: kicks no longer spring the drawer open; safe to call twice."""
        with self._lock:
            self._stopped = True
        self.kick_pin.on_change = None

    def __enter__(self) -> SimDrawer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _set_open(self, is_open: bool) -> None:
        with self._lock:
            if self._stopped or self.sensor_pin is None:
                return
            level = is_open == self.sensor_open_when_high
        self.sensor_pin.set_level(level)

    def _kick_pin_changed(self, level: bool) -> None:
        # The solenoid releases the latch on the pulse; the spring pushes the drawer out.
        if level == self.active_high and self.auto_open_on_kick:
            self.open()
