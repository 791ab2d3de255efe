"""Print jobs: one receipt or report on its way to paper, under one id across every retry.

The print queue (drivers) keeps its jobs behind the PrintJobStore port, so a receipt
queued while the printer is out of paper survives a restart; the store implements it in
SQLite, MemoryPrintJobs here keeps them for the life of the process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, Protocol

from appliance.core.receipt import Receipt

# queued: waits for the printer (safe to send). printing: being sent now. printed: the
# printer confirmed it. uncertain: the bytes went out but the answer was lost ("may have
# printed": staff reprint a COPY or mark it done). failed: cannot be printed, or staff
# judged it did not print and reprinted it.
PrintJobState = Literal["queued", "printing", "printed", "uncertain", "failed"]
OPEN_STATES: tuple[PrintJobState, ...] = ("queued", "printing")


@dataclass(frozen=True, slots=True)
class PrintJob:
    """One paper to print; `attempts` counts how often it was handed to the printer."""

    id: int
    printer: str
    receipt: Receipt
    state: PrintJobState = "queued"
    attempts: int = 0
    reason: str = ""  # why it waits, failed or may have printed
    created_at: str = ""  # UTC ISO
    updated_at: str = ""


class PrintJobStore(Protocol):
    """Where print jobs are kept; every method is thread-safe and may raise StoreError."""

    def add(self, printer: str, receipt: Receipt) -> PrintJob:
        """Keep a new queued job for `printer`; returns it with its id."""
        ...

    def set_state(self, job_id: int, state: PrintJobState, reason: str = "") -> None:
        """Move a job on; "printing" also counts an attempt."""
        ...

    def get(self, job_id: int) -> PrintJob | None:
        """The job, or None when there is no such job."""
        ...

    def unfinished(self, printer: str) -> list[PrintJob]:
        """Jobs of `printer` still queued or printing, oldest first."""
        ...

    def recent(self, limit: int = 50) -> list[PrintJob]:
        """The newest jobs of every printer, newest first."""
        ...


def now_text() -> str:
    """The moment a job changes, as UTC ISO text."""
    return datetime.now(UTC).isoformat()


class MemoryPrintJobs:
    """PrintJobStore for the life of the process (no database, or the database failing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, PrintJob] = {}

    def add(self, printer: str, receipt: Receipt) -> PrintJob:
        """Keep a new queued job."""
        with self._lock:
            # Negative ids never meet the database's, should both hold jobs at once.
            job_id = -1 - len(self._jobs)
            moment = now_text()
            job = PrintJob(job_id, printer, receipt, created_at=moment, updated_at=moment)
            self._jobs[job_id] = job
            return job

    def set_state(self, job_id: int, state: PrintJobState, reason: str = "") -> None:
        """Move a job on."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                attempts = job.attempts + (state == "printing")
                self._jobs[job_id] = replace(
                    job, state=state, reason=reason, attempts=attempts, updated_at=now_text()
                )

    def get(self, job_id: int) -> PrintJob | None:
        """The job, or None."""
        with self._lock:
            return self._jobs.get(job_id)

    def unfinished(self, printer: str) -> list[PrintJob]:
        """Queued or printing jobs of `printer`, oldest first."""
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: -j.id)
            return [j for j in jobs if j.printer == printer and j.state in OPEN_STATES]

    def recent(self, limit: int = 50) -> list[PrintJob]:
        """The newest jobs first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.id)[:limit]
