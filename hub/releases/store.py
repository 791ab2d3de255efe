"""The release store's records: which releases the hub holds, and what each one is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec
from peewee import Database

from appliance.update.manifest import BundleManifest, release_key
from hub.releases.models import Release


@dataclass(frozen=True, slots=True)
class ReleaseView:
    """A stored release as `release list` and the rollout read it."""

    version: str
    min_version: str
    image_version: str
    payload_size: int
    payload_sha256: str
    payload_path: str
    added_at: datetime
    manifest: str
    signature: str  # standard base64


def releases(db: Database) -> list[ReleaseView]:
    """Every stored release, the newest version first."""
    views = [_view(row) for row in Release.select().execute(db)]
    return sorted(views, key=lambda view: release_key(view.version), reverse=True)


def release(db: Database, version: str) -> ReleaseView | None:
    """One stored release, or None."""
    row = Release.select().where(Release.version == version).first(db)
    return None if row is None else _view(row)


def _view(row: Release) -> ReleaseView:
    manifest = _decoded(str(row.manifest))
    return ReleaseView(
        version=str(row.version),
        min_version=manifest.min_version,
        image_version=manifest.image_version,
        payload_size=int(row.payload_size),
        payload_sha256=str(row.payload_sha256),
        payload_path=str(row.payload_path),
        added_at=row.added_at,
        manifest=str(row.manifest),
        signature=str(row.signature),
    )


def _decoded(text: str) -> BundleManifest:
    # Verified when it was added; read again only for what `list` shows.
    return msgspec.json.decode(text.encode("utf-8"), type=BundleManifest)
