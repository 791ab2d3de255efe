"""Adding a release: a bundle checked and unpacked into a directory, then recorded.

`add_release` trusts nothing in a bundle until the release key's signature over its
manifest holds, the chunks tile the payload, and the payload's bytes match every chunk's
hash and the whole payload's hash; only then is the payload renamed into place and the
release recorded. A bundle that fails leaves neither a file nor a row. The payload is
copied while it is hashed, a piece at a time: an image is never held in memory.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from peewee import Database, IntegrityError

from appliance.errors import UpdateRejectedError
from appliance.update.bundle import read_bundle
from appliance.update.manifest import BundleManifest, release_key, verify_manifest
from hub.ingest import utc_naive
from hub.releases.errors import ReleaseError
from hub.releases.models import Release

log = logging.getLogger(__name__)

PAYLOAD = "payload.bin"
PIECE = 1024 * 1024  # bytes read at a time while copying and hashing


@dataclass(frozen=True, slots=True)
class Added:
    """What `add` did: the release, and whether it was new (False: the same bundle again)."""

    version: str
    added: bool
    payload_size: int
    payload_path: Path


def add_release(
    db: Database,
    bundle: Path,
    key: Ed25519PublicKey,
    releases: Path,
    *,
    now: datetime | None = None,
) -> Added:
    """Check `bundle` against the release public key and keep it under `releases`.

    UpdateRejectedError when the bundle is not one the release key vouches for (signature,
    tiling, hashes, size); ReleaseError when another bundle already holds its version.
    """
    manifest_bytes, signature, offset, size = read_bundle(bundle)
    manifest = verify_manifest(manifest_bytes, signature, key)
    release_key(manifest.version)  # dotted numbers only: safe as a directory name
    if size != manifest.payload_size:
        raise UpdateRejectedError(
            f"{bundle}: payload.bin holds {size} bytes; the manifest says {manifest.payload_size}"
        )
    text = manifest_bytes.decode("utf-8")
    sig_b64 = base64.b64encode(signature).decode("ascii")
    stored = _same_as_stored(db, manifest.version, text, sig_b64)
    if stored is not None:
        return Added(manifest.version, False, size, Path(stored))
    target_dir = releases / manifest.version
    target = target_dir / PAYLOAD
    releases.mkdir(parents=True, exist_ok=True)
    # Hidden and unique beside the target: a failed copy is removed, and two adds of the
    # same version at once never write one file.
    partial = releases / f".{manifest.version}.{secrets.token_hex(4)}.part"
    try:
        _copy_checked(bundle, offset, manifest, partial)
        target_dir.mkdir(exist_ok=True)
        os.replace(partial, target)
        _fsync_dir(target_dir)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    try:
        Release.insert(
            version=manifest.version,
            manifest=text,
            signature=sig_b64,
            payload_path=str(target.resolve()),
            payload_size=size,
            payload_sha256=manifest.payload_sha256,
            added_at=utc_naive(now or datetime.now(UTC)),
        ).execute(db)
    except IntegrityError:
        # Another add of this version won the race: the same bundle is fine, another is not
        # (and the payload on disk is the winner's when both were the same bytes).
        stored = _same_as_stored(db, manifest.version, text, sig_b64)
        if stored is not None:
            return Added(manifest.version, False, size, Path(stored))
        raise ReleaseError(_taken(manifest.version)) from None
    log.info("release %s added (%d bytes of payload)", manifest.version, size)
    return Added(manifest.version, True, size, target.resolve())


def _same_as_stored(db: Database, version: str, manifest: str, signature: str) -> str | None:
    """The payload path when this exact bundle is stored, None when the version is free;
    ReleaseError when another bundle holds it."""
    row = Release.select().where(Release.version == version).first(db)
    if row is None:
        return None
    if row.manifest == manifest and row.signature == signature:
        return str(row.payload_path)
    raise ReleaseError(_taken(version))


def _taken(version: str) -> str:
    return (
        f"release {version} is already stored from another bundle; a version names one"
        " bundle for good (build the change as a new version)"
    )


def _copy_checked(bundle: Path, offset: int, manifest: BundleManifest, out: Path) -> None:
    """Copy the payload out of the bundle, checking each chunk's and the whole hash."""
    whole = hashlib.sha256()
    with bundle.open("rb") as source, out.open("xb") as sink:
        source.seek(offset)
        for part in manifest.parts:
            for chunk in part.chunks:
                digest = hashlib.sha256()
                for piece in _pieces(source, chunk.size):
                    digest.update(piece)
                    whole.update(piece)
                    sink.write(piece)
                if digest.hexdigest() != chunk.sha256:
                    raise UpdateRejectedError(
                        f"{bundle}: the {part.name} chunk at {chunk.offset} does not match"
                        " its hash in the manifest"
                    )
        if whole.hexdigest() != manifest.payload_sha256:
            raise UpdateRejectedError(f"{bundle}: payload.bin does not match the manifest's hash")
        sink.flush()
        os.fsync(sink.fileno())  # on the disk before the release row says it is there


def _pieces(source: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left:
        piece = source.read(min(PIECE, left))
        if not piece:
            raise UpdateRejectedError("the bundle ends inside its payload")
        left -= len(piece)
        yield piece


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
