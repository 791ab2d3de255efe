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


def migrated_url(request: pytest.FixtureRequest, tmp_path: Path, cluster: str = "postgres") -> str:
    """The URL of a fresh migrated database of the kind `request.param` names (closed again)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        server: PostgresCluster = request.getfixturevalue(cluster)
        url = server.new_database()
    db = open_hub_database(url)
    migrate(db)
    db.close()
    return url
