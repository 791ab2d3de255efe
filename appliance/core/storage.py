"""What the data partition can take: the state that decides whether a new sale may start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from appliance.core.events import Event

# ok: room above the reserve. low: below the reserve, the sale in progress may finish.
# full, read_only, io_error: a write failed for that reason; nothing new is written.
StorageState = Literal["ok", "low", "full", "read_only", "io_error"]

MIB = 1024 * 1024

_HEADLINES: dict[StorageState, str] = {
    "ok": "storage ok",
    "low": "storage low: below the reserve, new sales are refused",
    "full": "storage full: the data partition has no room left",
    "read_only": "storage read-only: the data partition was remounted read-only",
    "io_error": "storage failed: the SD card returned an I/O error",
}


@dataclass(frozen=True, slots=True)
class StorageStatus:
    """The data partition as last seen; `usage` names what takes the space, biggest first."""

    state: StorageState = "ok"
    free_bytes: int = 0
    total_bytes: int = 0
    reserve_bytes: int = 0
    detail: str = ""  # the kernel's or SQLite's words for the last failure
    usage: tuple[tuple[str, int], ...] = ()

    @property
    def accepting_sales(self) -> bool:
        """True when a new sale may start."""
        return self.state == "ok"

    @property
    def failed(self) -> bool:
        """True when writes fail, as opposed to running low."""
        return self.state in ("full", "read_only", "io_error")

    def headline(self) -> str:
        """One line for the log, the status screen and the hub."""
        return _HEADLINES[self.state]

    def describe(self) -> str:
        """The headline with the numbers staff need to act on it."""
        parts = [self.headline()]
        if self.total_bytes:
            parts.append(
                f"{self.free_bytes / MIB:.1f} MiB free of {self.total_bytes / MIB:.0f} MiB"
                f" (reserve {self.reserve_bytes / MIB:.0f} MiB)"
            )
        if self.usage:
            used = ", ".join(f"{name} {size / MIB:.1f} MiB" for name, size in self.usage)
            parts.append(f"using it: {used}")
        if self.detail:
            parts.append(self.detail)
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class StorageChanged(Event):
    """The data partition's state changed (posted only on a change, from the storage watch)."""

    status: StorageStatus
