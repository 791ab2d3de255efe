"""Fixtures of the update tests: a release key, and a small signed bundle made once per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.update.manifest import BundleManifest
from tests.update.bundles import make_bundle


@pytest.fixture
def release_private_key() -> Ed25519PrivateKey:
    """A fresh release key (Ed25519), distinct from any fleet key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def bundle(tmp_path: Path, release_private_key: Ed25519PrivateKey) -> tuple[Path, BundleManifest]:
    """A signed bundle of release 2026.12.1 from the generated images in `tmp_path/images`."""
    return make_bundle(tmp_path, key=release_private_key)
