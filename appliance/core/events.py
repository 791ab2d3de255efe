"""The event bus: frozen events posted from any thread, delivered on the main loop."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from appliance.core.sale import Sale

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event; subclasses are frozen dataclasses."""


@dataclass(frozen=True, slots=True)
class SaleCommitted(Event):
    """A document (sale, refund or void) is durably stored; `sale` is that document.

    Subscribers run on the main thread: they take the document from here and never read it
    back from the store, which would wait for the disk in a frame. Make it with `of(sale)`.
    """

    sale_id: str
    kind: str
    sequence: int
    receipt_number: str
    total: int
    currency: str
    sale: Sale | None = None  # None only in events made up without a document (bus tests)

    @classmethod
    def of(cls, sale: Sale) -> SaleCommitted:
        """The event for a document just committed."""
        return cls(
            sale.id, sale.kind, sale.sequence, sale.receipt_number, sale.total, sale.currency, sale
        )


@dataclass(frozen=True, slots=True)
class ApplianceReady(Event):
    """The checkout can take a sale."""


@dataclass(frozen=True, slots=True)
class ShutdownRequested(Event):
    """Something asked the appliance to stop (signal, command)."""

    reason: str


class EventBus:
    """Thread-safe: `post` from any thread; `drain` and `subscribe` on the main thread only."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._handlers: dict[type[Event], list[Handler]] = {}
        self._main = threading.get_ident()

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        """Call `handler` on the main loop for every event of `event_type` or a subclass."""
        self._handlers.setdefault(event_type, []).append(handler)  # type: ignore[arg-type]

    def post(self, event: Event) -> None:
        """Queue an event; never blocks, safe from any thread."""
        self._queue.put(event)

    def drain(self, limit: int = 1000) -> int:
        """Deliver up to `limit` queued events in order; returns how many were delivered."""
        delivered = 0
        while delivered < limit:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            self._deliver(event)
            delivered += 1
        return delivered

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds for an event (headless loop); True when one is queued."""
        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            return False
        self._deliver(event)
        return True

    def _deliver(self, event: Event) -> None:
        for event_type in type(event).__mro__:
            for handler in self._handlers.get(event_type, ()):
                try:
                    handler(event)
                except Exception:
                    # One broken subscriber must not stop the checkout or the others.
                    log.exception("handler %r failed on %r", handler, event)


@dataclass(frozen=True, slots=True)
class KioskLockChanged(Event):
    """The kiosk was locked (no selling until unlocked) or unlocked by a fleet command."""

    locked: bool
    command_id: str = ""
