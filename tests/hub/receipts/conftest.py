"""Fixtures for the e-receipt tests: a hub database of each kind, and a kiosk's own store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peewee import Database

from tests.hub.databases import KINDS, each_kind
from tests.hub.receipts.shop import Kiosk


@pytest.fixture(params=KINDS)
def receipt_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind (PostgreSQL: new, in the module cluster)."""
    yield from each_kind(request, tmp_path, "postgres")


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    """A kiosk's store with the sample catalog."""
    shop = Kiosk(tmp_path)
    yield shop
    shop.close()
