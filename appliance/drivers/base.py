"""What every adapter shares: its name, its health, and posting to the bus."""

from __future__ import annotations

import logging
import threading

from appliance.core.closing import Closing
from appliance.core.devices import DeviceHealth, DeviceHealthChanged, DeviceKind, HealthState
from appliance.core.events import Event, EventBus

log = logging.getLogger(__name__)


class DeviceBase(Closing):
    """Base of every adapter.

    Subclasses must implement `_start()` and `_stop()`; they may call `_set_health()`
    from any thread and `_post()` to send events. `open()`/`close()` are idempotent.
    """

    kind: DeviceKind

    def __init__(self, name: str, address: str = "") -> None:
        self.name = name
        self.address = address
        self._bus: EventBus | None = None
        self._lock = threading.Lock()
        self._health = DeviceHealth(name, self.kind, "offline", "not opened", address)
        self._opened = False

    def open(self, bus: EventBus) -> None:
        """Start the device; health and events go to `bus`."""
        if self._opened:
            return
        self._bus = bus
        self._opened = True
        self._start()

    def close(self) -> None:
        """Stop the device; safe to call twice."""
        if not self._opened:
            return
        self._opened = False
        try:
            self._stop()
        finally:
            self._set_health("offline", "closed")

    @property
    def health(self) -> DeviceHealth:
        """The latest health; thread-safe."""
        with self._lock:
            return self._health

    def _set_health(self, state: HealthState, reason: str = "") -> None:
        """Record a health change; posts DeviceHealthChanged only when it changed."""
        with self._lock:
            old = self._health
            if old.state == state and old.reason == reason:
                return
            self._health = DeviceHealth(self.name, self.kind, state, reason, self.address)
            new = self._health
        if state != old.state:
            log.log(
                # Closing on purpose (shutdown) is not a problem worth a warning.
                logging.INFO if state == "ok" or not self._opened else logging.WARNING,
                "%s %s: %s%s",
                self.kind,
                self.name,
                state,
                f" ({reason})" if reason else "",
            )
        self._post(DeviceHealthChanged(new))

    def _post(self, event: Event) -> None:
        if self._bus is not None:
            self._bus.post(event)

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError
