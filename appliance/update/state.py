"""The update job's durable state: one JSON file in the data folder, replaced atomically.

It outlives reboots and power cuts: the start-up step reads it before the store opens to
tell a try boot, a commit and a rollback apart. Every change is written whole to a temp
file, fsynced, renamed over the old one, and the folder fsynced, so a reader finds either
the old state or the new one; a copy written the same way after it (state.json.prev)
stands in for a damaged file, which would otherwise forget a snapshot and refused versions.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from appliance.update.slots import fsync_dir

log = logging.getLogger(__name__)

Phase = Literal[
    "idle",
    "offered",
    "downloading",
    "downloaded",
    "trying",
    "gate_failed",
    "committed",
    "rolled_back",
    "rejected",
]
# A job in one of these is in hand: a new update command waits until it ends. A failed
# gate is in hand until the old slot starts and restores the snapshot.
ACTIVE: frozenset[Phase] = frozenset(
    {"offered", "downloading", "downloaded", "trying", "gate_failed"}
)
Count = Annotated[int, msgspec.Meta(ge=0)]


class UpdateRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Where the update job stands, and the versions that rolled back here."""

    job: str = ""  # the update command's id
    version: str = ""
    url: str = ""
    manifest: str = ""  # the signed manifest's exact text
    signature: str = ""  # base64
    phase: Phase = "idle"
    chunks_done: Count = 0  # chunks on the card (fsynced before this was written)
    done: Count = 0  # payload bytes those chunks make
    total: Count = 0
    tried_from: str = ""  # the slot the try left from
    tried_from_version: str = ""
    snapshot: str = ""  # the database copy taken before the try
    gate_starts: Count = 0  # starts of the try boot: a slot that keeps restarting fails
    reason: str = ""  # why it rolled back, failed the gate or was rejected
    # Versions that rolled back here: never tried again on their own.
    refused: tuple[str, ...] = ()


class StateFile:
    """Reads and replaces the state file; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()

    @property
    def copy_path(self) -> Path:
        """The copy written after each save: read when the state file is damaged or gone."""
        return self.path.with_name(self.path.name + ".prev")

    def load(self) -> UpdateRecord:
        """The recorded state, else its copy's; neither readable counts as no job (logged)."""
        with self._lock:
            for path in (self.path, self.copy_path):
                if (record := _read(path)) is not None:
                    return record
        return UpdateRecord()

    def save(self, record: UpdateRecord) -> UpdateRecord:
        """Replace the state with `record`, durably, then its copy; returns it."""
        data = msgspec.json.encode(record)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A damaged state would forget the snapshot to restore and the refused versions.
            for path in (self.path, self.copy_path):
                temp = path.with_name(path.name + ".new")
                with open(temp, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, path)
            fsync_dir(self.path.parent)
        return record

    def change(self, **changes: object) -> UpdateRecord:
        """Replace some fields of the recorded state; returns the new state."""
        with self._lock:  # re-entrant: read and write as one step
            return self.save(msgspec.structs.replace(self.load(), **changes))


def _read(path: Path) -> UpdateRecord | None:
    """The record in `path`; None when it is missing or unreadable (logged)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=UpdateRecord)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as err:
        # Written only whole (renamed into place), so this is damage, not a torn write.
        log.error("update state %s unreadable: %s", path, err)
        return None
