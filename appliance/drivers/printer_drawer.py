"""PrinterKickDrawer: a cash drawer plugged into a receipt printer's kick connector (ESC p).

The printer pulses the drawer's solenoid when it receives ESC p, so the drawer is as
reachable as its printer: its health follows the printer's, and it has no sensor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Protocol, cast, runtime_checkable

from appliance.core.devices import (
    DeviceHealth,
    DeviceHealthChanged,
    DrawerOpened,
    DrawerOpening,
    check_opening,
)
from appliance.device_settings import PrinterDrawerSettings
from appliance.drivers.base import DeviceBase
from appliance.errors import ConfigError, DeviceError

log = logging.getLogger(__name__)


@runtime_checkable
class KickPort(Protocol):
    """What the drawer needs of its printer (EscposPrinter): a kick and its health."""

    name: str

    def kick_drawer(self, pin: int, pulse_ms: int) -> None:
        """Send the kick pulse; raises DeviceError when the printer cannot be reached."""
        ...

    @property
    def health(self) -> DeviceHealth:
        """The printer's latest health."""
        ...


class PrinterKickDrawer(DeviceBase):
    """A drawer on a printer's kick port; `kick()` is thread-safe and blocks like a print.

    Posts DrawerOpened for every kick. Offline while its printer is offline; `is_open`
    is always None (the kick connector has no sensor line this adapter reads).
    """

    kind = "drawer"

    def __init__(
        self, name: str, printer: KickPort, *, kick_pin: int = 2, pulse_ms: int = 100
    ) -> None:
        super().__init__(name, address=f"{printer.name}:kick{kick_pin}")
        self._printer = printer
        self._kick_pin = kick_pin
        self._pulse_ms = pulse_ms
        self._subscribed = False
        self._kick_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, name: str, settings: PrinterDrawerSettings, built: Mapping[str, DeviceBase]
    ) -> PrinterKickDrawer:
        """The drawer on the kick port of the printer named `settings.printer`."""
        printer = built.get(settings.printer)
        if printer is None:
            raise ConfigError(f"drawer {name}: no printer named {settings.printer!r}")
        if not isinstance(printer, KickPort):
            raise ConfigError(f"drawer {name}: {settings.printer!r} has no drawer kick port")
        return cls(
            name, cast(KickPort, printer), kick_pin=settings.kick_pin, pulse_ms=settings.pulse_ms
        )

    @property
    def is_open(self) -> bool | None:
        """Always None: no sensor."""
        return None

    def kick(self, opening: DrawerOpening) -> None:
        """Have the printer pulse the drawer and record why; raises DeviceError when it did not."""
        check_opening(opening)
        if not self._opened:
            raise DeviceError(f"drawer {self.name} is not open")
        with self._kick_lock:  # one pulse at a time
            try:
                self._printer.kick_drawer(self._kick_pin, self._pulse_ms)
            except DeviceError as err:
                self._set_health("offline", f"printer {self._printer.name}: {err}")
                raise
        self._set_health("ok")
        log.info("drawer %s kicked: %s %s", self.name, opening.reason, opening.staff)
        self._post(DrawerOpened(self.name, opening))

    def _start(self) -> None:
        self._follow(self._printer.health)
        if self._bus is not None and not self._subscribed:
            # open() runs on the main loop, where subscribing is allowed.
            self._bus.subscribe(DeviceHealthChanged, self._on_health)
            self._subscribed = True

    def _stop(self) -> None:
        pass  # the printer is closed by its own owner

    def _on_health(self, event: DeviceHealthChanged) -> None:
        if self._opened and event.health.device == self._printer.name:
            self._follow(event.health)

    def _follow(self, printer: DeviceHealth) -> None:
        if printer.state == "offline":
            why = f": {printer.reason}" if printer.reason else ""
            self._set_health("offline", f"printer {printer.device} offline{why}")
        else:
            self._set_health("ok")
