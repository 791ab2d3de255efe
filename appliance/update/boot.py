"""The update's start-up step, run before the store database opens.

From the recorded phase and what the firmware booted, one of:
- the try boot of a new slot: "gating" (sales wait; the Updater runs the health gate);
- the same try boot again after its gate failed: "reboot" (the reboot did not happen);
- the new slot running as the default: the commit was written before a power cut, so it
  is finished now;
- the old slot back (the try failed, or never started): the database snapshot taken
  before the try is put back over the database, and the version is refused from then on.
The snapshot is the choice for the database across versions: the try boot sells nothing
before its commit, so putting the snapshot back loses no sale (rows the hub had
acknowledged come back and are sent again; the hub takes them once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from appliance.errors import UpdateError
from appliance.update.slots import SlotBackend, fsync_dir
from appliance.update.state import StateFile, UpdateRecord

log = logging.getLogger(__name__)

BootMode = Literal["normal", "gating", "reboot"]
# A try boot whose service starts this often without passing the gate is not going to.
MAX_GATE_STARTS = 3
SNAPSHOT_NAME = "snapshot.db"
# Given the databases a restore replaces, reads what must survive it; the writer it
# returns puts that into the restored copy (appliance.store.carry_over.carry_across_restore).
Keep = Callable[[Sequence[Path]], Callable[[Path], None]]


class UpdateBoot:
    """Decides what this start is to the update, and finishes a commit or a rollback."""

    def __init__(self, state: StateFile, slots: SlotBackend, database: Path, keep: Keep) -> None:
        self.state = state
        self.slots = slots
        self.database = database
        self._keep = keep
        self.mode: BootMode = "normal"

    @property
    def snapshot_path(self) -> Path:
        """Where the database is copied before a try."""
        return self.state.path.parent / SNAPSHOT_NAME

    def start(self) -> BootMode:
        """Run once at start-up, before the database opens; returns (and keeps) the mode."""
        record = self.state.load()
        if record.phase not in ("trying", "gate_failed"):
            if self.slots.trying():
                # No try is in hand, so nothing would gate or commit this one: the default.
                log.error("a try boot with no update trying (%s): rebooting", record.phase)
                self.mode = "reboot"
                return self.mode
            self.mode = "normal"
            return self.mode
        booted = self.slots.booted()
        if booted == record.tried_from:
            self._roll_back(record)
            self.mode = "normal"
        elif not self.slots.trying():
            # The new slot is the default, so the commit was written: finish recording it.
            log.warning("update %s: committed before a restart; finishing", record.version)
            self._committed(record)
            self.mode = "normal"
        elif record.phase == "gate_failed":
            log.error("update %s: the gate failed and the reboot did not happen", record.version)
            self.mode = "reboot"
        elif record.gate_starts >= MAX_GATE_STARTS:
            self.state.change(
                phase="gate_failed",
                reason=f"the new slot's service started {record.gate_starts + 1} times",
            )
            self.mode = "reboot"
        else:
            self.state.change(gate_starts=record.gate_starts + 1)
            log.warning("update %s: the try boot; sales wait for the health gate", record.version)
            self.mode = "gating"
        return self.mode

    def commit(self) -> UpdateRecord:
        """The gate passed: the booted slot becomes the default; the snapshot goes."""
        self.slots.commit()
        return self._committed(self.state.load())

    def fail(self, reason: str) -> None:
        """The gate failed: record why, and reboot (the old slot comes back)."""
        self.state.change(phase="gate_failed", reason=reason)
        log.error("update: the new slot is not healthy (%s); rebooting to the old one", reason)
        self.slots.reboot()

    def _committed(self, record: UpdateRecord) -> UpdateRecord:
        record = self.state.change(phase="committed", reason="", snapshot="")
        self.snapshot_path.unlink(missing_ok=True)
        log.info("update %s committed", record.version)
        return record

    def _roll_back(self, record: UpdateRecord) -> None:
        if record.phase == "gate_failed":
            reason = f"the new slot never became healthy: {record.reason}"
        else:
            reason = "the new slot did not start"
        snapshot = Path(record.snapshot) if record.snapshot else None
        if snapshot is not None and snapshot.exists():
            restore_snapshot(snapshot, self.database, self._keep)
        elif snapshot is not None:
            log.error(
                "update %s: snapshot %s is gone; the database stays", record.version, snapshot
            )
        refused = record.refused + (() if record.version in record.refused else (record.version,))
        self.state.change(phase="rolled_back", reason=reason, refused=refused, snapshot="")
        if snapshot is not None:
            snapshot.unlink(missing_ok=True)
        log.error("update %s rolled back: %s", record.version, reason)


def take_snapshot(database: Path, target: Path) -> None:
    """Copy the live database to `target` with SQLite's backup API, durably."""
    temp = target.with_name(target.name + ".new")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp.unlink(missing_ok=True)
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            copy = sqlite3.connect(temp)
            try:
                source.backup(copy)
            finally:
                copy.close()
        finally:
            source.close()
        with open(temp, "rb+") as out:
            os.fsync(out.fileno())
        os.replace(temp, target)
        fsync_dir(target.parent)
    except (OSError, sqlite3.Error) as err:
        with contextlib.suppress(OSError):  # the cause, not the clean-up, is the news
            temp.unlink(missing_ok=True)
        raise UpdateError(f"cannot snapshot the database: {err}") from err


def restore_snapshot(snapshot: Path, database: Path, keep: Keep) -> None:
    """Put `snapshot` in place of the (closed) database, dropping the newer slot's WAL.

    What must never go back is carried over from the database being replaced by `keep`
    (appliance.store.carry_over): the hub session counter (a will of a reused session
    would be taken for the live one) and the seen command ids (a replayed command would
    run again).
    """
    temp = database.with_name(database.name + ".restore")
    # A cut after the database's WAL went but before the rename left a whole copy here.
    carry = keep([database, temp])
    for leftover in _companions(temp):
        leftover.unlink(missing_ok=True)  # a journal beside a fresh copy would be replayed
    with open(snapshot, "rb") as source, open(temp, "wb") as out:
        while piece := source.read(1024 * 1024):
            out.write(piece)
        out.flush()
        os.fsync(out.fileno())
    carry(temp)
    with open(temp, "rb+") as out:
        os.fsync(out.fileno())
    # The WAL and its index belong to the database being replaced: replayed over the
    # snapshot they would corrupt it. A cut from here on repeats the restore at next start.
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    os.replace(temp, database)
    fsync_dir(database.parent)
    log.warning("database %s restored from %s", database, snapshot)


def _companions(database: Path) -> tuple[Path, ...]:
    """The files SQLite keeps beside a database."""
    return tuple(Path(f"{database}{suffix}") for suffix in ("-journal", "-wal", "-shm"))
