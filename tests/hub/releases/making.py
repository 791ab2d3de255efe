"""Small signed release bundles for the hub's tests, written as the bundle format says.

A bundle is an uncompressed tar of manifest.json, manifest.sig and payload.bin; the parts
here are a few KiB of random bytes in chunks of CHUNK bytes, each xz-compressed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import lzma
import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.update.manifest import (
    BundleManifest,
    Chunk,
    Part,
    PartName,
    encode_manifest,
    sign_manifest,
)
from hub.releases.models import Release

CHUNK = 1024  # bytes of image per chunk: several chunks from a few KiB


def make_payload(images: dict[str, bytes]) -> tuple[list[Part], bytes]:
    """The parts of a manifest and the payload they describe, for these partition images."""
    parts, payload = [], b""
    for name, image in images.items():
        chunks = []
        for at in range(0, len(image), CHUNK):
            piece = image[at : at + CHUNK]
            packed = lzma.compress(piece, format=lzma.FORMAT_XZ)
            chunks.append(
                Chunk(
                    offset=len(payload),
                    size=len(packed),
                    sha256=hashlib.sha256(packed).hexdigest(),
                    image_size=len(piece),
                )
            )
            payload += packed
        parts.append(
            Part(
                name=cast(PartName, name),
                size=len(image),
                sha256=hashlib.sha256(image).hexdigest(),
                chunks=chunks,
            )
        )
    return parts, payload


def manifest_for(version: str, parts: list[Part], payload: bytes, **changes: object) -> bytes:
    """The manifest's JSON bytes for a payload (fields in `changes` override)."""
    fields: dict[str, object] = {
        "version": version,
        "image_version": f"{version}-g0a1b2c3",
        "min_version": "2026.1.0",
        "created_at": datetime(2026, 12, 1, tzinfo=UTC).isoformat(),
        "payload_size": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "parts": parts,
        **changes,
    }
    return encode_manifest(BundleManifest(**fields))  # type: ignore[arg-type]


def write_bundle(
    path: Path,
    key: Ed25519PrivateKey,
    version: str,
    *,
    images: dict[str, bytes] | None = None,
    payload_edit: bytes | None = None,
    signature: bytes | None = None,
    **changes: object,
) -> bytes:
    """Write a bundle of `version` signed by `key`; its manifest bytes.

    `payload_edit` replaces the payload after the manifest was made (a bad hash),
    `signature` the signature (a bad one), `changes` manifest fields.
    """
    images = images if images is not None else {"boot": os.urandom(1500), "root": os.urandom(5000)}
    parts, payload = make_payload(images)
    manifest = manifest_for(version, parts, payload, **changes)
    members = {
        "manifest.json": manifest,
        "manifest.sig": signature if signature is not None else sign_manifest(manifest, key),
        "payload.bin": payload_edit if payload_edit is not None else payload,
    }
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return manifest


def store_release(
    db: Database, key: Ed25519PrivateKey, version: str, payload_file: Path | None = None
) -> tuple[bytes, bytes]:
    """A release row as `release add` leaves it (payload written to `payload_file`);
    (manifest bytes, payload)."""
    parts, payload = make_payload({"root": os.urandom(3000)})
    manifest = manifest_for(version, parts, payload)
    if payload_file is not None:
        payload_file.parent.mkdir(parents=True, exist_ok=True)
        payload_file.write_bytes(payload)
    Release.insert(
        version=version,
        manifest=manifest.decode(),
        signature=base64.b64encode(sign_manifest(manifest, key)).decode(),
        payload_path=str(payload_file or f"/nowhere/{version}/payload.bin"),
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        added_at=datetime(2026, 12, 1),
    ).execute(db)
    return manifest, payload
