"""What one hub worker counts: messages handled, malformed and unhandled, per device too.

The worker thread counts and any thread may read; `appliance-hub status` reads the counters
the worker writes to the database (hub/worker_stats.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

from hub.worker_stats import PER_DEVICE

MAX_DEVICES_COUNTED = 1000  # per-device tallies; any further device counts under "*"


@dataclass(frozen=True, slots=True)
class HubStats:
    """Counters of one worker since it started."""

    received: int = 0
    batches: int = 0
    acks: int = 0
    journal_batches: int = 0
    journal_acks: int = 0
    statuses: int = 0
    stale_wills: int = 0
    telemetry: int = 0
    commands: int = 0  # commands the fleet sent, recorded as jobs
    command_updates: int = 0  # job states devices reported
    configs: int = 0  # desired and reported configurations
    logs: int = 0  # collect_logs results
    malformed: int = 0  # undecodable, wrong shape, newer schema, wrong device
    unhandled: int = 0  # a topic this worker has no handler for
    failures: int = 0  # a handler raised (database down, ...); the device will resend
    db_reconnects: int = 0  # the database connection was found dead and opened again


class WorkerCounters:
    """HubStats as they grow, plus malformed and unhandled messages per device."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {f.name: 0 for f in fields(HubStats)}  # under _lock
        self._per_device: dict[str, dict[str, int]] = {name: {} for name in PER_DEVICE}

    def count(self, name: str) -> None:
        """One more of `name` (a HubStats field)."""
        with self._lock:
            self._counts[name] += 1

    def count_for(self, device: str, name: str, per_device: str) -> int:
        """Count a message under `name` and its device; returns the device's count so far."""
        with self._lock:
            self._counts[name] += 1
            tally = self._per_device[per_device]
            # A flood of made-up device ids must not grow the tally without end.
            key = device if device in tally or len(tally) < MAX_DEVICES_COUNTED else "*"
            tally[key] = tally.get(key, 0) + 1
            return tally[key]

    def stats(self) -> HubStats:
        """A snapshot of the counters."""
        with self._lock:
            return HubStats(**self._counts)

    def per_device(self, name: str) -> dict[str, int]:
        """A snapshot of a per-device tally: `malformed_by_device` or `unhandled_by_device`."""
        with self._lock:
            return dict(self._per_device[name])

    def as_record(self) -> dict[str, object]:
        """Every counter and tally, as the worker writes them for `appliance-hub status`."""
        with self._lock:
            return {
                **self._counts,
                **{name: dict(tally) for name, tally in self._per_device.items()},
            }
