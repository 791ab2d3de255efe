"""GpioDrawer: a cash drawer kicked by a GPIO pulse, with an optional open sensor (gpiozero).

The kick pin drives the drawer's solenoid through a transistor or relay board: a pulse
of `pulse_ms` opens the drawer. The sensor is the switch that the closed drawer
presses; its pin is pulled towards the "open" level, so a cut sensor wire reads open
and raises the left-open alarm instead of hiding an open till. An opening the sensor
sees with no kick shortly before it was made by hand (a key, or force): it is posted as
DrawerOpened with reason "by_hand", so it is recorded and flagged like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from gpiozero import DigitalInputDevice, DigitalOutputDevice, GPIOZeroError

from appliance.core.clock import Clock, SystemClock
from appliance.core.devices import (
    DrawerClosed,
    DrawerLeftOpen,
    DrawerOpened,
    DrawerOpening,
    check_opening,
)
from appliance.device_settings import GpioDrawerSettings
from appliance.drivers.base import DeviceBase
from appliance.errors import DeviceError

log = logging.getLogger(__name__)

LEFT_OPEN = "drawer left open"
STUCK_OPEN = "sensor stuck open"
SENSOR_BOUNCE = 0.02  # seconds: a drawer switch chatters for a few milliseconds
# An opening this soon after a kick is the kick's: the spring pushes the drawer out within
# a fraction of a second, a slow or jammed one within two.
KICK_WINDOW = 2.0


class GpioDrawer(DeviceBase):
    """A GPIO cash drawer; `kick()` is thread-safe and returns once the pulse is over.

    Posts DrawerOpened for every kick, DrawerClosed when the sensor closes and
    DrawerLeftOpen once per opening that outlasts `left_open_seconds` (health then
    degraded until the drawer closes). `pin_factory` is a gpiozero pin factory (a
    MockFactory in tests and simulation); None uses gpiozero's default for the board.
    """

    kind = "drawer"

    def __init__(
        self,
        name: str,
        settings: GpioDrawerSettings,
        *,
        pin_factory: Any = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, address=f"gpio:{settings.pin}")
        self._settings = settings
        self._pin_factory = pin_factory
        self._clock: Clock = clock or SystemClock()
        self._kick_lock = threading.Lock()  # one pulse at a time
        self._sensor_lock = threading.Lock()  # guards the opening state below
        self._output: DigitalOutputDevice | None = None
        self._sensor: DigitalInputDevice | None = None
        self._opened_at: float | None = None
        self._kicked_at: float | None = None  # when the last pulse started (monotonic)
        self._timer: threading.Timer | None = None

    @classmethod
    def from_settings(
        cls, name: str, settings: GpioDrawerSettings, built: Mapping[str, DeviceBase]
    ) -> GpioDrawer:
        """The drawer on `settings.pin`, with the board's own pin factory."""
        return cls(name, settings)

    @property
    def is_open(self) -> bool | None:
        """What the sensor says; None without a sensor (or while closed)."""
        sensor = self._sensor
        if sensor is None:
            return None
        try:
            # The switch is pressed (active) while the drawer is shut.
            return not sensor.is_active
        except GPIOZeroError:  # closed by another thread just now
            return None

    def kick(self, opening: DrawerOpening) -> None:
        """Pulse the kick pin and record the opening; raises DeviceError when it could not."""
        check_opening(opening)
        with self._kick_lock:
            output = self._output
            if output is None:
                raise DeviceError(f"drawer {self.name} is offline: {self.health.reason}")
            if self.is_open:
                # Still open from the last sale, or the switch no longer sees the drawer.
                self._set_health("degraded", STUCK_OPEN)
            with self._sensor_lock:  # before the pulse: the sensor may see it open at once
                self._kicked_at = self._clock.monotonic()
            try:
                output.on()
                try:
                    time.sleep(self._settings.pulse_ms / 1000)
                finally:
                    output.off()
            except GPIOZeroError as err:
                self._set_health("offline", f"kick failed: {err}")
                raise DeviceError(f"drawer {self.name}: kick failed: {err}") from err
            if self.health.state == "offline":
                self._set_health("ok")  # an earlier kick failed; this one worked
        log.info("drawer %s kicked: %s %s", self.name, opening.reason, opening.staff)
        self._post(DrawerOpened(self.name, opening))

    def _start(self) -> None:
        settings = self._settings
        try:
            self._output = DigitalOutputDevice(
                settings.pin,
                active_high=settings.active_high,
                initial_value=False,
                pin_factory=self._pin_factory,
            )
            if settings.sensor_pin is not None:
                # Pulled towards "open", so the pressed switch (drawer shut) is active.
                self._sensor = DigitalInputDevice(
                    settings.sensor_pin,
                    pull_up=settings.sensor_open_when_high,
                    bounce_time=SENSOR_BOUNCE,
                    pin_factory=self._pin_factory,
                )
        except (GPIOZeroError, OSError) as err:
            self._release()
            self._set_health("offline", f"cannot use GPIO {settings.pin}: {err}")
            return
        self._set_health("ok")
        if self._sensor is not None:
            self._sensor.when_activated = self._on_closed
            self._sensor.when_deactivated = self._on_opened
            if self.is_open:
                # Open at start-up: the left-open clock starts now. Who opened it is unknown
                # (perhaps recorded before the restart), so it is not logged as by hand.
                self._on_opened(at_start=True)

    def _stop(self) -> None:
        if self._sensor is not None:
            self._sensor.when_activated = None
            self._sensor.when_deactivated = None
        with self._sensor_lock:
            timer, self._timer = self._timer, None
            self._opened_at = None
        if timer is not None:
            timer.cancel()
            timer.join()
        with self._kick_lock:
            self._release()

    def _release(self) -> None:
        for device in (self._sensor, self._output):
            if device is not None:
                device.close()
        self._sensor = self._output = None

    def _on_opened(self, at_start: bool = False) -> None:
        """The sensor saw the drawer open: start the left-open timer; no kick: by hand."""
        with self._sensor_lock:
            if self._opened_at is not None:
                return
            now = self._opened_at = self._clock.monotonic()
            kicked = self._kicked_at is not None and now - self._kicked_at <= KICK_WINDOW
            self._kicked_at = None  # a kick explains one opening, not the next one too
            timer = threading.Timer(self._settings.left_open_seconds, self._left_open)
            timer.name = f"drawer-{self.name}-left-open"
            timer.daemon = True
            self._timer = timer
        log.debug("drawer %s: sensor open", self.name)
        timer.start()
        if not kicked and not at_start:
            log.warning("drawer %s opened by hand (no kick before it)", self.name)
            self._post(DrawerOpened(self.name, DrawerOpening("by_hand")))

    def _on_closed(self) -> None:
        """The sensor saw the drawer shut: stop the timer and clear any open alarm."""
        with self._sensor_lock:
            timer, self._timer = self._timer, None
            self._opened_at = None
        if timer is not None:
            timer.cancel()
            timer.join()  # a cancelled timer ends at once; leave no thread behind
        log.debug("drawer %s: sensor closed", self.name)
        if self.health.state == "degraded":
            self._set_health("ok")
        self._post(DrawerClosed(self.name))

    def _left_open(self) -> None:
        """Timer thread: the drawer is still open after left_open_seconds (once per opening)."""
        with self._sensor_lock:
            if self._opened_at is None or self._timer is not threading.current_thread():
                return  # closed (or reopened) meanwhile
            seconds = self._clock.monotonic() - self._opened_at
        log.warning("drawer %s left open for %.0f s", self.name, seconds)
        self._set_health("degraded", LEFT_OPEN)
        self._post(DrawerLeftOpen(self.name, seconds))
