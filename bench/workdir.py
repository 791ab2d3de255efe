"""Scratch folders for benchmark databases, and which filesystem they are on."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def scratch_dir(parent: Path) -> Iterator[Path]:
    """A fresh folder under `parent` (the same disk as the results), removed afterwards."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="scratch-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def filesystem_of(path: Path) -> dict[str, str]:
    """The mount (device, mount point, type) holding `path`, from /proc/mounts."""
    target = str(path.resolve())
    best = {"device": "?", "mount_point": "/", "type": "?"}
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        device, mount_point, fs_type = line.split()[:3]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best["mount_point"]):
            best = {"device": device, "mount_point": mount_point, "type": fs_type}
    return best


def describe_environment(scratch: Path) -> dict[str, Any]:
    """Machine, interpreter and storage facts that explain the numbers."""
    tmp = Path(tempfile.gettempdir())
    scratch_fs = filesystem_of(scratch)
    return {
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "scratch_dir": str(scratch),
        "scratch_filesystem": scratch_fs,
        "tmp_filesystem": filesystem_of(tmp),
        "scratch_is_tmpfs": scratch_fs["type"] in ("tmpfs", "ramfs"),
    }


@contextmanager
def quiet_drivers() -> Iterator[None]:
    """Adapters log "offline (closed)" as each block closes them: not bench output."""
    logger = logging.getLogger("appliance.drivers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
