"""Fixtures for the dashboard's tests: a hub database of each kind, an admin, the web app.

`dash_db` is a migrated hub database on SQLite and on PostgreSQL (a fresh database per
test in a cluster per module). `admin` adds an admin with a low scrypt cost (the rules
are the same; the default cost is for real passwords). `web` makes Litestar's test client
on the app `appliance-hub web` serves, with the options a test gives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from peewee import Database

from hub.api.app import WebOptions, create_app
from hub.dashboard.accounts import add_admin
from hub.ingest import utc_naive
from tests.hub.databases import KINDS, each_kind
from tests.postgres import PostgresCluster, running_postgres

ADMIN = "ada"
PASSWORD = "correct horse battery"
TEST_COST = 10  # scrypt n = 2**10 in tests; the default (2**15) is for real passwords

Client = TestClient  # type: ignore[type-arg]
MakeClient = Callable[..., Client]


@pytest.fixture(scope="module")
def dash_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the module's PostgreSQL runs."""
    with running_postgres(tmp_path_factory.mktemp("pg")) as cluster:
        yield cluster


@pytest.fixture(params=KINDS)
def dash_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind."""
    yield from each_kind(request, tmp_path, "dash_postgres")


@pytest.fixture
def admin(dash_db: Database) -> str:
    """An admin who may log in with PASSWORD."""
    add_admin(dash_db, ADMIN, PASSWORD, now=utc_naive(datetime.now(UTC)), cost=TEST_COST)
    return ADMIN


@pytest.fixture
def web(dash_db: Database) -> Iterator[MakeClient]:
    """Make a test client on the web app with these WebOptions; each is closed after."""
    opened: list[Client] = []

    def make(*, base_url: str = "http://testserver.local", **options: Any) -> Client:
        client = TestClient(create_app(dash_db, options=WebOptions(**options)), base_url=base_url)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def hidden(html: str, name: str) -> str:
    """The value of the hidden input `name` in a page."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden {name} in the page"
    return found.group(1)


def log_in(
    client: Client, name: str = ADMIN, password: str = PASSWORD, *, to: str = "/fleet"
) -> Any:
    """Fill and send the login form as a browser does; the response (not followed)."""
    form = client.get(f"/login?next={to}")
    return client.post(
        "/login",
        data={"csrf": hidden(form.text, "csrf"), "next": to, "name": name, "password": password},
        follow_redirects=False,
    )


def csrf_of(client: Client, page: str = "/fleet") -> str:
    """The session's CSRF token, as a page's forms carry it."""
    return hidden(client.get(page).text, "csrf")
