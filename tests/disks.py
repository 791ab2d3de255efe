"""Real file systems that fail on cue: a tiny tmpfs that fills up, an ext4 that remounts ro.

Both need root (mount, losetup); under CI a missing part fails the test, elsewhere it skips.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import real_parts


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        real_parts.cannot_run(f"{what} needs root (mount); run the tests as root")


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


class SmallDisk:
    """A tmpfs of a few MiB: fills up for real (ENOSPC, SQLITE_FULL), grows on request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def resize(self, size_kib: int) -> None:
        """Give the file system `size_kib` in all (tmpfs resizes with files open)."""
        _run("mount", "-o", f"remount,size={size_kib}k", str(self.path))

    def fill(self, leave_bytes: int = 0) -> Path:
        """Write a filler file until only `leave_bytes` stay free; returns the filler."""
        filler = self.path / "filler"
        free = os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize
        with filler.open("ab") as out:
            out.write(b"\0" * max(0, free - leave_bytes))
        return filler


@contextmanager
def small_tmpfs(path: Path, size_kib: int) -> Iterator[SmallDisk]:
    """Mount a tmpfs of `size_kib` at `path` for the test; unmounted after it."""
    _need_root("a small tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path))
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


class LoopExt4:
    """ext4 with errors=remount-ro on a loop device, as the image mounts its data partition."""

    def __init__(self, image: Path, mount_point: Path) -> None:
        self.image = image
        self.mount_point = mount_point
        self.device = ""

    def attach_and_mount(self) -> None:
        """Attach the image to a free loop device and mount it."""
        self.device = _run("losetup", "--find", "--show", str(self.image))
        _run("mount", "-o", "errors=remount-ro", self.device, str(self.mount_point))

    def fail(self) -> None:
        """Make the kernel take an ext4 error: it aborts the journal and remounts read-only."""
        name = Path(self.device).name
        Path(f"/sys/fs/ext4/{name}/trigger_fs_error").write_text("test: simulated SD error\n")

    def repair(self) -> None:
        """What a reboot does: unmount, fsck, mount again (every file must be closed)."""
        _run("umount", str(self.mount_point))
        subprocess.run(["e2fsck", "-fy", self.device], check=False, capture_output=True)
        _run("mount", "-o", "errors=remount-ro", self.device, str(self.mount_point))

    def detach(self) -> None:
        """Unmount and free the loop device; safe twice."""
        if self.device:
            subprocess.run(["umount", "-l", str(self.mount_point)], check=False)
            subprocess.run(["losetup", "-d", self.device], check=False)
            self.device = ""


@contextmanager
def loop_ext4(work: Path, size_mib: int = 16) -> Iterator[LoopExt4]:
    """An ext4 file system mounted at work/data (errors=remount-ro); detached after the test."""
    _need_root("an ext4 loop mount")
    real_parts.binary("mkfs.ext4", "e2fsprogs")
    real_parts.binary("losetup", "mount")
    image = work / "data.ext4"
    with image.open("wb") as out:
        out.truncate(size_mib * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-F", str(image))
    mount_point = work / "data"
    mount_point.mkdir(parents=True, exist_ok=True)
    disk = LoopExt4(image, mount_point)
    try:
        disk.attach_and_mount()
    except subprocess.CalledProcessError as err:
        real_parts.cannot_run(f"no loop device for an ext4 test file system: {err.stderr}")
    try:
        yield disk
    finally:
        disk.detach()
