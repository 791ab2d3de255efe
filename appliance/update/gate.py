"""The health gate of a try boot: the new slot commits only when every check holds in time.

The checks are injected (the service passes: READY sent, the start-up self-test passed,
the store database opened and migrated, the hub link connected), so a test drives them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of the gate; `what` names it in the reason when it never held."""

    what: str
    holds: Callable[[], bool]  # called on the gate's thread; must not block for long


class HealthGate:
    """Waits until all checks hold together, or the timeout passes; one thread at a time."""

    def __init__(
        self,
        checks: Sequence[Check],
        timeout_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        poll_s: float = POLL_SECONDS,
    ) -> None:
        self._checks = tuple(checks)
        self._timeout = timeout_s
        self._monotonic = monotonic
        self._poll = poll_s

    def wait(self, stop: threading.Event | None = None) -> str:
        """ "" once every check holds; else why not (the checks still failing at the timeout).

        `stop` set (the appliance is stopping) ends the wait with a reason too.
        """
        stop = stop or threading.Event()
        deadline = self._monotonic() + self._timeout
        while True:
            failing = self._failing()
            if not failing:
                log.info("health gate passed")
                return ""
            if stop.is_set():
                return f"the appliance stopped before {', '.join(failing)}"
            if self._monotonic() >= deadline:
                reason = f"not within {self._timeout:g} s: {', '.join(failing)}"
                log.error("health gate failed: %s", reason)
                return reason
            stop.wait(self._poll)

    def _failing(self) -> list[str]:
        failing = []
        for check in self._checks:
            try:
                held = check.holds()
            except Exception as err:  # a check that breaks is a check that does not hold
                log.warning("health check %r raised: %s", check.what, err)
                held = False
            if not held:
                failing.append(check.what)
        return failing
