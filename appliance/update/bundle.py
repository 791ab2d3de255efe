"""The bundle file: build one from partition images, and find its members without loading them.

A bundle is an uncompressed tar of `manifest.json` (the exact signed bytes), `manifest.sig`
(64 raw bytes) and `payload.bin` (every part's xz chunks end to end), in that order. Images
are gigabytes, so both sides stream: the builder holds one chunk at a time, and a reader
gets the payload's offset in the file to copy or check it piece by piece.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import logging
import lzma
import os
import tarfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, NamedTuple, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import UpdateRejectedError
from appliance.update.manifest import (
    CHUNK_SIZE,
    MAX_MANIFEST,
    BundleManifest,
    Chunk,
    Part,
    PartName,
    encode_manifest,
    release_key,
    sign_manifest,
    verify_manifest,
)

log = logging.getLogger(__name__)

MEMBERS = ("manifest.json", "manifest.sig", "payload.bin")
SIGNATURE_SIZE = 64
PART_ORDER = ("boot", "root")  # the payload's order: the small boot image first
PIECE = 1024 * 1024  # bytes read at a time when hashing or copying a payload
PRESET = 6  # xz's default: the build machine has time, the card and the link do not
# Chunks compressed at once (lzma lets go of the GIL): the build machine's cores, and a
# batch of them in memory at a time.
WORKERS = os.cpu_count() or 1


class BundleMembers(NamedTuple):
    """Where a bundle's members are: the manifest and signature bytes, the payload's place."""

    manifest_json: bytes
    signature: bytes
    payload_offset: int  # bytes from the start of the bundle file
    payload_size: int


def build_bundle(
    parts: Mapping[str, Path | None],
    out: Path,
    *,
    version: str,
    image_version: str,
    min_version: str,
    image_manifest: str = "",
    key: Ed25519PrivateKey,
    chunk_size: int = CHUNK_SIZE,
    created_at: str | None = None,
    preset: int = PRESET,
) -> BundleManifest:
    """Write the signed bundle of `parts` ({"boot": image or None, "root": image}) to `out`.

    `preset` is xz's (0 to 9): lower builds faster and downloads more.
    """
    release_key(version)
    release_key(min_version)
    if set(parts) - set(PART_ORDER) or parts.get("root") is None:
        raise UpdateRejectedError(
            f"a bundle holds a root image and at most a boot one, not {parts}"
        )
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    # The manifest comes first in the tar but is known only once the payload is, so the
    # payload goes to a file beside the bundle first: never to memory.
    payload_path = out.with_name(out.name + ".payload")
    partial = out.with_name(out.name + ".partial")
    try:
        with payload_path.open("wb") as payload:
            built = [
                _write_part(name, image, payload, chunk_size, preset)
                for name in PART_ORDER
                if (image := parts.get(name)) is not None
            ]
            payload_size = payload.tell()
        manifest = BundleManifest(
            version=version,
            image_version=image_version,
            min_version=min_version,
            created_at=created_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            payload_size=payload_size,
            payload_sha256=_file_sha256(payload_path, 0, payload_size),
            parts=built,
            image_manifest=image_manifest,
        )
        manifest_json = encode_manifest(manifest)
        signature = sign_manifest(manifest_json, key)
        _write_tar(partial, manifest_json, signature, payload_path)
        partial.replace(out)
    finally:
        payload_path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    log.info("bundle %s: release %s, payload %d bytes", out, version, payload_size)
    return manifest


def read_bundle(path: Path) -> BundleMembers:
    """The manifest and signature bytes and where the payload lies, without reading it.

    UpdateRejectedError when the file is not a whole bundle: not a tar, truncated, members
    missing, extra or out of order, or a manifest or signature of the wrong size.
    """
    file_size = path.stat().st_size
    try:
        with tarfile.open(path, "r:") as tar:
            # Iterating reads each header and seeks over the data, so even the payload's
            # gigabytes are skipped, and a tar cut short fails at its end.
            members = list(tar)
            names = [member.name for member in members]
            if names != list(MEMBERS) or not all(member.isreg() for member in members):
                raise UpdateRejectedError(
                    f"{path.name} holds {names}, not the files {', '.join(MEMBERS)} in this order"
                )
            manifest_info, signature_info, payload_info = members
            if manifest_info.size > MAX_MANIFEST or signature_info.size != SIGNATURE_SIZE:
                raise UpdateRejectedError(
                    f"{path.name}: a manifest of {manifest_info.size} bytes or a signature of "
                    f"{signature_info.size} (at most {MAX_MANIFEST} and exactly {SIGNATURE_SIZE})"
                )
            manifest_json = _member_bytes(tar, manifest_info)
            signature = _member_bytes(tar, signature_info)
    except tarfile.TarError as err:
        raise UpdateRejectedError(f"{path.name} is not a whole bundle: {err}") from None
    end = payload_info.offset_data + payload_info.size
    if end > file_size:
        raise UpdateRejectedError(
            f"{path.name} is cut short: {file_size} bytes, payload ends at {end}"
        )
    return BundleMembers(manifest_json, signature, payload_info.offset_data, payload_info.size)


def verify_bundle(path: Path, key: Ed25519PublicKey) -> BundleManifest:
    """The manifest of a bundle whose signature, payload size and payload hash all hold."""
    members = read_bundle(path)
    manifest = verify_manifest(members.manifest_json, members.signature, key)
    if members.payload_size != manifest.payload_size:
        raise UpdateRejectedError(
            f"{path.name}: payload.bin is {members.payload_size} bytes, "
            f"the manifest says {manifest.payload_size}"
        )
    digest = _file_sha256(path, members.payload_offset, members.payload_size)
    if digest != manifest.payload_sha256:
        raise UpdateRejectedError(
            f"{path.name}: payload.bin does not match its hash in the manifest"
        )
    return manifest


def copy_payload(path: Path, members: BundleMembers, out: BinaryIO) -> None:
    """Copy a bundle's payload.bin into `out`, a piece at a time."""
    with path.open("rb") as source:
        source.seek(members.payload_offset)
        for piece in _pieces(source, members.payload_size, PIECE):
            out.write(piece)


def compress_chunk(data: bytes, chunk_size: int = CHUNK_SIZE, preset: int = PRESET) -> bytes:
    """One chunk as its own xz stream, with a dictionary no larger than the chunk."""
    # A dictionary beyond the chunk buys nothing and costs the device that much memory to
    # decompress; xz's floor is 4 KiB.
    dict_size = max(4096, min(chunk_size, 8 * 1024 * 1024))
    filters = [{"id": lzma.FILTER_LZMA2, "preset": preset, "dict_size": dict_size}]
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)


def _write_part(name: str, image: Path, payload: BinaryIO, chunk_size: int, preset: int) -> Part:
    """Compress `image` chunk by chunk onto the end of `payload`; its manifest entry."""
    image_hash = hashlib.sha256()
    chunks: list[Chunk] = []
    size = 0
    with image.open("rb") as source, ThreadPoolExecutor(WORKERS) as pool:
        pieces = _pieces(source, None, chunk_size)
        while batch := list(itertools.islice(pieces, 2 * WORKERS)):
            packed_batch = pool.map(lambda piece: compress_chunk(piece, chunk_size, preset), batch)
            for piece, packed in zip(batch, packed_batch, strict=True):
                image_hash.update(piece)
                size += len(piece)
                chunks.append(
                    Chunk(
                        offset=payload.tell(),
                        size=len(packed),
                        sha256=hashlib.sha256(packed).hexdigest(),
                        image_size=len(piece),
                    )
                )
                payload.write(packed)
    return Part(name=cast(PartName, name), size=size, sha256=image_hash.hexdigest(), chunks=chunks)


def _write_tar(out: Path, manifest_json: bytes, signature: bytes, payload_path: Path) -> None:
    """The tar with its three members in order, fsynced before it takes the bundle's name."""
    with out.open("wb") as raw, payload_path.open("rb") as payload:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            sources = (io.BytesIO(manifest_json), io.BytesIO(signature), payload)
            sizes = (len(manifest_json), len(signature), payload_path.stat().st_size)
            for name, source, size in zip(MEMBERS, sources, sizes, strict=True):
                info = tarfile.TarInfo(name)
                info.size, info.mode = size, 0o644
                # addfile copies from the file object in small blocks.
                tar.addfile(info, source)
        raw.flush()
        os.fsync(raw.fileno())


def _member_bytes(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    reader = tar.extractfile(info)
    assert reader is not None  # a regular file, checked by the caller
    data = reader.read()
    if len(data) != info.size:
        raise UpdateRejectedError(f"{info.name} is cut short ({len(data)} of {info.size} bytes)")
    return data


def _file_sha256(path: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        source.seek(offset)
        for piece in _pieces(source, size, PIECE):
            digest.update(piece)
    return digest.hexdigest()


def _pieces(source: BinaryIO, size: int | None, piece: int) -> Iterator[bytes]:
    """Pieces of `piece` bytes (the last one shorter) until `size` bytes or the end."""
    left = size
    while left is None or left > 0:
        want = piece if left is None else min(piece, left)
        data = source.read(want)
        # A short read from a regular file means its end; fill up otherwise (pipes).
        while data and len(data) < want and (more := source.read(want - len(data))):
            data += more
        if not data:
            if left is not None:
                raise UpdateRejectedError(
                    f"{getattr(source, 'name', 'a file')} ends {left} bytes early"
                )
            return
        if left is not None:
            left -= len(data)
        yield data
