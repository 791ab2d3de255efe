"""`release add` at the library level: a bundle is stored only once everything about it holds.

Bundles come from the update tests' builder (tests/update/bundles.py) and, for the broken
ones no builder would make, from tests/hub/releases/making.py. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.errors import UpdateError, UpdateRejectedError
from hub.releases.adding import add_release
from hub.releases.models import Release
from hub.releases.store import release, releases
from tests.hub.releases.making import write_bundle
from tests.update.bundles import extract_payload, make_bundle


def left_behind(directory: Path) -> list[Path]:
    """Every file and folder under `directory` (none when it does not exist)."""
    return sorted(directory.rglob("*")) if directory.exists() else []


def test_a_good_bundle_is_kept_with_its_payload_byte_for_byte(
    rel_db: Database, release_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    bundle, manifest = make_bundle(tmp_path / "build", key=release_key)
    store = tmp_path / "releases"
    added = add_release(rel_db, bundle, release_key.public_key(), store)
    assert added.added and added.version == "2026.12.1"
    assert added.payload_path == (store / "2026.12.1" / "payload.bin").resolve()
    expected = extract_payload(bundle, tmp_path / "expected.bin").read_bytes()
    assert added.payload_path.read_bytes() == expected
    assert left_behind(store) == [store / "2026.12.1", store / "2026.12.1" / "payload.bin"]
    view = release(rel_db, "2026.12.1")
    assert view is not None
    assert (view.payload_size, view.payload_sha256) == (len(expected), manifest.payload_sha256)
    assert (view.min_version, view.image_version) == ("2026.1.1", "v2026.12.1-test")
    assert [v.version for v in releases(rel_db)] == ["2026.12.1"]


def test_the_same_bundle_twice_changes_nothing(
    rel_db: Database, release_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    bundle, _ = make_bundle(tmp_path / "build", key=release_key)
    store = tmp_path / "releases"
    first = add_release(rel_db, bundle, release_key.public_key(), store)
    before = (Release.select().tuples().execute(rel_db)[0], left_behind(store))
    second = add_release(rel_db, bundle, release_key.public_key(), store)
    assert (first.added, second.added) == (True, False)
    assert second.payload_path == first.payload_path
    assert (Release.select().tuples().execute(rel_db)[0], left_behind(store)) == before


def test_another_bundle_under_a_version_already_stored_is_refused(
    rel_db: Database, release_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    bundle, _ = make_bundle(tmp_path / "one", key=release_key)
    other, _ = make_bundle(tmp_path / "two", key=release_key, min_version="2026.5.0")
    store = tmp_path / "releases"
    added = add_release(rel_db, bundle, release_key.public_key(), store)
    payload = added.payload_path.read_bytes()
    with pytest.raises(UpdateError, match="already stored from another bundle"):
        add_release(rel_db, other, release_key.public_key(), store)
    view = release(rel_db, "2026.12.1")
    assert view is not None and view.min_version == "2026.1.1"
    assert added.payload_path.read_bytes() == payload
    assert left_behind(store) == [store / "2026.12.1", store / "2026.12.1" / "payload.bin"]


def _bad_bundles(tmp_path: Path, key: Ed25519PrivateKey) -> dict[str, tuple[Path, str]]:
    """Bundles the release key does not vouch for, each with the refusal it should get."""
    made: dict[str, tuple[Path, str]] = {}
    other_key = Ed25519PrivateKey.generate()
    good, _ = make_bundle(tmp_path / "signed-by-another", key=other_key)
    made["another key"] = (good, "signature is not the release key's")
    path = tmp_path / "hash.tar"
    write_bundle(path, key, "2026.12.1")
    # Same length, one byte flipped: the tar is whole, the payload is not what was signed.
    data = bytearray(path.read_bytes())
    start = data.index(b"\xfd7zXZ")  # the first chunk's xz magic, inside payload.bin
    data[start + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    made["a changed payload byte"] = (path, "does not match")
    path = tmp_path / "tiling.tar"
    write_bundle(path, key, "2026.12.1", payload_size=10**6)
    made["chunks that do not tile"] = (path, "chunks cover")
    path = tmp_path / "short.tar"
    good, _ = make_bundle(tmp_path / "cut", key=key)
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    made["a bundle cut short"] = (path, "cut short|not a whole bundle")
    path = tmp_path / "version.tar"
    write_bundle(path, key, "../../etc")
    made["a version that is no release number"] = (path, "not a release version")
    return made


def test_a_bad_bundle_leaves_neither_a_file_nor_a_row(
    rel_db: Database, release_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    store = tmp_path / "releases"
    for what, (bundle, message) in _bad_bundles(tmp_path / "bad", release_key).items():
        with pytest.raises(UpdateRejectedError, match=message):
            add_release(rel_db, bundle, release_key.public_key(), store)
        assert Release.select().count(rel_db) == 0, what
        assert left_behind(store) == [], what
    assert not any(name.endswith(".part") for name in os.listdir(tmp_path))
