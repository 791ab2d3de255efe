"""Waits on the event bus for what a scanner test expects, on the main thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from appliance.core.devices import BarcodeScanned, DeviceHealthChanged
from appliance.core.events import Event, EventBus

E = TypeVar("E", bound=Event)
WAIT = 10.0  # generous: only bounds a wait, never asserted


class BusProbe:
    """Records every event on the bus and waits (on this, the main thread) for one to arrive."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.events: list[Event] = []
        bus.subscribe(Event, self.events.append)

    def of(self, event_type: type[E]) -> list[E]:
        """Every event of `event_type` seen so far."""
        return [e for e in self.events if isinstance(e, event_type)]

    def wait_for(
        self, event_type: type[E], match: Callable[[E], bool] = lambda e: True, after: int = 0
    ) -> E:
        """The first event of `event_type` matching `match` from index `after` on."""
        deadline = time.monotonic() + WAIT
        while True:
            for event in self.events[after:]:
                if isinstance(event, event_type) and match(event):
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event_type.__name__} within {WAIT}s: {self.events}")
            self.bus.wait(min(left, 0.5))

    def wait_scan(self, code: str, after: int = 0) -> BarcodeScanned:
        """Wait for BarcodeScanned with `code`."""
        return self.wait_for(BarcodeScanned, lambda e: e.code == code, after)

    def wait_health(self, state: str, reason: str = "", after: int = 0) -> DeviceHealthChanged:
        """Wait for a health change to `state` whose reason contains `reason`."""
        return self.wait_for(
            DeviceHealthChanged,
            lambda e: e.health.state == state and reason in e.health.reason,
            after,
        )
