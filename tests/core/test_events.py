"""Tests for the event bus: posting from threads, delivery on the main thread, handler faults."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

import pytest

from appliance.core.events import (
    ApplianceReady,
    Event,
    EventBus,
    SaleCommitted,
    ShutdownRequested,
)

THREADS = 8
PER_THREAD = 1000


@dataclass(frozen=True, slots=True)
class Tick(Event):
    """A numbered event from one producer thread."""

    thread: int
    n: int


def committed(sequence: int = 1) -> SaleCommitted:
    return SaleCommitted("id", "sale", sequence, f"K01-{sequence:06d}", 100, "EUR")


def test_events_from_8_threads_are_all_delivered_in_per_thread_order() -> None:
    bus = EventBus()
    seen: list[Tick] = []
    delivered_on: set[int] = set()

    def on_tick(event: Tick) -> None:
        seen.append(event)
        delivered_on.add(threading.get_ident())

    bus.subscribe(Tick, on_tick)
    start = threading.Barrier(THREADS)

    def produce(thread: int) -> None:
        start.wait()
        for n in range(PER_THREAD):
            bus.post(Tick(thread, n))

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(THREADS)]
    for producer in producers:
        producer.start()
    deadline = time.monotonic() + 10
    # Drain while the producers run, as the main loop would.
    while len(seen) < THREADS * PER_THREAD and time.monotonic() < deadline:
        if not bus.drain(limit=500):
            time.sleep(0.001)
    for producer in producers:
        producer.join()
    bus.drain()

    assert len(seen) == THREADS * PER_THREAD
    assert delivered_on == {threading.get_ident()}
    for thread in range(THREADS):
        numbers = [e.n for e in seen if e.thread == thread]
        assert numbers == list(range(PER_THREAD)), f"thread {thread} out of order"


def test_a_subscriber_to_a_base_class_gets_every_subclass() -> None:
    bus = EventBus()
    everything: list[Event] = []
    sales: list[SaleCommitted] = []
    bus.subscribe(Event, everything.append)
    bus.subscribe(SaleCommitted, sales.append)
    events = [committed(), ApplianceReady(), ShutdownRequested("signal"), Tick(0, 0)]
    for event in events:
        bus.post(event)
    assert bus.drain() == 4
    assert everything == events
    assert sales == [events[0]]


def test_events_without_a_subscriber_are_dropped_quietly() -> None:
    bus = EventBus()
    bus.post(ApplianceReady())
    assert bus.drain() == 1
    assert bus.drain() == 0


def test_a_raising_handler_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    calls: list[str] = []

    def broken(event: Event) -> None:
        calls.append("broken")
        raise RuntimeError("printer on fire")

    bus.subscribe(SaleCommitted, broken)
    bus.subscribe(SaleCommitted, lambda e: calls.append("after"))
    bus.subscribe(Event, lambda e: calls.append("base"))
    bus.post(committed(1))
    bus.post(committed(2))
    with caplog.at_level(logging.ERROR, logger="appliance.core.events"):
        assert bus.drain() == 2
    assert calls == ["broken", "after", "base"] * 2
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2
    assert failures[0].exc_info is not None
    assert "printer on fire" in str(failures[0].exc_info[1])


def test_drain_delivers_at_most_limit_events_in_order() -> None:
    bus = EventBus()
    seen: list[int] = []
    bus.subscribe(Tick, lambda e: seen.append(e.n))
    for n in range(5):
        bus.post(Tick(0, n))
    assert bus.drain(limit=2) == 2
    assert seen == [0, 1]
    assert bus.drain(limit=2) == 2
    assert bus.drain(limit=2) == 1
    assert bus.drain(limit=2) == 0
    assert seen == [0, 1, 2, 3, 4]


def test_drain_with_zero_limit_delivers_nothing() -> None:
    bus = EventBus()
    bus.post(ApplianceReady())
    assert bus.drain(limit=0) == 0
    assert bus.drain() == 1


def test_wait_times_out_returning_false() -> None:
    bus = EventBus()
    started = time.monotonic()
    assert bus.wait(timeout=0.05) is False
    assert time.monotonic() - started >= 0.04


def test_wait_delivers_one_queued_event_and_returns_true() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(Event, seen.append)
    bus.post(ApplianceReady())
    bus.post(ShutdownRequested("test"))
    assert bus.wait(timeout=1) is True
    assert seen == [ApplianceReady()]
    assert bus.drain() == 1


def test_wait_wakes_for_an_event_posted_from_another_thread() -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(ShutdownRequested, seen.append)
    poster = threading.Timer(0.02, bus.post, args=(ShutdownRequested("signal"),))
    poster.start()
    try:
        assert bus.wait(timeout=5) is True
    finally:
        poster.join()
    assert seen == [ShutdownRequested("signal")]


def test_events_are_frozen() -> None:
    event = committed()
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.total = 0  # type: ignore[misc]
