"""Product pictures: checked with Pillow, kept once by their SHA-256, and a thumbnail made.

The original is kept byte for byte (the API gives it back as sent); the devices get only
the thumbnail, a small JPEG that fits the kiosk's product tiles, with the product in
catalog deltas and snapshots (ProductPayload.thumbnail).
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from peewee import Database, chunked, fn
from PIL import Image, ImageOps, UnidentifiedImageError

from appliance.mqtt.payloads import MAX_THUMBNAIL_BYTES
from hub.catalog_records import ProductImage

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a bigger picture is refused before it is decoded (a pixel bomb)
THUMBNAIL_BOX = (160, 160)  # the kiosk's product tile, in pixels
THUMBNAIL_QUALITY = 80
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_LOWEST_QUALITY = 30
_IN_BATCH = 500  # hashes per IN (...) list


@dataclass(frozen=True, slots=True)
class Picture:
    """A picture ready to keep: its hash, type, bytes, thumbnail and size in pixels."""

    sha256: str
    content_type: str
    original: bytes
    thumbnail: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class PictureInfo:
    """What the API says about a kept picture (its bytes apart)."""

    sha256: str
    content_type: str
    size: int  # bytes of the original
    width: int
    height: int
    thumbnail_size: int


def image_format(data: bytes) -> str | None:
    """The format Pillow reads in these bytes ("JPEG", "GIF", ...), or None: not a picture.

    Reads the header only.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def read_picture(data: bytes) -> Picture:
    """Decode a JPEG, PNG or WebP picture and make its thumbnail; ValueError says what is wrong."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = CONTENT_TYPES.get(image.format or "")
                if kind is None:
                    raise ValueError(f"a {image.format} picture: send JPEG, PNG or WebP")
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ValueError(f"{width}x{height} pixels is more than {MAX_PIXELS:,} pixels")
                thumbnail = _thumbnail(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError("not a picture Pillow can read") from None
    except OSError as err:  # truncated or corrupt data
        raise ValueError(f"the picture cannot be decoded: {err}") from None
    return Picture(hashlib.sha256(data).hexdigest(), kind, data, thumbnail, width, height)


def _thumbnail(image: Image.Image) -> bytes:
    """A JPEG of the picture fitted into THUMBNAIL_BOX, under the payload's byte limit."""
    if image.format == "JPEG":
        image.draft("RGB", (THUMBNAIL_BOX[0] * 2, THUMBNAIL_BOX[1] * 2))  # decode less
    upright = ImageOps.exif_transpose(image)
    upright.thumbnail(THUMBNAIL_BOX, Image.Resampling.LANCZOS)
    if upright.mode in ("RGBA", "LA", "P", "PA"):
        # JPEG has no transparency: what is see-through shows the tile's white.
        rgba = upright.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        upright = flat
    elif upright.mode != "RGB":
        upright = upright.convert("RGB")
    quality = THUMBNAIL_QUALITY
    while True:
        out = io.BytesIO()
        upright.save(out, "JPEG", quality=quality, optimize=True)
        data = out.getvalue()
        # 160x160 at quality 80 is a few KiB; only noise comes near the limit.
        if len(data) <= MAX_THUMBNAIL_BYTES or quality <= _LOWEST_QUALITY:
            break
        quality -= 10
    if len(data) > MAX_THUMBNAIL_BYTES:
        raise ValueError("the picture's thumbnail stays over the devices' limit")
    return data


def keep_picture(db: Database, picture: Picture, now: datetime) -> None:
    """Store the picture unless it is already kept (same bytes, same hash)."""
    ProductImage.insert(
        sha256=picture.sha256,
        content_type=picture.content_type,
        original=picture.original,
        thumbnail=picture.thumbnail,
        width=picture.width,
        height=picture.height,
        created_at=now,
    ).on_conflict_ignore().execute(db)


def is_kept(db: Database, sha256: str) -> bool:
    """Whether a picture with this hash is stored."""
    query = ProductImage.select(ProductImage.sha256).where(ProductImage.sha256 == sha256)
    return bool(query.tuples().execute(db))


def picture_infos(db: Database, shas: Collection[str]) -> dict[str, PictureInfo]:
    """What is known of these kept pictures, by hash, without reading their bytes."""
    found: dict[str, PictureInfo] = {}
    for batch in chunked(sorted(shas), _IN_BATCH):
        query = ProductImage.select(
            ProductImage.sha256,
            ProductImage.content_type,
            fn.LENGTH(ProductImage.original),
            ProductImage.width,
            ProductImage.height,
            fn.LENGTH(ProductImage.thumbnail),
        ).where(ProductImage.sha256.in_(batch))
        for sha, kind, size, width, height, thumb in query.tuples().execute(db):
            found[sha] = PictureInfo(sha, kind, int(size), int(width), int(height), int(thumb))
    return found


def picture_bytes(
    db: Database, sha256: str, which: Literal["original", "thumbnail"]
) -> tuple[str, bytes] | None:
    """A kept picture's content type and bytes: the original, or the thumbnail (JPEG)."""
    column = ProductImage.original if which == "original" else ProductImage.thumbnail
    query = ProductImage.select(ProductImage.content_type, column).where(
        ProductImage.sha256 == sha256
    )
    found = query.tuples().execute(db)
    if not found:
        return None
    kind, data = found[0]
    return (str(kind) if which == "original" else "image/jpeg"), bytes(data)
