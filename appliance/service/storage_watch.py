"""The data partition watched from its own thread: free space against the reserve, and faults.

The commit path never asks the disk how full it is: this thread looks every few seconds
and the checkout reads the answer from memory. Faults reach it as they happen, from the
database (`fault`, any thread). A fault holds until a probe write succeeds again, so the
appliance comes back by itself once space returns or the card is writable again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from appliance.core.events import EventBus
from appliance.core.storage import StorageChanged, StorageState, StorageStatus
from appliance.store.storage_faults import MOUNTINFO, mount_read_only, storage_fault

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5.0
# Leaving "low" needs this much more than the reserve, so a till hovering at the line does
# not flip between selling and refusing with every sale.
HYSTERESIS = 1.1
PROBE_NAME = ".storage-probe"
USAGE_ENTRIES = 4  # what staff are shown as using the space
# Less than this is no room at all, reserve or not: a commit needs a few pages of WAL.
NO_ROOM_BYTES = 64 * 1024


def folder_usage(folder: Path, limit: int = USAGE_ENTRIES) -> tuple[tuple[str, int], ...]:
    """The biggest entries directly under `folder` by bytes on disk, biggest first."""
    sizes: list[tuple[str, int]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    for entry in entries:
        if entry.name != PROBE_NAME:
            sizes.append((entry.name, _bytes_under(entry)))
    sizes.sort(key=lambda item: item[1], reverse=True)
    return tuple(sizes[:limit])


def _bytes_under(entry: os.DirEntry[str]) -> int:
    """Bytes on disk of a file, or of everything under a folder (not following links)."""
    try:
        if not entry.is_dir(follow_symlinks=False):
            return entry.stat(follow_symlinks=False).st_blocks * 512
        return sum(_bytes_under(child) for child in os.scandir(entry.path))
    except OSError:
        return 0


def probe_write(folder: Path) -> tuple[StorageState, str] | None:
    """Write, sync and remove a small file; None when the disk took it, else why it did not."""
    path = folder / PROBE_NAME
    try:
        with path.open("wb") as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
        path.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):  # read-only: it was never created
            path.unlink(missing_ok=True)  # created before the write failed: leave nothing
        found = storage_fault(err)
        return (found[0], str(err)) if found else ("io_error", str(err))
    return None


class StorageWatch:
    """Keeps `status` current; posts StorageChanged on every change. Thread-safe."""

    def __init__(
        self,
        folder: Path,
        reserve_bytes: int,
        bus: EventBus,
        *,
        interval_seconds: float = INTERVAL_SECONDS,
        statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
        mountinfo: Path = MOUNTINFO,
    ) -> None:
        self.folder = folder
        self.reserve_bytes = reserve_bytes
        self._bus = bus
        self.interval_seconds = interval_seconds
        self._statvfs = statvfs
        self._mountinfo = mountinfo
        self._lock = threading.Lock()
        # One look at the disk at a time: two test writes of one probe file would unlink
        # each other's and call the card failing.
        self._looking = threading.Lock()
        self._status = StorageStatus(reserve_bytes=reserve_bytes)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> StorageStatus:
        """The partition as last seen; read from memory, never from the disk."""
        return self._status

    def start(self) -> None:
        """Look once now (so a start on a full card refuses sales at once), then every interval."""
        self.check()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="storage-watch", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread; safe twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(5)

    def fault(self, state: StorageState, detail: str) -> None:
        """A write failed for `state` (the database's fault listener; any thread)."""
        if state == "io_error" and mount_read_only(self.folder, self._mountinfo):
            state = "read_only"  # the kernel gave up on the card and remounted it: say so
        free, total = self._status.free_bytes, self._status.total_bytes
        with contextlib.suppress(OSError):  # the numbers staff see, as of this failure
            stat = self._statvfs(self.folder)
            free, total = stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize
        with self._lock:
            current = self._status
            if current.state == state and current.detail == detail:
                return
            # A read-only partition also fails with I/O errors: keep the more precise word.
            if current.state == "read_only" and state == "io_error":
                return
            failed = dataclasses.replace(
                current, state=state, detail=detail, free_bytes=free, total_bytes=total
            )
            self._set(failed)
        self._wake.set()  # the thread adds the numbers and what uses the space

    def check(self) -> StorageStatus:
        """Look at the partition once: space, the mount, and whether a fault has cleared."""
        with self._looking:
            return self._look()

    def _look(self) -> StorageStatus:
        try:
            stat = self._statvfs(self.folder)
        except OSError as err:
            found = storage_fault(err)
            self.fault(found[0] if found else "io_error", f"the data folder cannot be read: {err}")
            return self._status
        free = stat.f_bavail * stat.f_frsize
        total = stat.f_blocks * stat.f_frsize
        current = self._status
        state, detail = self._state_for(current, free, stat)
        usage: tuple[tuple[str, int], ...] = ()
        if state != "ok":  # staff are shown what takes the space; looked up once per fault
            usage = current.usage if state == current.state and current.usage else ()
            usage = usage or folder_usage(self.folder)
        with self._lock:
            if self._status is not current and self._status.state != current.state:
                return self._status  # a fault arrived while this look was on the disk
            updated = StorageStatus(state, free, total, self.reserve_bytes, detail, usage)
            self._set(updated)
        return updated

    def _state_for(
        self, current: StorageStatus, free: int, stat: os.statvfs_result
    ) -> tuple[StorageState, str]:
        """The state the partition is in now, with the words that explain a fault."""
        if stat.f_flag & os.ST_RDONLY or mount_read_only(self.folder, self._mountinfo):
            return "read_only", current.detail or "the data partition is mounted read-only"
        if current.failed:
            problem = probe_write(self.folder)
            if problem is not None:
                return problem[0], current.detail or problem[1]
            log.info("storage: a test write succeeded again after %s", current.state)
        if free < NO_ROOM_BYTES:
            return "full", current.detail or "no space left on the data partition"
        limit = self.reserve_bytes * (HYSTERESIS if current.state != "ok" else 1)
        return ("low" if free < limit else "ok"), ""

    def _set(self, status: StorageStatus) -> None:
        """Keep `status` (lock held); log and post it when its state changed."""
        previous, self._status = self._status, status
        if status.state == previous.state:
            return
        if status.state == "ok":
            log.warning("storage back: %s (was %s)", status.describe(), previous.state)
        else:
            log.error("%s", status.describe())
        self._bus.post(StorageChanged(status))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check()
            except Exception:
                # The watch must outlive anything odd on the disk; the next look tries again.
                log.exception("storage check failed")
