"""A file-backed slot for download tests whose writes last only once flushed, as on a card.

PowerCutSlot keeps each part twice: `<name>.img`, what the download wrote (the page cache),
and `<name>.durable`, what the last flush() put on the card. `power_cut()` brings every part
back to its durable bytes, so a test can cut power at any point and resume from whatever
progress was recorded. It speaks the slot writer protocol (open_part, read_part, flush).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

PIECE = 64 * 1024


class PowerCutSlot:
    """Part files in `root`; what is not flushed is lost by `power_cut()`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.flushes = 0
        self.opened: list[str] = []  # part names, in the order open_part was called

    def image(self, name: str) -> Path:
        """The part as written so far, flushed or not."""
        return self.root / f"{name}.img"

    def durable(self, name: str) -> bytes:
        """The part's bytes as of the last flush."""
        path = self.root / f"{name}.durable"
        return path.read_bytes() if path.exists() else b""

    def open_part(self, name: str, size: int) -> BinaryIO:
        """The part read-write, `size` bytes long, keeping what an earlier run wrote."""
        path = self.image(name)
        if not path.exists():
            path.write_bytes(b"")
        self.opened.append(name)
        handle = path.open("r+b")
        handle.truncate(size)
        return handle

    def read_part(self, name: str, size: int) -> Iterator[bytes]:
        """The first `size` bytes of the part, in pieces."""
        with self.image(name).open("rb") as handle:
            while size > 0 and (piece := handle.read(min(PIECE, size))):
                size -= len(piece)
                yield piece

    def flush(self) -> None:
        """Make every part's current file content durable."""
        self.flushes += 1
        for path in self.root.glob("*.img"):
            shutil.copyfile(path, path.with_suffix(".durable"))

    def power_cut(self) -> None:
        """Lose whatever was written since the last flush."""
        for path in self.root.glob("*.img"):
            durable = path.with_suffix(".durable")
            if durable.exists():
                shutil.copyfile(durable, path)
            else:
                path.unlink()
