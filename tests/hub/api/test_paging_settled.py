"""A list read by row id never passes a row whose transaction is still open (PostgreSQL).

PostgreSQL hands out ids at INSERT: a worker can commit id 2 while id 1's transaction is
open. A page read then must wait for id 1, or a client keeping the cursor after id 2
never sees id 1. SQLite lets one writer in at a time, so the race cannot happen there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from litestar.testing import TestClient
from peewee import Database

from hub.api.access import issue_token
from hub.api.app import create_app
from hub.db import open_hub_database
from hub.ingest import SalesIngest
from hub.journal_ingest import JournalIngest
from hub.migrations import migrate
from hub.stores import assign_device
from tests.hub import journal_entries
from tests.hub.api.sale_documents import store_sales
from tests.hub.test_ingest import batch, sale_id_of
from tests.postgres import PostgresCluster

Client = TestClient[Any]
WAIT = 10.0


@pytest.fixture
def pg_db(api_postgres: PostgresCluster) -> Iterator[Database]:
    """A migrated hub database on PostgreSQL."""
    db = open_hub_database(api_postgres.new_database())
    migrate(db)
    yield db
    db.close()


def _read(client: Client, path: str, headers: dict[str, str], cursor: str | None) -> Any:
    params = {"cursor": cursor} if cursor else {}
    response = client.get(f"/api/v1{path}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _page_while_open(
    db: Database,
    path: str,
    cursor: str | None,
    write_held: Callable[[threading.Event, threading.Event], None],
    write_later: Callable[[], None],
) -> tuple[Any, list[Any]]:
    """Hold one write open, commit a later one, read a page; release; the page and the rest."""
    headers = {"Authorization": f"Bearer {issue_token(db, 'test', 'admin').value}"}
    held, release = threading.Event(), threading.Event()
    writer = threading.Thread(target=write_held, args=(held, release))
    with TestClient(create_app(db, dashboard=False)) as client:
        writer.start()
        try:
            assert held.wait(WAIT)
            write_later()
            answers: list[Any] = []
            reader = threading.Thread(
                target=lambda: answers.append(_read(client, path, headers, cursor))
            )
            reader.start()
            reader.join(0.5)
            assert reader.is_alive(), "the page must wait for the open transaction"
        finally:
            release.set()
            writer.join(WAIT)
        reader.join(WAIT)
        page = answers[0]
        rest = _read(client, path, headers, page["next_cursor"])["items"]
    return page, rest


def test_a_sales_page_waits_for_an_open_ingest_and_skips_no_sale(pg_db: Database) -> None:
    store_sales(pg_db, "till-0", [1])
    with TestClient(create_app(pg_db, dashboard=False)) as client:
        headers = {"Authorization": f"Bearer {issue_token(pg_db, 'first', 'read').value}"}
        before = _read(client, "/sales", headers, None)["next_cursor"]

    def hold(held: threading.Event, release: threading.Event) -> None:
        def stay_open(_device: str, _rows: Sequence[Mapping[str, Any]]) -> None:
            held.set()
            assert release.wait(WAIT)

        SalesIngest(pg_db, on_stored=stay_open).ingest("till-a", batch("till-a", [1]))

    def later() -> None:
        SalesIngest(pg_db).ingest("till-b", batch("till-b", [1]))

    page, rest = _page_while_open(pg_db, "/sales", before, hold, later)
    assert [item["id"] for item in page["items"]] == [
        sale_id_of("till-a", 1),
        sale_id_of("till-b", 1),
    ]
    assert rest == []


def test_a_z_report_page_waits_for_an_open_journal_ingest(pg_db: Database) -> None:
    for device in ("kiosk-a", "kiosk-b"):
        assign_device(pg_db, device, "berlin")

    def day(device: str) -> Any:
        return journal_entries.batch(device, journal_entries.chain(journal_entries.day(1)))

    def hold(held: threading.Event, release: threading.Event) -> None:
        with pg_db.atomic():  # the report's row is in, its transaction open
            JournalIngest(pg_db).ingest("kiosk-a", day("kiosk-a"))
            held.set()
            assert release.wait(WAIT)

    def later() -> None:
        JournalIngest(pg_db).ingest("kiosk-b", day("kiosk-b"))

    page, rest = _page_while_open(pg_db, "/stores/berlin/z-reports", None, hold, later)
    assert [item["device"] for item in page["items"]] == ["kiosk-a", "kiosk-b"]
    assert rest == []
