"""Fixtures for the release tests: a hub database of each kind, the release and fleet keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from hub.fleet_keys import generate_fleet_keys, load_fleet_key
from tests.hub.databases import KINDS, each_kind


@pytest.fixture(params=KINDS)
def rel_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind (PostgreSQL: new, in the module cluster)."""
    yield from each_kind(request, tmp_path, "postgres")


@pytest.fixture
def release_key() -> Ed25519PrivateKey:
    """A release signing key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def fleet_key_file(tmp_path: Path) -> Path:
    """The fleet signing key's file (`fleet keygen`); fleet.pub lies beside it."""
    private, _ = generate_fleet_keys(tmp_path / "fleet")
    return private


@pytest.fixture
def fleet_key(fleet_key_file: Path) -> Ed25519PrivateKey:
    """The fleet signing key."""
    return load_fleet_key(fleet_key_file)
