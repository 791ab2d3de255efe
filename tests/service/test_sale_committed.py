"""SaleCommitted carries the stored document: its subscribers on the main thread read no SQL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from appliance.core.events import SaleCommitted
from appliance.core.tender import Tender
from appliance.service.after_sale import AfterSale
from appliance.service.assembly import Appliance
from appliance.service.main_loop import IdleCheckpointer
from tests.sql_trace import ThreadSql

COFFEE = "4006381333931"


def test_subscribers_of_a_sale_stored_on_the_writer_read_nothing_back(
    till: tuple[Appliance, AfterSale],
) -> None:
    app, _ = till
    IdleCheckpointer(app)  # its SaleCommitted handler must read nothing either
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
