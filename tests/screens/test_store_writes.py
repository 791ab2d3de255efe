"""Sales and refunds are stored on the writer thread; the outcome comes back on the bus."""

from __future__ import annotations

import threading
import time
from typing import Any

from appliance.core.events import EventBus
from appliance.errors import ApplianceError, DocumentError, StoreError
from appliance.screens.presenters.store_writes import StoreWrites


def outcomes() -> tuple[list[tuple[Any, ApplianceError | None, str]], Any]:
    """A list of (result, error, thread name) and the `then` that fills it."""
    seen: list[tuple[Any, ApplianceError | None, str]] = []

    def then(result: Any, error: ApplianceError | None) -> None:
        seen.append((result, error, threading.current_thread().name))

    return seen, then


def drain_until(bus: EventBus, done: Any, timeout: float = 5.0) -> None:
    """Deliver the bus's events on this (the 'main') thread until `done()`."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "no outcome"
        bus.drain()
        time.sleep(0.005)


def test_a_write_runs_on_the_writer_and_its_outcome_on_the_draining_thread() -> None:
    bus = EventBus()
    writes = StoreWrites(bus)
    seen, then = outcomes()
    ran_on: list[str] = []

    def write() -> str:
        ran_on.append(threading.current_thread().name)
        return "sale-1"

    writes.run(write, then)
    drain_until(bus, lambda: seen)
    writes.close()
    assert ran_on[0].startswith("store-writes")
    assert seen == [("sale-1", None, threading.current_thread().name)]


def test_a_refused_write_and_a_bug_both_come_back_as_errors() -> None:
    bus = EventBus()
    writes = StoreWrites(bus)
    seen, then = outcomes()

    def refused() -> None:
        raise DocumentError("already refunded")

    def buggy() -> None:
        raise ZeroDivisionError("a bug")

    writes.run(refused, then)
    writes.run(buggy, then)
    drain_until(bus, lambda: len(seen) == 2)
    writes.close()
    assert isinstance(seen[0][1], DocumentError) and seen[0][0] is None
    assert isinstance(seen[1][1], StoreError) and "a bug" in str(seen[1][1])


def test_writes_run_in_order_and_close_waits_for_the_one_in_flight() -> None:
    bus = EventBus()
    writes = StoreWrites(bus)
    seen, then = outcomes()
    order: list[int] = []

    def slow(number: int) -> int:
        time.sleep(0.05)
        order.append(number)
        return number

    for number in range(3):
        writes.run(lambda number=number: slow(number), then)
    writes.close()  # a charged card's sale must be stored before the store closes
    assert order == [0, 1, 2]
    bus.drain()
    assert [result for result, _error, _thread in seen] == [0, 1, 2]


def test_a_write_after_close_runs_at_once_instead_of_being_refused() -> None:
    """The app closes its writes on stop; the service then delivers the bus's last events,
    and one of them may ask for a write (a card approved just then). It is stored on the
    spot, not lost to "cannot schedule new futures after shutdown"."""
    bus = EventBus()
    writes = StoreWrites(bus)
    seen, then = outcomes()
    writes.close()
    writes.run(lambda: "sale-late", then)
    writes.run(lambda: 1 // 0, then)
    here = threading.current_thread().name
    assert seen[0] == ("sale-late", None, here)
    assert isinstance(seen[1][1], StoreError) and seen[1][2] == here
