"""The hub's catalog: CSV imports make versions and deltas, snapshots, stock and oversells.

Deltas are checked by applying them with the device's own CatalogSync; publishing and
the CLI go through a real mosquitto to a subscriber playing the store's appliances.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from peewee import Database, SqliteDatabase

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.mqtt import topics
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.payloads import (
    CatalogDelta,
    CatalogRequest,
    CatalogStatus,
    SaleEnvelope,
    SalesBatch,
    SnapshotChunk,
    encode,
)
from appliance.settings import StoreSettings
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger, encode_document
from appliance.store.migrations import migrate as migrate_device
from hub.catalog import HubCatalog, HubCatalogVersion, StockChange, create_catalog_tables
from hub.catalog_publisher import HEADROOM, CatalogPublisher
from hub.catalog_push import CatalogPush
from hub.cli_catalog import catalog as catalog_group
from hub.cli_catalog import stock_command
from hub.db import open_hub_database
from hub.ingest import SalesIngest
from hub.migrations import migrate as migrate_hub
from hub.stock_levels import (
    SoldLine,
    oversells,
    sold_lines,
    stock_changes,
    stock_levels,
    store_sales,
)
from hub.stores import assign_device, devices_of, store_of
from tests.broker import MosquittoBroker
from tests.store.crash_writer import PRODUCTS, RECEIPT_PREFIX, STOCK, refund_draft, sale_draft

STORE = "linz-2"
HEADER = "sku,name,price,tax_class,barcodes,stock\n"
T0 = datetime(2026, 3, 1, 8, 0)  # naive UTC, as the hub stores times


def ean(i: int) -> str:
    body = f"402{i:09d}"
    return body + gtin_check_digit(body)


def row(i: int, *, price: str | None = None, stock: int | str = "") -> str:
    return f"P{i:03d},Item {i},{price or f'1.{i:02d}'},standard,{ean(i)},{stock}\n"


def product(i: int) -> Product:
    return Product(
        sku=f"P{i:03d}",
        name=f"Item {i}",
        price=Money(100 + i, "EUR"),
        tax_class="standard",
        barcodes=(normalize_gtin(ean(i)),),
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate_hub(database)
    create_catalog_tables(database)
    yield database
    database.close()


@pytest.fixture
def hub_catalog(db: Database) -> HubCatalog:
    return HubCatalog(db, STORE)


def imported(catalog: HubCatalog, text: str, **options: bool) -> object:
    return catalog.import_csv(io.StringIO(text), StoreSettings(), **options)


def test_a_csv_import_computes_new_changed_and_deleted_as_a_delta(
    hub_catalog: HubCatalog,
) -> None:
    first = hub_catalog.import_csv(
        io.StringIO(HEADER + row(1, stock=5) + row(2, stock=5) + row(3) + row(4)),
        StoreSettings(),
    )
    assert (first.from_version, first.version, first.added) == (0, 1, 4)
    second = hub_catalog.import_csv(
        io.StringIO(HEADER + row(1, price="9.99", stock=5) + row(2, stock=4) + row(4) + row(5)),
        StoreSettings(),
    )
    assert (second.from_version, second.version) == (1, 2)
    assert (second.added, second.changed, second.deleted, second.unchanged) == (1, 2, 1, 1)
    assert hub_catalog.version() == 2

    delta = hub_catalog.delta(1)
    assert delta is not None and (delta.from_version, delta.to_version) == (1, 2)
    assert delta.deletes == ["P003"]
    upserts = {p.sku: p for p in delta.upserts}
    assert set(upserts) == {"P001", "P002", "P005"}
    assert upserts["P001"].price == 999 and upserts["P001"].stock is None  # same count
    assert upserts["P002"].stock == 4  # a new count: the hub corrects the devices
    assert upserts["P005"].barcodes == [normalize_gtin(ean(5))]
    whole = hub_catalog.delta(0)
    assert whole is not None and whole.deletes == []  # P003 never existed at v0
    assert {p.sku for p in whole.upserts} == {"P001", "P002", "P004", "P005"}


def test_importing_the_same_file_again_makes_no_new_version(hub_catalog: HubCatalog) -> None:
    text = HEADER + row(1, stock=3) + row(2)
    hub_catalog.import_csv(io.StringIO(text), StoreSettings())
    again = hub_catalog.import_csv(io.StringIO(text), StoreSettings())
    assert not again.changed_anything and again.unchanged == 2 and hub_catalog.version() == 1
    with pytest.raises(ValueError, match="no delta"):
        hub_catalog.delta(1)


def test_a_bad_row_imports_nothing_and_skipping_it_keeps_that_product(
    hub_catalog: HubCatalog,
) -> None:
    hub_catalog.import_csv(io.StringIO(HEADER + row(1) + row(2)), StoreSettings())
    bad = HEADER + row(1, price="2.00") + "P002,Item 2,free,standard,,\n"
    refused = hub_catalog.import_csv(io.StringIO(bad), StoreSettings())
    assert refused.report is not None and [e.line for e in refused.report.errors] == [3]
    assert not refused.changed_anything and hub_catalog.products()["P001"].price == 101
    skipped = hub_catalog.import_csv(io.StringIO(bad), StoreSettings(), skip_bad_rows=True)
    assert (skipped.version, skipped.changed, skipped.deleted) == (2, 1, 0)
    assert set(hub_catalog.products()) == {"P001", "P002"}  # P002 not deleted for a bad row


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubCatalog]:
    """One hub catalog with v1 (37 products) and v2 (41), shared by the hypothesis examples."""
    db = open_hub_database(f"sqlite:///{tmp_path_factory.mktemp('chunks') / 'hub.db'}")
    create_catalog_tables(db)
    catalog = HubCatalog(db, STORE)
    catalog.import_products((product(i), None) for i in range(37))
    catalog.import_products((product(i), None) for i in range(41))
    yield catalog
    db.close()


@settings(max_examples=25, deadline=None)
@given(chunk_size=st.integers(min_value=1, max_value=60))
def test_snapshot_chunks_cover_every_product_exactly_once(
    two_versions: HubCatalog, chunk_size: int
) -> None:
    for version, count in ((1, 37), (2, 41)):
        chunks = two_versions.snapshot_chunks(version, chunk_size)
        assert [c.chunk for c in chunks] == list(range(len(chunks)))
        assert {(c.version, c.chunks) for c in chunks} == {(version, len(chunks))}
        skus = [p.sku for c in chunks for p in c.products]
        assert len(skus) == len(set(skus)) == count
        assert set(skus) == set(two_versions.products(version))
        assert all(0 < len(c.products) <= chunk_size for c in chunks)


@pytest.fixture
def device_db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = open_database(tmp_path / "device" / "appliance.db")
    migrate_device(database)
    yield database
    database.close()


def test_a_composed_delta_brings_a_device_to_the_hubs_catalog(
    hub_catalog: HubCatalog, device_db: SqliteDatabase
) -> None:
    sync = CatalogSync(device_db, "kiosk-1", lambda _t, _d: None)
    hub_catalog.import_products((product(i), 10) for i in range(6))
    for chunk in hub_catalog.snapshot_chunks(1, 4):
        sync.add_chunk(chunk)
    changed = Product(**{**_fields(product(2)), "price": Money(5, "EUR")})
    hub_catalog.import_products([(product(i), 10) for i in range(1, 6) if i != 2] + [(changed, 7)])
    hub_catalog.import_products([(product(i), 10) for i in range(1, 8)])  # P002 changed back
    delta = hub_catalog.delta(1)
    assert delta is not None and (delta.from_version, delta.to_version) == (1, 3)
    assert sync.apply_delta(delta) == "applied"
    held = {p.sku: p for p in SqliteCatalog(device_db).all_products()}
    assert held == {f"P{i:03d}": product(i) for i in range(1, 8)}
    stock = {sku: SqliteCatalog(device_db).stock_of(sku) for sku in held}
    assert stock == {**dict.fromkeys(held, 10), "P002": 10}  # the 7 was counted over again


def _fields(p: Product) -> dict[str, object]:
    return {name: getattr(p, name) for name in Product.__dataclass_fields__}


def test_a_large_change_goes_out_as_a_snapshot(db: Database, hub_catalog: HubCatalog) -> None:
    hub_catalog.import_products((product(i), None) for i in range(3))
    hub_catalog.import_products((product(i), None) for i in range(3, 15))
    assert hub_catalog.delta(1, limit=10) is None
    assert hub_catalog.delta(1, limit=15) is not None
    assign_device(db, "kiosk-1", STORE)
    sent: list[tuple[str, bytes]] = []
    publisher = CatalogPublisher(db, lambda t, d: sent.append((t, d)), chunk_size=4, delta_limit=10)
    assert publisher.publish_update(STORE, 1) == 3  # v2 holds 12 products: 3 chunks of 4
    chunks = [msgspec.json.decode(d, type=SnapshotChunk) for _, d in sent]
    assert {c.version for c in chunks} == {2} and sum(len(c.products) for c in chunks) == 12


def test_devices_belong_to_one_store(db: Database) -> None:
    assign_device(db, "kiosk-1", STORE)
    assign_device(db, "kiosk-2", STORE)
    assign_device(db, "kiosk-2", "graz-1")  # moved
    assert devices_of(db, STORE) == ["kiosk-1"] and store_of(db, "kiosk-2") == "graz-1"
    assert store_of(db, "nobody") is None


class AppliancesEnd:
    """A subscriber on every device's catalog topic, recording what arrives for whom."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{topics.ROOT}/d/+/down/catalog", 1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((topics.device_of(message.topic) or "", message.payload))

    def wait_for(self, count: int) -> list[tuple[str, bytes]]:
        until(lambda: len(self.got) >= count)
        time.sleep(0.1)  # anything extra would show up now (a check, not a timing assertion)
        return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.fixture
def appliances(broker: MosquittoBroker) -> Iterator[AppliancesEnd]:
    end = AppliancesEnd(broker)
    yield end
    end.close()


@pytest.fixture
def hub_client(broker: MosquittoBroker) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


def test_the_publisher_sends_to_every_device_of_the_store_and_answers_requests(
    db: Database, hub_catalog: HubCatalog, appliances: AppliancesEnd, hub_client: mqtt.Client
) -> None:
    for device, store in (("kiosk-1", STORE), ("kiosk-2", STORE), ("kiosk-9", "graz-1")):
        assign_device(db, device, store)
    publisher = CatalogPublisher(
        db, lambda t, d: hub_client.publish(t, d, qos=1).wait_for_publish(10), chunk_size=4
    )
    hub_catalog.import_products((product(i), None) for i in range(10))
    hub_catalog.import_products((product(i), None) for i in range(11))
    assert publisher.publish_update(STORE, 1) == 2
    got = appliances.wait_for(2)
    assert sorted(device for device, _ in got) == ["kiosk-1", "kiosk-2"]
    delta = msgspec.json.decode(got[0][1], type=CatalogDelta)
    assert (delta.from_version, delta.to_version, [p.sku for p in delta.upserts]) == (
        1,
        2,
        ["P010"],
    )

    appliances.got.clear()
    resume = CatalogRequest(have_version=0, have_store=STORE, resume_version=1, next_chunk=1)
    assert publisher.on_request("kiosk-1", encode(resume)) == 3  # chunks 1, 2 of v1 + delta
    current = CatalogRequest(have_version=2, have_store=STORE)
    assert publisher.on_request("kiosk-2", encode(current)) == 1  # "you are current"
    assert publisher.on_request("stranger", encode(CatalogRequest(have_version=0))) == 1
    assert publisher.on_request("kiosk-1", b"{nonsense") == 0 and publisher.malformed == 1
    got = appliances.wait_for(5)
    assert [d for d, _ in got] == ["kiosk-1"] * 3 + ["kiosk-2", "stranger"]
    first, second = (msgspec.json.decode(m, type=SnapshotChunk) for _, m in got[:2])
    assert [(c.version, c.chunk, c.chunks) for c in (first, second)] == [(1, 1, 3), (1, 2, 3)]
    assert msgspec.json.decode(got[2][1], type=CatalogDelta).from_version == 1
    statuses = [msgspec.json.decode(m, type=CatalogStatus) for _, m in got[3:]]
    assert [(s.state, s.store, s.version) for s in statuses] == [
        ("current", STORE, 2),
        ("no_store", "", 0),
    ]


# --- stock ------------------------------------------------------------------------------


def test_oversells_are_sales_below_the_last_count(hub_catalog: HubCatalog) -> None:
    hub_catalog.import_products([(product(1), 5), (product(2), 3), (product(3), None)], now=T0)
    sold = [
        SoldLine("P001", 4, T0 - timedelta(hours=1)),  # before the count: already in it
        SoldLine("P001", 3, T0 + timedelta(hours=1)),
        SoldLine("P001", 4, T0 + timedelta(hours=2)),
        SoldLine("P001", -1, T0 + timedelta(hours=3)),  # a refund puts one back
        SoldLine("P002", 3, T0 + timedelta(hours=1)),
        SoldLine("P003", 9, T0 + timedelta(hours=1)),  # never counted: no level
    ]
    levels = {s.sku: s for s in stock_levels(hub_catalog, sold)}
    assert set(levels) == {"P001", "P002"}
    assert (levels["P001"].sold, levels["P001"].level, levels["P001"].oversold) == (6, -1, True)
    assert (levels["P002"].level, levels["P002"].oversold) == (0, False)
    assert [s.sku for s in oversells(levels.values())] == ["P001"]

    hub_catalog.import_products(
        [(product(1), 10), (product(2), 3), (product(3), None)], now=T0 + timedelta(hours=5)
    )
    recount = {s.sku: s.level for s in stock_levels(hub_catalog, sold)}
    assert recount == {"P001": 10, "P002": 0}  # a new count starts from zero sold


def test_stock_levels_from_sales_the_hub_ingested(db: Database, tmp_path: Path) -> None:
    """Real device documents (a sale, a refund) through SalesIngest, then the stock report."""
    device_db = open_database(tmp_path / "till" / "appliance.db")
    migrate_device(device_db)
    SqliteCatalog(device_db).upsert((p, STOCK[p.sku]) for p in PRODUCTS)
    ledger = SalesLedger(device_db, RECEIPT_PREFIX)
    products = {p.sku: p for p in PRODUCTS}
    moment = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    sale = ledger.commit(sale_draft(products, [("COLA", 4), ("BAG", 1)], now=moment))
    other = ledger.commit(sale_draft(products, [("COLA", 3)], now=moment))
    refund = ledger.commit(refund_draft(other, {1: 1}, now=moment + timedelta(minutes=5)))
    device_db.close()
    documents = [sale, other, refund]
    batch = SalesBatch(
        device="till-01",
        sales=[
            SaleEnvelope(seq=d.sequence, sale_id=d.id, document=msgspec.Raw(encode_document(d)))
            for d in documents
        ],
    )
    SalesIngest(db).apply("till-01", batch)
    assign_device(db, "till-01", STORE)
    assert sold_lines(encode_document(sale)) == [SoldLine("COLA", 4, moment.replace(tzinfo=None))]

    hub_catalog = HubCatalog(db, STORE)
    hub_catalog.import_products(
        [(p, 5 if p.sku == "COLA" else None) for p in PRODUCTS], now=moment - timedelta(days=1)
    )
    levels = {s.sku: s for s in stock_levels(hub_catalog, store_sales(db, STORE))}
    assert set(levels) == {"COLA"}  # the only product with a count
    assert (levels["COLA"].sold, levels["COLA"].level) == (6, -1)  # 4 + 3 - 1 returned

    result = CliRunner().invoke(
        stock_command, ["--store", STORE, "--db", f"sqlite:///{tmp_path / 'hub.db'}"]
    )
    assert result.exit_code == 0, result.output
    assert "1 counted product(s), 1 oversold" in result.output
    assert "OVERSOLD linz-2 COLA: -1" in result.output


# --- the CLI ----------------------------------------------------------------------------


def test_catalog_import_cli_reports_bad_rows_by_line_and_imports_nothing(tmp_path: Path) -> None:
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text(HEADER + row(1) + "P002,Item 2,1.00,luxury,,\n" + row(3, stock="x"))
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    result = CliRunner().invoke(
        catalog_group, ["import", str(csv_file), "--store", STORE, "--db", url, "--no-publish"]
    )
    assert result.exit_code == 1
    assert "line 3 (P002): tax class 'luxury'" in result.output
    assert "line 4 (P003): stock 'x' is not a whole number" in result.output
    assert "2 bad row(s); nothing was imported" in result.output


def test_catalog_import_cli_publishes_the_delta_to_the_stores_appliances(
    tmp_path: Path, broker: MosquittoBroker, appliances: AppliancesEnd
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    csv_file = tmp_path / "catalog.csv"
    runner = CliRunner()
    broker_args = ["--host", broker.host, "--port", str(broker.port)]

    def run(text: str) -> str:
        csv_file.write_text(text)
        result = runner.invoke(
            catalog_group, ["import", str(csv_file), "--store", STORE, "--db", url, *broker_args]
        )
        assert result.exit_code == 0, result.output
        return result.output

    assert "no appliance is assigned" in run(HEADER + row(1) + row(2))
    db = open_hub_database(url)
    assign_device(db, "kiosk-5", STORE)
    db.close()
    out = run(HEADER + row(1, price="3.50", stock=12) + row(3))
    assert "v1 -> v2: 1 added, 1 changed, 1 deleted, 0 unchanged" in out
    assert "published 1 message(s)" in out
    ((device, data),) = appliances.wait_for(1)
    delta = msgspec.json.decode(data, type=CatalogDelta)
    assert device == "kiosk-5" and (delta.from_version, delta.to_version) == (1, 2)
    assert {p.sku: (p.price, p.stock) for p in delta.upserts} == {
        "P001": (350, 12),
        "P003": (103, None),
    }
    assert delta.deletes == ["P002"]
    assert "nothing changed" in run(HEADER + row(1, price="3.50", stock=12) + row(3))


# --- stock corrections as catalog versions -----------------------------------------------


def test_a_published_level_goes_in_deltas_and_snapshots_until_a_new_count(
    hub_catalog: HubCatalog,
) -> None:
    hub_catalog.import_products([(product(1), 5), (product(2), 7), (product(3), None)], now=T0)
    change = stock_changes(hub_catalog, lambda _since: [SoldLine("P001", 2, T0)])
    assert (change.version, change.levels) == (1, {"P001": 3})
    with hub_catalog.write_lock():
        assert hub_catalog.add_stock_version(change) == 2
    delta = hub_catalog.delta(1)
    assert delta is not None and delta.store == STORE
    assert [(p.sku, p.stock) for p in delta.upserts] == [("P001", 3)]
    snapshot = {p.sku: p.stock for c in hub_catalog.snapshot_chunks() for p in c.products}
    assert snapshot == {"P001": 3, "P002": 7, "P003": None}
    assert stock_changes(hub_catalog, lambda _since: [SoldLine("P001", 2, T0)]).levels == {}

    hub_catalog.import_products(
        [(product(1), 10), (product(2), 7), (product(3), None)], now=T0 + timedelta(hours=1)
    )  # a new count wins over the level sent before it
    for delta in (hub_catalog.delta(1), hub_catalog.delta(2)):
        assert delta is not None and [(p.sku, p.stock) for p in delta.upserts] == [("P001", 10)]
    assert hub_catalog.products()["P001"].stock == 10
    assert hub_catalog.products(2)["P001"].stock == 3


def test_stock_corrections_publish_a_stock_only_version_to_the_store(db: Database) -> None:
    from hub.ingest import IngestResult
    from hub.stock_corrections import StockCorrections

    catalog = HubCatalog(db, STORE)
    catalog.import_products([(product(1), 5)], now=T0)
    sent: list[tuple[str, bytes]] = []
    publisher = CatalogPublisher(db, lambda t, d: sent.append((t, d)))
    assert CatalogPush(db, publisher).push(STORE) == 0  # v1 went to nobody: the store has none
    assign_device(db, "kiosk-1", STORE)
    sold = [SoldLine("P001", 2, T0 + timedelta(minutes=1))]
    corrections = StockCorrections(db, publisher, sales=lambda *_: sold)
    corrections.sales_committed("kiosk-1", IngestResult("kiosk-1", 3, 0, 3, store=STORE))  # resent
    corrections.sales_committed("nobody", IngestResult("nobody", 1, 1, 0))  # in no store
    corrections.run()
    assert sent == [] and catalog.version() == 1
    corrections.sales_committed("kiosk-1", IngestResult("kiosk-1", 4, 1, 0, store=STORE))
    corrections.run()
    ((topic, data),) = sent
    delta = msgspec.json.decode(data, type=CatalogDelta)
    assert topic == topics.catalog_down("kiosk-1")
    assert (delta.from_version, delta.to_version, delta.upserts[0].stock) == (1, 2, 3)
    assert corrections.correct(STORE) == 0  # nothing changed since: no new version


def make_versions_at_once(db: Database, workers: int = 4, rounds: int = 8) -> None:
    """Workers making stock versions and imports of one store concurrently: none collide."""
    catalog = HubCatalog(db, STORE)
    catalog.import_products([(product(1), 5)], now=T0)
    failures: list[BaseException] = []
    start = threading.Barrier(workers)

    def work(worker: int) -> None:
        try:
            start.wait(10)
            for n in range(rounds):
                if worker == 0:
                    catalog.import_products([(product(1), 5), (product(100 + n), None)])
                    continue
                with catalog.write_lock():
                    version = catalog.version()
                    level = 1000 * worker + n
                    catalog.add_stock_version(StockChange(version, {"P001": level}))
        except BaseException as err:
            failures.append(err)
        finally:
            db.close()  # this thread's connection

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    query = HubCatalogVersion.select(HubCatalogVersion.version).where(
        HubCatalogVersion.store == STORE
    )
    made = [v for (v,) in query.order_by(HubCatalogVersion.version).tuples().execute(db)]
    assert made == list(range(1, 2 + workers * rounds))


def test_workers_making_versions_of_one_store_at_once_never_collide(db: Database) -> None:
    make_versions_at_once(db)


# --- chunks within a byte limit ----------------------------------------------------------


def test_snapshot_chunks_stay_within_a_byte_limit_and_cut_the_same_whatever_the_levels(
    hub_catalog: HubCatalog,
) -> None:
    hub_catalog.import_products((product(i), i) for i in range(200))
    limit = 2000
    chunks = hub_catalog.snapshot_chunks(max_bytes=limit)
    assert len(chunks) > 10 and all(len(encode(c)) <= limit for c in chunks)
    assert [p.sku for c in chunks for p in c.products] == sorted(hub_catalog.products())
    # Levels of other widths must not move a boundary: a resumed download continues the cut.
    levels = {f"P{i:03d}": -123456789012345 for i in range(200)}
    again = hub_catalog.snapshot_chunks(levels=levels, max_bytes=limit)
    assert [[p.sku for p in c.products] for c in again] == [
        [p.sku for p in c.products] for c in chunks
    ]
    assert all(len(encode(c)) <= limit for c in again)


def test_the_publisher_keeps_every_answer_within_the_devices_packet_size(
    db: Database, hub_catalog: HubCatalog
) -> None:
    hub_catalog.import_products((product(i), None) for i in range(60))
    renamed = [replace(product(i), name=f"New {i}") if i < 20 else product(i) for i in range(60)]
    hub_catalog.import_products((p, None) for p in renamed)  # a delta of 20 products
    assign_device(db, "kiosk-1", STORE)
    sent: list[bytes] = []
    publisher = CatalogPublisher(db, lambda _t, d: sent.append(d))
    max_packet = HEADROOM + 600  # about one product per chunk

    def ask(have: int) -> list[bytes]:
        sent.clear()
        request = CatalogRequest(have_version=have, have_store=STORE, max_packet=max_packet)
        publisher.on_request("kiosk-1", encode(request))
        assert all(len(data) <= max_packet - HEADROOM for data in sent)
        return list(sent)

    assert len(ask(0)) > 30
    delta = hub_catalog.delta(1)
    assert delta is not None and len(encode(delta)) > 600
    chunks = [msgspec.json.decode(d, type=SnapshotChunk) for d in ask(1)]  # not the delta
    assert {(c.kind, c.version) for c in chunks} == {("snapshot", 2)}
    sent.clear()
    count = publisher.publish_update(STORE, 1)  # a push keeps the limit the device gave
    assert count == len(sent) > 30 and all(len(d) <= max_packet - HEADROOM for d in sent)
