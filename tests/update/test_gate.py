"""The health gate: all checks must hold together before the timeout; the reason names the rest."""

from __future__ import annotations

import threading

from appliance.update.gate import Check, HealthGate


class Ticking:
    """A monotonic clock that moves a second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_the_gate_passes_once_every_check_holds() -> None:
    hub = iter([False, False, True])
    gate = HealthGate(
        [Check("READY", lambda: True), Check("the hub link", lambda: next(hub))],
        300,
        monotonic=Ticking(),
        poll_s=0,
    )
    assert gate.wait() == ""


def test_the_gate_fails_at_its_timeout_naming_the_checks_that_never_held() -> None:
    def broken() -> bool:
        raise RuntimeError("no terminal")

    gate = HealthGate(
        [
            Check("READY", lambda: True),
            Check("the self-test", broken),
            Check("the hub link", lambda: False),
        ],
        10,
        monotonic=Ticking(),
        poll_s=0,
    )
    assert gate.wait() == "not within 10 s: the self-test, the hub link"


def test_a_stopping_appliance_ends_the_wait_with_a_reason() -> None:
    stop = threading.Event()
    stop.set()
    gate = HealthGate([Check("READY", lambda: False)], 300, monotonic=Ticking(), poll_s=0)
    assert gate.wait(stop) == "the appliance stopped before READY"
