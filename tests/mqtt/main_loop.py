"""The appliance's main loop for tests: the event bus drained on a thread of its own."""

from __future__ import annotations

import threading

from appliance.core.events import EventBus


def start_main_loop(bus: EventBus, stop: threading.Event) -> threading.Thread:
    """Deliver `bus`'s events on a started thread, as `appliance run` does, until `stop` is set."""

    def main_loop() -> None:
        while not stop.is_set():
            bus.wait(0.02)
            bus.drain()

    loop = threading.Thread(target=main_loop, name="test-main-loop")
    loop.start()
    return loop
