"""Presenting the same item to a scanner again, as a hand does: after the hold gap.

A scanner counts a code read again within `hold_gap_ms` of its previous read as the same
item still in the field. A test that scans an item twice must therefore wait that long
after the first read, which it knows happened once the line is in the cart.
"""

from __future__ import annotations

import time

from appliance.device_settings import HOLD_GAP_MS


class Presenter:
    """Remembers when each code was last seen taken; `ready(code)` waits out the hold gap."""

    def __init__(self, hold_gap_ms: int = HOLD_GAP_MS) -> None:
        self._gap = hold_gap_ms / 1000
        self._taken: dict[str, float] = {}

    def ready(self, code: str) -> None:
        """Before presenting `code`: wait until a read now is a new presentation."""
        taken = self._taken.get(code)
        if taken is not None:
            time.sleep(max(0.0, taken + self._gap - time.monotonic()))

    def taken(self, code: str) -> None:
        """`code` is in the cart now: its read happened before this moment."""
        self._taken[code] = time.monotonic()
