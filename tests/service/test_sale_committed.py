"""SaleCommitted carries the stored document: its subscribers on the main thread read no SQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from appliance.core.events import SaleCommitted
from appliance.core.tender import Tender
from appliance.service.after_sale import AfterSale
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.service.main_loop import IdleCheckpointer
from appliance.settings import simulated_settings
from tests.sql_trace import ThreadSql

COFFEE = "4006381333931"


@pytest.fixture
def till(tmp_path: Path) -> Iterator[tuple[Appliance, AfterSale]]:
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    seed_demo_catalog(app.catalog, settings.store)
    devices = app.open_devices(simulate=True)
    after = AfterSale(app, devices)
    after.open()
    IdleCheckpointer(app)
    try:
        yield app, after
    finally:
        after.close()
        app.close_devices()
        app.close()


def test_subscribers_of_a_sale_stored_on_the_writer_read_nothing_back(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, _ = till
    heard: list[SaleCommitted] = []
    app.bus.subscribe(SaleCommitted, heard.append)
    app.checkout.scan(COFFEE)
    tenders = [Tender.cash(2000, app.checkout.totals().total)]
    with ThreadPoolExecutor(1, thread_name_prefix="store-writes") as writer:
        sale = writer.submit(app.checkout.pay, tenders).result(timeout=30)
    with ThreadSql(app.db) as sql:
        deadline = time.monotonic() + 10
        while not heard:
            assert time.monotonic() < deadline, "no SaleCommitted"
            app.bus.wait(0.05)
            app.bus.drain()
    assert sql.statements == [], "a SaleCommitted subscriber read the database on the main thread"
    assert heard[0].sale == sale
    assert heard[0].sale == app.ledger.get(sale.id), "the event carries the document as stored"
