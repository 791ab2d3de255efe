"""Product pictures on the data partition: one file per picture, named by its content.

A picture the hub sends is checked (a JPEG or PNG that Pillow decodes, no bigger than the
limit, at most MAX_EDGE pixels a side) and written once as `<sha256>.jpg` or `<sha256>.png`
in the folder beside the database; products refer to it by that file name, so two products
with the same picture share one file and a picture sent again is not written again. Files
no product refers to any more are removed by `collect`. Nothing here keeps a picture's
bytes: the kiosk reads them from disk when a row shows one. Pictures never take the room
kept free for sales: a folder made with `keep_free` refuses a write that would leave less.

Not thread-safe: one thread (the catalog sync's worker) writes and collects; any thread
may build paths. Paths of single pictures are plain strings: pathlib interns every part of
every path it parses, and thousands of picture names would stay in that table for good.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from appliance.errors import CatalogSyncError, StoreError

log = logging.getLogger(__name__)

FOLDER_NAME = "thumbnails"
MAX_BYTES = 48 * 1024  # the protocol's limit (ProductPayload.thumbnail)
# A thumbnail is sized for a screen. The limit also stops a small file that declares a huge
# image (a decompression bomb fits in 48 KiB) from ever being decoded, here or on screen.
MAX_EDGE = 1024
_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png"}  # MPO: a camera's JPEG
_CODES = {".jpg": b"j", ".png": b"p"}  # a suffix in one byte, for the in-memory catalog
_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png)$")
_TEMP_SUFFIX = ".tmp"
# Decoded at an eighth of their size (JPEG's DCT scaling): every byte is still read, so a
# truncated or corrupt file is refused, for little CPU and memory.
_CHECK_EDGE = 64


class NoRoomForPictureError(StoreError):
    """Writing a picture would leave less free space than is kept for sales."""


def free_bytes(folder: Path) -> int:
    """The space free to the appliance on the partition of `folder` (or of its parent)."""
    where = folder if folder.is_dir() else folder.parent
    stat = os.statvfs(where)
    return stat.f_bavail * stat.f_frsize  # as the storage watch counts it


def _fsync_directory(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def folder_beside(database: str | Path) -> Path | None:
    """The picture folder of the database at `database`; None for an in-memory database."""
    if str(database) in ("", ":memory:"):
        return None
    return Path(database).parent / FOLDER_NAME


def picture_path(folder: Path, name: str) -> str:
    """The path of the picture file `name` in `folder`, as a string (see the module)."""
    return os.path.join(folder, name)


def is_picture_name(name: str) -> bool:
    """Whether `name` is a picture's file name as this module makes them."""
    return bool(_NAME.match(name))


def pack_name(name: str) -> bytes:
    """A picture's file name in 33 bytes (its digest and a format byte); b"" for none."""
    if not name:
        return b""
    digest, suffix = name[:64], name[64:]
    return bytes.fromhex(digest) + _CODES[suffix]


def unpack_name(packed: bytes) -> str:
    """The file name `pack_name` made `packed` from ("" for b"")."""
    if not packed:
        return ""
    return packed[:32].hex() + (".jpg" if packed[32:] == b"j" else ".png")


def picture_name(data: bytes, max_bytes: int = MAX_BYTES) -> str:
    """The file name of a picture, once it proved to be one; CatalogSyncError if it is not."""
    return _digest(data, max_bytes) + _checked_suffix(data)


def _digest(data: bytes, max_bytes: int) -> str:
    if not data:
        raise CatalogSyncError("empty picture")
    if len(data) > max_bytes:
        raise CatalogSyncError(f"picture of {len(data)} bytes, more than {max_bytes}")
    return hashlib.sha256(data).hexdigest()


def _checked_suffix(data: bytes) -> str:
    from PIL import Image  # only a device that receives pictures pays for Pillow

    try:
        with Image.open(io.BytesIO(data), formats=("JPEG", "PNG")) as image:
            width, height = image.size
            if not (0 < width <= MAX_EDGE and 0 < height <= MAX_EDGE):
                raise CatalogSyncError(f"picture of {width}x{height} pixels")
            image.draft("RGB", (_CHECK_EDGE, _CHECK_EDGE))
            image.load()
            return _SUFFIXES[str(image.format)]
    except CatalogSyncError:
        raise
    # Pillow meets corrupt input with many kinds of error (OSError, SyntaxError, ValueError,
    # struct.error, EOFError...): whatever the bytes, the answer is "not a picture".
    except Exception as err:
        raise CatalogSyncError(f"not a JPEG or PNG picture: {err}") from err


class ThumbnailFolder:
    """The folder of product pictures, each file named by its content (see the module)."""

    def __init__(
        self,
        folder: Path,
        max_bytes: int = MAX_BYTES,
        *,
        keep_free: int = 0,
        free: Callable[[Path], int] = free_bytes,
    ) -> None:
        self.folder = folder
        self._max_bytes = max_bytes
        self._keep_free = keep_free  # bytes a write must leave free on the partition
        self._free = free
        self.written = 0  # files written since this object was made

    def path(self, name: str) -> str:
        """Where the picture called `name` is (whether or not it is there)."""
        return picture_path(self.folder, name)

    def put(self, data: bytes) -> str:
        """Check a picture and write it unless it is there; returns its file name.

        CatalogSyncError when `data` is no picture; NoRoomForPictureError when writing it would
        leave less than `keep_free` bytes free; OSError when the disk refuses the write.
        A new file is durable (written to a temporary file, fsync'ed, renamed) before the
        name is returned, so a product row that refers to it never outlives its content.
        """
        digest = _digest(data, self._max_bytes)
        for suffix in _CODES:
            if os.path.exists(self.path(digest + suffix)):
                return digest + suffix  # checked when it was written: a picture sent again
        name = digest + _checked_suffix(data)
        if self._keep_free:
            free = self._free(self.folder)
            if free - len(data) < self._keep_free:
                raise NoRoomForPictureError(f"{free} bytes free, {self._keep_free} kept for sales")
        if not self.folder.is_dir():
            self.folder.mkdir(parents=True, exist_ok=True)
            _fsync_directory(self.folder.parent)  # the folder's own name, before files in it
        temporary = self.path(f".{name}.{os.getpid()}{_TEMP_SUFFIX}")
        try:
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path(name))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        self.written += 1
        return name

    def sync(self) -> None:
        """Make the names of the files written so far durable (fsync the folder); once a batch."""
        if self.folder.is_dir():
            _fsync_directory(self.folder)

    def names(self) -> set[str]:
        """The pictures in the folder."""
        if not self.folder.is_dir():
            return set()
        with os.scandir(self.folder) as entries:
            return {entry.name for entry in entries if is_picture_name(entry.name)}

    def collect(self, keep: Iterable[str]) -> int:
        """Remove every picture not in `keep`, and files a crash left half-written; how many."""
        if not self.folder.is_dir():
            return 0
        wanted = set(keep)
        removed = 0
        with os.scandir(self.folder) as entries:
            gone = [
                entry.name
                for entry in entries
                if (is_picture_name(entry.name) and entry.name not in wanted)
                or entry.name.endswith(_TEMP_SUFFIX)
            ]
        for name in gone:
            try:
                os.unlink(self.path(name))
            except FileNotFoundError:
                continue
            removed += 1
        if removed:
            log.info("%d product picture(s) no product shows any more removed", removed)
        return removed
