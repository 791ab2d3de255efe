"""An update bundle's manifest: what the payload is, where each chunk lies, and its signature.

A bundle (appliance/update/bundle.py) is one uncompressed tar holding `manifest.json`,
`manifest.sig` and `payload.bin`. The payload is the new slot's partition images (`boot`,
the FAT boot partition, and `root`, the root file system), each cut into chunks of
CHUNK_SIZE bytes that are xz-compressed one by one and laid end to end. Every chunk
stands alone, so a download resumes at the first chunk not yet written (a range request)
without the compressed bytes ever being kept, and each chunk is checked against its
SHA-256 before a byte of it reaches the slot.

The signature is Ed25519 by the release key (not the fleet command key) over the exact
bytes of `manifest.json`: a verifier checks those bytes first and only then decodes them.
The manifest binds every chunk's hash and every image's hash, so a verified manifest
vouches for the whole payload.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import UpdateRejectedError

FORMAT = 1
CHUNK_SIZE = 4 * 1024 * 1024  # bytes of image per chunk, before compression
MAX_MANIFEST = 4 * 1024 * 1024  # bytes; the image's package list makes most of it

Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Size = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
PartName = Literal["boot", "root"]
_VERSION = re.compile(r"^(\d+)(\.\d+){0,3}$")


class Chunk(msgspec.Struct, frozen=True, kw_only=True):
    """One xz-compressed piece of a part: where it lies in the payload, and its hash."""

    offset: Size  # in payload.bin
    size: Size  # compressed bytes
    sha256: Sha256  # of the compressed bytes
    image_size: Size  # bytes it decompresses to (CHUNK_SIZE but for a part's last)


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """A partition image of the slot: its size, its hash, and its chunks in order."""

    name: PartName
    size: Size  # bytes of the image
    sha256: Sha256  # of the whole image, checked again by reading the slot back
    chunks: list[Chunk]


class BundleManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a release's bundle carries, signed by the release key."""

    format: Literal[1] = 1  # FORMAT
    version: str  # the release, dotted numbers ("2026.12.1"), compared numerically
    image_version: str  # the build's own version (git describe), as in the image
    min_version: str  # the oldest release this bundle may update from
    created_at: str  # RFC 3339
    payload_size: Size
    payload_sha256: Sha256  # of payload.bin as a whole (the hub checks it when adding)
    parts: list[Part]
    image_manifest: str = ""  # every Debian package and wheel in the image, with versions


def release_key(text: str) -> tuple[int, ...]:
    """A release version as numbers to compare ("2026.12.1" → (2026, 12, 1)).

    Raises UpdateRejectedError for anything but one to four dotted non-negative integers.
    """
    if not _VERSION.match(text):
        raise UpdateRejectedError(
            f"{text!r} is not a release version (dotted numbers, e.g. 2026.12.1)"
        )
    return tuple(int(part) for part in text.split("."))


def sign_manifest(manifest_json: bytes, key: Ed25519PrivateKey) -> bytes:
    """The 64-byte release signature of the manifest's exact bytes."""
    return key.sign(manifest_json)


def verify_manifest(
    manifest_json: bytes, signature: bytes, key: Ed25519PublicKey
) -> BundleManifest:
    """The manifest, once its signature by the release key holds and it reads as one.

    UpdateRejectedError says why not: a bad signature, a manifest too large or malformed, or
    chunks that do not tile the payload.
    """
    if len(manifest_json) > MAX_MANIFEST:
        raise UpdateRejectedError(
            f"the manifest is {len(manifest_json)} bytes (at most {MAX_MANIFEST})"
        )
    try:
        key.verify(signature, manifest_json)
    except InvalidSignature:
        raise UpdateRejectedError("the bundle's signature is not the release key's") from None
    try:
        manifest = msgspec.json.decode(manifest_json, type=BundleManifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise UpdateRejectedError(f"the manifest does not read: {err}") from None
    release_key(manifest.version)
    release_key(manifest.min_version)
    _check_tiling(manifest)
    return manifest


def encode_manifest(manifest: BundleManifest) -> bytes:
    """The manifest's JSON bytes, as signed and shipped."""
    return msgspec.json.encode(manifest)


def _check_tiling(manifest: BundleManifest) -> None:
    """Chunks lie end to end from offset 0 and fill the payload; images add up."""
    at = 0
    names = [part.name for part in manifest.parts]
    if sorted(names) != sorted(set(names)) or "root" not in names:
        raise UpdateRejectedError(
            f"the manifest's parts {names} are not a root and at most one boot"
        )
    for part in manifest.parts:
        if sum(chunk.image_size for chunk in part.chunks) != part.size:
            raise UpdateRejectedError(
                f"part {part.name}: its chunks do not add up to {part.size} bytes"
            )
        for chunk in part.chunks:
            if chunk.offset != at or chunk.size == 0:
                raise UpdateRejectedError(
                    f"part {part.name}: a chunk at {chunk.offset}, expected {at}"
                )
            at += chunk.size
    if at != manifest.payload_size:
        size = manifest.payload_size
        raise UpdateRejectedError(f"the chunks cover {at} bytes of a {size}-byte payload")
