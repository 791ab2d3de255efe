"""A migrated, empty hub database of each kind, for fixtures parametrized over both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from peewee import Database

from hub.db import open_hub_database
from hub.migrations import migrate
from tests.postgres import PostgresCluster

KINDS = ("sqlite", "postgresql")  # the params of such a fixture


def each_kind(request: pytest.FixtureRequest, tmp_path: Path, cluster: str) -> Iterator[Database]:
    """A fresh migrated database: a SQLite file, or a new one in the `cluster` fixture's server."""
    if request.param == "sqlite":
        db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    else:
        server: PostgresCluster = request.getfixturevalue(cluster)
        db = open_hub_database(server.new_database())
    migrate(db)
    yield db
    db.close()
