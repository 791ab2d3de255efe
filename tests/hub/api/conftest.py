"""Fixtures for the integration API's tests: the app on a hub database of each kind.

`api_db` is a migrated hub database, once on SQLite and once on PostgreSQL (a fresh
database per test in a cluster per module), so every API test runs on both.
`client` is Litestar's test client on the app `appliance-hub web` serves; `bearer`
issues a token and returns its Authorization header.

Every test here fails on a LitestarDeprecationWarning: a handler declared the way Litestar
3 drops (inferred dependencies or parameters, a body without its marker) breaks the build
now, not at the upgrade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient
from peewee import Database

from hub.api.access import Scope, issue_token
from hub.api.app import create_app
from tests.hub.databases import KINDS, each_kind
from tests.postgres import PostgresCluster, running_postgres

Bearer = Callable[..., dict[str, str]]

_HERE = Path(__file__).resolve().parent
_NO_DEPRECATED_DECLARATIONS = pytest.mark.filterwarnings(
    "error::litestar.exceptions.LitestarDeprecationWarning"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark this directory's tests (a conftest's own `pytestmark` applies to none)."""
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(_NO_DEPRECATED_DECLARATIONS)


@pytest.fixture(scope="module")
def api_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the module's PostgreSQL runs."""
    with running_postgres(tmp_path_factory.mktemp("pg")) as cluster:
        yield cluster


@pytest.fixture(params=KINDS)
def api_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind."""
    yield from each_kind(request, tmp_path, "api_postgres")


@pytest.fixture
def client(api_db: Database) -> Iterator[TestClient]:  # type: ignore[type-arg]
    """The web app on api_db (API and dashboard), started and stopped around the test."""
    with TestClient(create_app(api_db)) as test_client:
        yield test_client


@pytest.fixture
def bearer(api_db: Database) -> Bearer:
    """Issue a token (`scope`, optional `store`); its Authorization header."""

    def make(scope: Scope = "admin", store: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(api_db, 'test', scope, store).value}"}

    return make
