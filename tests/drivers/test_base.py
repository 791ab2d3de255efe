"""DeviceBase and ReconnectingWorker: health changes are posted once; lost sessions restart."""

from __future__ import annotations

import threading

from appliance.core.devices import DeviceHealthChanged
from appliance.core.events import EventBus
from appliance.drivers.base import DeviceBase
from appliance.drivers.worker import ReconnectingWorker


class Probe(DeviceBase):
    """A minimal adapter: it only reports health."""

    kind = "scanner"

    def _start(self) -> None:
        self._set_health("ok")

    def _stop(self) -> None:
        pass


def _health_events(bus: EventBus) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    bus.subscribe(DeviceHealthChanged, lambda e: seen.append((e.health.state, e.health.reason)))
    bus.drain()
    return seen


def test_health_changes_are_posted_once_and_close_is_safe_twice() -> None:
    bus = EventBus()
    probe = Probe("probe", "/dev/serial/by-id/x")
    probe.open(bus)
    probe.open(bus)
    probe._set_health("ok")
    probe._set_health("degraded", "paper near end")
    probe.close()
    probe.close()
    assert _health_events(bus) == [
        ("ok", ""),
        ("degraded", "paper near end"),
        ("offline", "closed"),
    ]
    assert probe.health.address == "/dev/serial/by-id/x"


def test_a_context_manager_closes_the_device() -> None:
    bus = EventBus()
    with Probe("probe") as probe:
        probe.open(bus)
        assert probe.health.state == "ok"
    assert probe.health.state == "offline"


def test_a_worker_reopens_after_a_loss_and_stops_cleanly() -> None:
    sessions = 0
    lost: list[str] = []
    third = threading.Event()

    def session(stopping: threading.Event) -> None:
        nonlocal sessions
        sessions += 1
        if sessions < 3:
            raise OSError(f"unplugged {sessions}")
        third.set()
        stopping.wait()

    worker = ReconnectingWorker("w", session, lambda err: lost.append(str(err)), first_delay=0.01)
    worker.start()
    assert third.wait(10), "the worker did not retry after losses"
    worker.stop()
    worker.stop()
    assert lost == ["unplugged 1", "unplugged 2"]
    assert not any(t.name == "w" for t in threading.enumerate())
