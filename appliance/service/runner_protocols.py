"""What a main loop calls between events."""

from __future__ import annotations

from typing import Protocol


class Checkpointer(Protocol):
    """Does housekeeping while the till is idle."""

    def idle(self) -> None:
        """Called when a tick passed without events."""
        ...
