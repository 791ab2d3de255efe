"""Wrong-PIN lockout: after a few wrong PINs in a row, no PIN is checked for a while."""

from __future__ import annotations

import math

from appliance.core.clock import Clock, SystemClock

MAX_WRONG_PINS = 5
LOCKOUT_SECONDS = 30.0


class PinLockout:
    """Counts wrong PINs in a row; the `tries`-th locks PIN entry for `seconds`."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        tries: int = MAX_WRONG_PINS,
        seconds: float = LOCKOUT_SECONDS,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.tries = tries
        self.seconds = seconds
        self._wrong = 0
        self._until = 0.0

    @property
    def locked(self) -> bool:
        """True while PINs are refused."""
        return self.remaining() > 0

    def remaining(self) -> int:
        """Whole seconds until PINs are checked again (0 when not locked)."""
        return max(0, math.ceil(self._until - self.clock.monotonic()))

    def failed(self) -> bool:
        """A wrong PIN; True when it starts a lockout."""
        self._wrong += 1
        if self._wrong >= self.tries:
            self._wrong = 0
            self._until = self.clock.monotonic() + self.seconds
            return True
        return False

    def succeeded(self) -> None:
        """A right PIN (or badge): the count starts again."""
        self._wrong = 0
