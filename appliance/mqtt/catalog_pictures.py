"""The pictures of the hub's products, on their way from catalog messages to the folder.

A picture is checked and written to the picture folder (store/thumbnails.py) the moment
its product is handled, and from then on only its file name travels: into the product's
row, and, for a snapshot still arriving, into the staged chunk in place of the bytes, so
neither the staging table nor the chunks kept decoded hold pictures. A picture that is no
JPEG or PNG, or too big, is logged and left out: its product applies without one, and bad
bytes from the hub never stop a catalog. A picture that cannot be written now (the disk
refuses it, or it would eat into the room kept for sales) is skipped: its product applies
and keeps the picture it had, until the hub sends the product again.

Files no product refers to any more are collected after an apply that may have left some
(`collect_due`), never while a snapshot is staged: its chunks refer to pictures no row
shows yet. Worker thread only (the catalog sync's).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from msgspec.structs import replace

from appliance.errors import CatalogSyncError
from appliance.mqtt.payloads import MAX_THUMBNAIL_BYTES, ProductPayload
from appliance.settings import DatabaseSettings
from appliance.store.thumbnails import (
    NoRoomForPictureError,
    ThumbnailFolder,
    folder_beside,
    is_picture_name,
)

log = logging.getLogger(__name__)

# In a staged chunk, a picture already in the folder: this mark and its file name (the
# mark alone: a picture not written, the product keeps its own). No JPEG or PNG starts with
# a NUL byte, so a hub's bytes can never pass for one (they are checked as a picture, and
# refused).
STORED = b"\x00stored:"
# Pictures stop this far above the reserve below which the kiosk refuses sales: a catalog
# of pictures never brings the till to "storage low", and the sales have room to spare.
RESERVE_MARGIN = 2


class HubPictures:
    """Stores products' pictures one product at a time; says when unused files may be left."""

    def __init__(self, folder: ThumbnailFolder | None) -> None:
        self.folder = folder
        self.refused = 0  # pictures left out: not a picture, or too big
        self.skipped = 0  # pictures not written: no room above the reserve, or the disk refused
        self._short_of_room = False  # skipping: said once, until a picture is written again
        self._due = False
        self._written_at_collect = 0
        self._synced_at = 0

    @classmethod
    def beside(
        cls, database: str, reserve_bytes: int = DatabaseSettings().reserve_bytes
    ) -> HubPictures:
        """The pictures beside `database` (none in memory), leaving room above `reserve_bytes`."""
        folder = folder_beside(database)
        if folder is None:
            return cls(None)
        keep_free = RESERVE_MARGIN * reserve_bytes
        return cls(ThumbnailFolder(folder, MAX_THUMBNAIL_BYTES, keep_free=keep_free))

    def stored(self, product: ProductPayload) -> str | None:
        """Check and keep a picture: its file name; "" not a picture; None not written now."""
        if self.folder is None:
            return ""
        try:
            name = self.folder.put(product.thumbnail)
        except CatalogSyncError as err:
            self.refused += 1
            log.warning("picture of product %s left out: %s", product.sku, err)
            return ""
        except (NoRoomForPictureError, OSError) as err:
            # Prices must still apply when the disk takes no pictures. The hub sends a
            # product again only when it changes: till then it keeps the picture it had.
            # Tens of thousands of pictures may meet a full disk: one line, not one each.
            self.skipped += 1
            if not self._short_of_room:
                self._short_of_room = True
                log.warning("product pictures not written from %s on, products keep theirs: %s",
                            product.sku, err)  # fmt: skip
            return None
        if self._short_of_room:
            self._short_of_room = False
            log.info("room for product pictures again; %d skipped so far", self.skipped)
        return name

    def stored_or_named(self, product: ProductPayload) -> str | None:
        """Like `stored`, for a staged snapshot: its chunks name pictures stored on arrival."""
        data = product.thumbnail
        if data == STORED:
            return None  # not written on arrival: the product keeps its own
        if data.startswith(STORED):
            name = data[len(STORED) :].decode("ascii", "replace")
            return name if is_picture_name(name) else ""
        return self.stored(product)  # staged by software that kept the bytes

    def named(self, products: list[ProductPayload]) -> list[ProductPayload] | None:
        """The products with each picture stored and replaced by its name; None if none had one."""
        if not any(p.thumbnail for p in products):
            return None
        return [self._named(p) if p.thumbnail else p for p in products]

    def _named(self, product: ProductPayload) -> ProductPayload:
        name = self.stored(product)
        if name is None:
            return replace(product, thumbnail=STORED)  # not written: keeps its own
        return replace(product, thumbnail=STORED + name.encode("ascii") if name else b"")

    def sync(self) -> None:
        """Make the files written since the last call durable, before a row refers to them."""
        if self.folder is not None and self.folder.written != self._synced_at:
            self.folder.sync()
            self._synced_at = self.folder.written

    def may_have_left_some(self) -> None:
        """An apply removed or replaced pictures: collect after it."""
        self._due = True

    @property
    def collect_due(self) -> bool:
        """Whether files may be unused: pictures dropped, or new files since the last collect."""
        return self.folder is not None and (
            self._due or self.folder.written != self._written_at_collect
        )

    def collect(self, in_use: Iterable[str]) -> int:
        """Remove the files not `in_use`; returns how many went."""
        if self.folder is None:
            return 0
        removed = self.folder.collect(in_use)
        self._due = False
        self._written_at_collect = self.folder.written
        return removed
