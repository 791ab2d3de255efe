"""GpioAttendantLight: the kiosk's attendant light on one GPIO pin, through gpiozero's LED.

Steady (`LED.on()`) while a call for help is open, flashing (`LED.blink()`, on gpiozero's
own background thread) for an urgent one, off otherwise. The pin drives the lamp through
a relay or transistor board, like the drawer's kick pin; `active_high = false` suits the
common relay boards that switch on a low input.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from gpiozero import LED, GPIOZeroError

from appliance.core.help_calls import LightState
from appliance.device_settings import AttendantLightSettings
from appliance.drivers.base import DeviceBase

log = logging.getLogger(__name__)


class GpioAttendantLight(DeviceBase):
    """An attendant light on a GPIO pin; `show()` is thread-safe and returns at once.

    `pin_factory` is a gpiozero pin factory (a MockFactory in tests and simulation);
    None uses gpiozero's default for the board. A light that fails is reported offline
    and the kiosk carries on: the screen and the hub still show the call.
    """

    kind = "attendant_light"

    def __init__(
        self, name: str, settings: AttendantLightSettings, *, pin_factory: Any = None
    ) -> None:
        super().__init__(name, address=f"gpio:{settings.pin}")
        self._settings = settings
        self._pin_factory = pin_factory
        self._led_lock = threading.Lock()  # one change of the LED at a time
        self._led: LED | None = None
        self._state: LightState = "off"  # what was asked last, shown again after a restart

    @classmethod
    def from_settings(
        cls, name: str, settings: AttendantLightSettings, built: Mapping[str, DeviceBase]
    ) -> GpioAttendantLight:
        """The light on `settings.pin`, with the board's own pin factory."""
        return cls(name, settings)

    @property
    def state(self) -> LightState:
        """What the light was last asked to show."""
        with self._led_lock:
            return self._state

    def show(self, state: LightState) -> None:
        """Off, steady or flashing; logs (and reports offline) when the pin fails."""
        with self._led_lock:
            if state == self._state and self._led is not None:
                return
            self._state = state
            led = self._led
            if led is None:
                return  # not open: shown when it opens
            try:
                self._apply(led, state)
            except GPIOZeroError as err:
                log.warning("attendant light %s: cannot show %s: %s", self.name, state, err)
                self._set_health("offline", f"cannot switch GPIO {self._settings.pin}: {err}")
                return
        log.info("attendant light %s: %s", self.name, state)
        if self.health.state != "ok":
            self._set_health("ok")

    def _apply(self, led: LED, state: LightState) -> None:
        if state == "steady":
            led.on()  # also stops a blink in progress
        elif state == "flashing":
            settings = self._settings
            led.blink(
                on_time=settings.flash_on_ms / 1000,
                off_time=settings.flash_off_ms / 1000,
                background=True,
            )
        else:
            led.off()

    def _start(self) -> None:
        settings = self._settings
        with self._led_lock:
            try:
                led = LED(
                    settings.pin,
                    active_high=settings.active_high,
                    initial_value=False,
                    pin_factory=self._pin_factory,
                )
            except (GPIOZeroError, OSError) as err:
                self._set_health("offline", f"cannot use GPIO {settings.pin}: {err}")
                return
            self._led = led
            try:
                self._apply(led, self._state)
            except GPIOZeroError as err:
                self._set_health("offline", f"cannot switch GPIO {settings.pin}: {err}")
                return
        self._set_health("ok")

    def _stop(self) -> None:
        with self._led_lock:
            led, self._led = self._led, None
            if led is not None:
                try:
                    led.off()  # a light left on would call staff to a kiosk that is shut
                except GPIOZeroError as err:
                    log.debug("attendant light %s: off at close failed: %s", self.name, err)
                led.close()  # stops gpiozero's blink thread too
