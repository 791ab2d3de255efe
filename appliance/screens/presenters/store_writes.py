"""Durable writes off the main thread: the screen keeps drawing while SQLite waits for the disk."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from appliance.core.events import Event, EventBus
from appliance.errors import ApplianceError, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
Then = Callable[[Any, ApplianceError | None], None]


@dataclass(frozen=True, slots=True)
class WriteFinished(Event):
    """A write ran on the writer thread; its outcome goes back to whoever asked."""

    then: Then
    result: Any
    error: ApplianceError | None


class StoreWrites:
    """Runs sales, refunds and card debits one after another on one writer thread.

    A commit waits for fsync, and on a Pi's SD card that can take longer than many frames.
    The presenter shows that it is saving and hears the outcome on the main thread, through
    the bus: `then(result, None)`, or `then(None, error)` when the write raised.
    """

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writes")
        self._closed = False  # set and read on the main thread
        bus.subscribe(WriteFinished, self._finished)

    def run(
        self, write: Callable[[], T], then: Callable[[T | None, ApplianceError | None], None]
    ) -> None:
        """Run `write` on the writer thread, then `then` with its outcome on the main thread.

        Once closed, the write runs at once on the calling thread. The app has stopped, but
        the service still delivers the bus's last events before the store closes: a card
        approved in that moment still gets its sale, where the stopped writer would have
        raised "cannot schedule new futures after shutdown" and lost it.
        """
        if self._closed:
            then(*self._outcome(write))
            return
        self._writer.submit(self._write, write, then)

    def close(self) -> None:
        """Finish the writes in flight (a charged card's sale among them), then stop."""
        self._closed = True
        self._writer.shutdown(wait=True)

    def _write(self, write: Callable[[], Any], then: Then) -> None:
        self._bus.post(WriteFinished(then, *self._outcome(write)))

    @staticmethod
    def _outcome(write: Callable[[], Any]) -> tuple[Any, ApplianceError | None]:
        try:
            return write(), None
        except ApplianceError as err:
            return None, err
        except Exception as err:  # a bug must not leave the screen saving for ever
            log.exception("store write failed")
            return None, StoreError(f"the write failed: {err}")

    @staticmethod
    def _finished(event: WriteFinished) -> None:
        event.then(event.result, event.error)
