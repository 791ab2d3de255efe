"""Sales ingest: each sale stored once, contiguous progress, nothing half-committed.

Runs against SQLite (a file in tmp_path) and, when this machine has the PostgreSQL server
binaries and psycopg2, against a throwaway PostgreSQL cluster on a loopback port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peewee import Database, DatabaseError

from appliance.core.sale import Sale as SaleDocument
from appliance.core.sale import SaleLine
from appliance.core.tender import Tender
from appliance.mqtt.payloads import (
    MAX_REJECTIONS_PER_ACK,
    DecodeError,
    DeviceStatus,
    SaleEnvelope,
    SalesBatch,
)
from appliance.store.documents import encode_document
from hub.db import is_sqlite, open_hub_database
from hub.ingest import DeviceRecords, SalesIngest
from hub.migrations import SCHEMA_VERSION, migrate
from hub.models import Device, DeviceProgress, Sale, SaleRejection
from hub.stock_levels import sold_lines

START = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


# --- documents as a device makes them --------------------------------------------------


def sale_id_of(device: str, seq: int) -> str:
    """A stable sale id for a device's sequence number."""
    return f"{device}-sale-{seq:06d}"


def sale_document(
    device: str,
    seq: int,
    *,
    total: int = 250,
    kind: str = "sale",
    sale_id: str | None = None,
    clock_verified: bool = True,
) -> bytes:
    """A real committed document (appliance.core.sale.Sale) as the device stores and sends it."""
    amount = total if kind == "sale" else -total
    document = SaleDocument(
        id=sale_id or sale_id_of(device, seq),
        kind=kind,  # type: ignore[arg-type]
        device_id=device,
        created_at=START + timedelta(minutes=seq),
        currency="EUR",
        prices_include_tax=True,
        tax_rounding="line",
        lines=(SaleLine(1, "SKU-1", "Coffee", 1, "each", amount, 0, amount, "std", 2000),),
        taxes=(),
        discount_total=0,
        total=amount,
        tenders=(Tender("cash", amount),),
        sequence=seq,
        receipt_number=f"R-{seq:06d}",
        clock_verified=clock_verified,
    )
    return encode_document(document)


def envelope(
    device: str, seq: int, *, sale_id: str | None = None, total: int = 250
) -> SaleEnvelope:
    """One outbox row of a device."""
    sid = sale_id or sale_id_of(device, seq)
    body = sale_document(device, seq, total=total, sale_id=sid)
    return SaleEnvelope(seq=seq, sale_id=sid, document=msgspec.Raw(body))


def batch(device: str, seqs: Sequence[int]) -> SalesBatch:
    """A batch of the device's sales with these sequence numbers."""
    return SalesBatch(device=device, sales=[envelope(device, s) for s in seqs])


def stored(db: Database, device: str) -> list[tuple[int, str]]:
    """(seq, sale_id) of every stored sale of a device, by seq."""
    query = Sale.select(Sale.seq, Sale.sale_id).where(Sale.device == device).order_by(Sale.seq)
    return [(int(s), str(i)) for s, i in query.tuples().execute(db)]


def install_failing_trigger(db: Database, seq: int) -> None:
    """Make the database itself refuse the sale with this seq (a fault mid-batch)."""
    if is_sqlite(db):
        db.execute_sql(
            "CREATE TRIGGER fail_sale BEFORE INSERT ON sale "
            f"WHEN NEW.seq = {int(seq)} BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    else:
        db.execute_sql(
            "CREATE FUNCTION fail_sale() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'disk on fire'; END $$ LANGUAGE plpgsql"
        )
        db.execute_sql(
            "CREATE TRIGGER fail_sale BEFORE INSERT ON sale FOR EACH ROW "
            f"WHEN (NEW.seq = {int(seq)}) EXECUTE FUNCTION fail_sale()"
        )


def remove_failing_trigger(db: Database) -> None:
    """Undo install_failing_trigger."""
    db.execute_sql("DROP TRIGGER fail_sale" + ("" if is_sqlite(db) else " ON sale"))


def sqlite_hub(path: Path) -> Database:
    """A migrated SQLite hub database at `path`."""
    db = open_hub_database(f"sqlite:///{path}")
    migrate(db)
    return db


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind."""
    if request.param == "sqlite":
        db = sqlite_hub(tmp_path / "hub.db")
    else:
        db = request.getfixturevalue("postgres_hub")
        db.execute_sql("DROP TRIGGER IF EXISTS fail_sale ON sale")
        db.execute_sql("DROP FUNCTION IF EXISTS fail_sale()")
        db.execute_sql("TRUNCATE device, sale, device_progress, sale_rejection")
    yield db
    db.close()


@pytest.fixture(autouse=True)
def every_statement_prepared(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails a test whose ingest bound a prepared statement's values otherwise than peewee."""
    yield
    mismatches = [r.getMessage() for r in caplog.records if r.name == "hub.prepared"]
    assert mismatches == []


# --- the tests ------------------------------------------------------------------------


def test_the_same_batch_twice_stores_each_sale_once(hub_db: Database) -> None:
    ingest = SalesIngest(hub_db)
    first = ingest.ingest("kiosk-1", batch("kiosk-1", [1, 2, 3]))
    again = ingest.ingest("kiosk-1", batch("kiosk-1", [1, 2, 3]))
    assert (first.upto_seq, first.inserted, first.duplicates) == (3, 3, 0)
    assert (again.upto_seq, again.inserted, again.duplicates) == (3, 0, 3)
    assert stored(hub_db, "kiosk-1") == [(s, sale_id_of("kiosk-1", s)) for s in (1, 2, 3)]


def test_a_gap_is_acknowledged_below_it_until_it_is_filled(hub_db: Database) -> None:
    ingest = SalesIngest(hub_db)
    assert ingest.apply("kiosk-1", batch("kiosk-1", [1, 2, 4])) == 2
    assert ingest.progress("kiosk-1") == 2
    assert ingest.apply("kiosk-1", batch("kiosk-1", [3])) == 4
    assert ingest.progress("kiosk-1") == 4
    assert [seq for seq, _ in stored(hub_db, "kiosk-1")] == [1, 2, 3, 4]


def test_devices_progress_independently(hub_db: Database) -> None:
    ingest = SalesIngest(hub_db)
    assert ingest.apply("kiosk-1", batch("kiosk-1", [1, 2])) == 2
    assert ingest.apply("kiosk-2", batch("kiosk-2", [2, 3])) == 0
    assert ingest.apply("kiosk-2", batch("kiosk-2", [1])) == 3
    assert ingest.progress("kiosk-1") == 2


def test_the_stored_row_keeps_the_document_and_indexes_its_fields(hub_db: Database) -> None:
    SalesIngest(hub_db).apply(
        "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 7, total=1234)])
    )
    row = Sale.select().where(Sale.device == "kiosk-1").dicts().execute(hub_db)[0]
    assert row["document"].encode() == sale_document("kiosk-1", 7, total=1234)
    assert (row["kind"], row["total"], row["currency"]) == ("sale", 1234, "EUR")
    assert row["created_at"] == datetime(2024, 5, 1, 9, 7)  # naive UTC
    device = Device.select().where(Device.id == "kiosk-1").dicts().execute(hub_db)[0]
    assert device["last_seen"] is not None


def test_a_sale_stamped_before_the_devices_clock_was_verified_is_flagged(
    hub_db: Database,
) -> None:
    unverified = msgspec.Raw(sale_document("kiosk-1", 1, clock_verified=False))
    sales = [
        SaleEnvelope(seq=1, sale_id=sale_id_of("kiosk-1", 1), document=unverified),
        envelope("kiosk-1", 2),
    ]
    SalesIngest(hub_db).apply("kiosk-1", SalesBatch(device="kiosk-1", sales=sales))

    rows = Sale.select(Sale.seq, Sale.clock_verified).order_by(Sale.seq).tuples()
    assert list(rows.execute(hub_db)) == [(1, False), (2, True)]


def test_a_database_error_mid_batch_stores_nothing_and_keeps_progress(hub_db: Database) -> None:
    # chunk=2: the first two sales are already inserted when the database refuses seq 3.
    ingest = SalesIngest(hub_db, chunk=2)
    assert ingest.apply("kiosk-1", batch("kiosk-1", [1])) == 1
    install_failing_trigger(hub_db, seq=4)
    with pytest.raises(DatabaseError, match="disk on fire"):
        ingest.apply("kiosk-1", batch("kiosk-1", [2, 3, 4, 5]))
    assert stored(hub_db, "kiosk-1") == [(1, sale_id_of("kiosk-1", 1))]
    assert ingest.progress("kiosk-1") == 1
    remove_failing_trigger(hub_db)
    assert ingest.apply("kiosk-1", batch("kiosk-1", [2, 3, 4, 5])) == 5


def rejections(db: Database, device: str) -> list[tuple[int, str, str]]:
    """(seq, sale_id, code) of every rejection kept for a device, by seq."""
    query = (
        SaleRejection.select(SaleRejection.seq, SaleRejection.sale_id, SaleRejection.code)
        .where(SaleRejection.device == device)
        .order_by(SaleRejection.seq, SaleRejection.id)
    )
    return [(int(s), str(i), str(c)) for s, i, c in query.tuples().execute(db)]


def raw_envelope(seq: int, sale_id: str, document: bytes) -> SaleEnvelope:
    """An envelope around any bytes."""
    return SaleEnvelope(seq=seq, sale_id=sale_id, document=msgspec.Raw(document))


def without(document: bytes, field: str) -> bytes:
    """A document with one field taken out."""
    body = msgspec.json.decode(document)
    del body[field]
    return msgspec.json.encode(body)


def test_a_sequence_held_by_another_sale_is_rejected_as_a_conflict_and_passed(
    hub_db: Database,
) -> None:
    ingest = SalesIngest(hub_db)
    assert ingest.apply("kiosk-1", batch("kiosk-1", [1, 2])) == 2
    # A reflashed device numbering from 1 again: its new sale 2 is kept apart and named.
    clash = SalesBatch(
        device="kiosk-1",
        sales=[envelope("kiosk-1", 2, sale_id="new-sale-2"), envelope("kiosk-1", 3)],
        acked_upto=1,
    )
    result = ingest.ingest("kiosk-1", clash)
    assert result.conflicts == (2,)
    assert result.upto_seq == 3
    assert [(r.seq, r.sale_id, r.code) for r in result.rejected] == [(2, "new-sale-2", "conflict")]
    assert result.rejected[0].reason == f"seq 2 holds sale {sale_id_of('kiosk-1', 2)}"
    assert "new-sale-2" not in {sid for _, sid in stored(hub_db, "kiosk-1")}
    assert rejections(hub_db, "kiosk-1") == [(2, "new-sale-2", "conflict")]
    document = SaleRejection.select(SaleRejection.document).scalar(hub_db)
    assert bytes(document) == bytes(clash.sales[0].document)  # kept byte for byte


def test_a_sale_id_stored_at_another_seq_is_a_conflict(hub_db: Database) -> None:
    ingest = SalesIngest(hub_db)
    ingest.apply("kiosk-1", batch("kiosk-1", [1]))
    moved = envelope("kiosk-1", 2, sale_id=sale_id_of("kiosk-1", 1))
    result = ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[moved]))
    assert result.upto_seq == 2
    assert [(r.seq, r.code) for r in result.rejected] == [(2, "conflict")]
    assert result.rejected[0].reason == f"sale {sale_id_of('kiosk-1', 1)} is stored at seq 1"


def test_a_sale_resent_with_other_content_is_a_conflict_not_a_duplicate(
    hub_db: Database,
) -> None:
    ingest = SalesIngest(hub_db)
    ingest.apply("kiosk-1", batch("kiosk-1", [1]))
    changed = envelope("kiosk-1", 1, total=999)
    result = ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[changed], acked_upto=0))
    assert (result.upto_seq, result.duplicates) == (1, 0)
    assert [(r.seq, r.code) for r in result.rejected] == [(1, "conflict")]
    assert "other content" in result.rejected[0].reason
    total = Sale.select(Sale.total).where(Sale.device == "kiosk-1").scalar(hub_db)
    assert total == 250  # the hub keeps its first copy


def test_a_document_the_hub_cannot_read_is_rejected_and_the_stream_goes_on(
    hub_db: Database,
) -> None:
    ingest = SalesIngest(hub_db)
    bad = raw_envelope(2, sale_id_of("kiosk-1", 2), without(sale_document("kiosk-1", 2), "lines"))
    sales = [envelope("kiosk-1", 1), bad, envelope("kiosk-1", 3)]
    result = ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=sales))
    assert (result.upto_seq, result.inserted, result.invalid) == (3, 2, (2,))
    assert [(r.seq, r.code) for r in result.rejected] == [(2, "invalid")]
    assert "lines" in result.rejected[0].reason
    assert [seq for seq, _ in stored(hub_db, "kiosk-1")] == [1, 3]
    # Resent, it is not stored twice, and the ack still names it.
    again = ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=sales, acked_upto=0))
    assert (again.upto_seq, again.inserted, again.duplicates) == (3, 0, 3)
    assert [r.seq for r in again.rejected] == [2]
    assert rejections(hub_db, "kiosk-1") == [(2, sale_id_of("kiosk-1", 2), "invalid")]


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"not json", "not a SaleDocument"),
        (b'{"kind":"sale","created_at":"2024-05-01T09:00:00Z","currency":"EUR"}', "missing"),
        (without(sale_document("kiosk-1", 1), "total"), "total"),
        (sale_document("kiosk-1", 1).replace(b'"total":250', b'"total":' + b"9" * 22), "total"),
        (sale_document("kiosk-1", 1).replace(b'"EUR"', b'"EURO"'), "currency"),
        (sale_document("kiosk-1", 1).replace(b':00Z"', b':00"'), "offset"),
        (sale_document("kiosk-1", 1, sale_id="other"), "is not the sale id"),
        (sale_document("kiosk-1", 7, sale_id=sale_id_of("kiosk-1", 1)), "sequence 7 is not seq 1"),
    ],
)
def test_what_makes_a_document_invalid(hub_db: Database, document: bytes, words: str) -> None:
    bad = raw_envelope(1, sale_id_of("kiosk-1", 1), document)
    result = SalesIngest(hub_db).ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[bad]))
    assert result.upto_seq == 1
    assert [r.code for r in result.rejected] == ["invalid"]
    assert words in result.rejected[0].reason
    assert stored(hub_db, "kiosk-1") == []


def test_every_stored_sale_can_be_read_for_stock(hub_db: Database) -> None:
    SalesIngest(hub_db).apply("kiosk-1", batch("kiosk-1", [1, 2, 3]))
    for (document,) in Sale.select(Sale.document).tuples().execute(hub_db):
        assert [line.sku for line in sold_lines(document)] == ["SKU-1"]


def test_the_ack_names_rejections_above_what_the_device_applied(hub_db: Database) -> None:
    ingest = SalesIngest(hub_db)
    bad = raw_envelope(2, sale_id_of("kiosk-1", 2), b"{}")
    sales = [envelope("kiosk-1", 1), bad, envelope("kiosk-1", 3)]
    assert [
        r.seq for r in ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=sales)).rejected
    ] == [2]
    # That ack was lost: the next batch says the device applied nothing yet.
    lost = SalesBatch(device="kiosk-1", sales=batch("kiosk-1", [4, 5]).sales, acked_upto=0)
    result = ingest.ingest("kiosk-1", lost)
    assert (result.upto_seq, [r.seq for r in result.rejected]) == (5, [2])
    applied = SalesBatch(device="kiosk-1", sales=batch("kiosk-1", [6]).sales, acked_upto=5)
    assert ingest.ingest("kiosk-1", applied).rejected == ()
    # Without acked_upto (older devices) only this batch's range is named.
    assert ingest.ingest("kiosk-1", batch("kiosk-1", [7])).rejected == ()


def test_past_the_cap_the_ack_stops_below_the_first_rejection_not_named(
    hub_db: Database,
) -> None:
    ingest = SalesIngest(hub_db)
    cap = MAX_REJECTIONS_PER_ACK
    sales = [raw_envelope(seq, f"bad-{seq}", b"{}") for seq in range(1, cap + 6)]
    result = ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=sales, acked_upto=0))
    assert [r.seq for r in result.rejected] == list(range(1, cap + 1))
    assert result.upto_seq == cap
    assert ingest.progress("kiosk-1") == cap + 5  # the hub holds them all
    rest = ingest.ingest(
        "kiosk-1", SalesBatch(device="kiosk-1", sales=sales[cap:], acked_upto=result.upto_seq)
    )
    assert rest.upto_seq == cap + 5
    assert [r.seq for r in rest.rejected] == list(range(cap + 1, cap + 6))


def test_an_empty_batch_is_answered_with_the_progress(hub_db: Database) -> None:
    ingest = SalesIngest(hub_db)
    assert ingest.apply("kiosk-1", SalesBatch(device="kiosk-1", sales=[])) == 0
    ingest.apply("kiosk-1", batch("kiosk-1", [1, 2]))
    result = ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[]))
    assert (result.upto_seq, result.inserted, result.rejected) == (2, 0, ())


def test_a_batch_naming_another_device_is_refused_whole(hub_db: Database) -> None:
    with pytest.raises(DecodeError, match="names device"):
        SalesIngest(hub_db).apply("kiosk-1", batch("kiosk-2", [1]))
    assert stored(hub_db, "kiosk-1") == stored(hub_db, "kiosk-2") == []


def test_a_sale_id_too_long_to_keep_makes_the_batch_malformed(hub_db: Database) -> None:
    long = envelope("kiosk-1", 2, sale_id="x" * 65)
    with pytest.raises(DecodeError, match="65 characters"):
        SalesIngest(hub_db).apply(
            "kiosk-1", SalesBatch(device="kiosk-1", sales=[envelope("kiosk-1", 1), long])
        )
    assert stored(hub_db, "kiosk-1") == []


def by_two_workers(db: Database, apply: Callable[[Any], object], batches: list[Any]) -> None:
    """Hand alternate batches to two threads at once, the second in reverse; re-raise."""
    failures: list[BaseException] = []

    def worker(mine: list[Any]) -> None:
        try:
            for one in mine:
                apply(one)
        except BaseException as err:  # surfaced in the main thread below
            failures.append(err)
        finally:
            db.close()  # this thread's connection

    threads = [
        threading.Thread(target=worker, args=(batches[0::2],)),
        threading.Thread(target=worker, args=(list(reversed(batches[1::2])),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures


def test_two_workers_ingesting_one_device_at_once_lose_nothing(hub_db: Database) -> None:
    # Shared subscriptions hand consecutive batches of one device to different workers;
    # the per-device lock must keep the progress from going back or stopping short.
    batches = [batch("kiosk-1", range(start, start + 5)) for start in range(1, 201, 5)]
    by_two_workers(hub_db, lambda one: SalesIngest(hub_db).apply("kiosk-1", one), batches)
    assert SalesIngest(hub_db).progress("kiosk-1") == 200
    assert [seq for seq, _ in stored(hub_db, "kiosk-1")] == list(range(1, 201))


_counter = iter(range(10**9))


@pytest.fixture(scope="module")
def shared_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One SQLite hub database for every example of a property test."""
    db = sqlite_hub(tmp_path_factory.mktemp("prop") / "hub.db")
    yield db
    db.close()


@settings(max_examples=40, deadline=None)
@given(
    deliveries=st.lists(
        st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=8),
        min_size=1,
        max_size=12,
    )
)
def test_any_delivery_order_acks_exactly_the_contiguous_prefix(
    shared_sqlite: Database, deliveries: list[list[int]]
) -> None:
    db = shared_sqlite
    device = f"prop-{next(_counter)}"  # a fresh device per example, one database for all
    ingest = SalesIngest(db)
    seen: set[int] = set()
    last = 0
    for seqs in deliveries:
        upto = ingest.apply(device, batch(device, sorted(set(seqs))))
        seen.update(seqs)
        expected = 0
        while expected + 1 in seen:
            expected += 1
        assert upto == expected
        assert upto >= last  # never goes back
        last = upto
    assert [seq for seq, _ in stored(db, device)] == sorted(seen)
    assert DeviceProgress.select().where(DeviceProgress.device == device).count(db) == 1


def test_a_will_older_than_the_last_birth_is_ignored(hub_db: Database) -> None:
    records = DeviceRecords(hub_db)

    def status(online: bool, bd_seq: int) -> bool:
        payload = DeviceStatus(device="kiosk-1", online=online, bd_seq=bd_seq, firmware="1.4.0")
        return records.record_status("kiosk-1", payload)

    def online() -> tuple[bool, int]:
        query = Device.select(Device.online, Device.bd_seq).where(Device.id == "kiosk-1")
        found, bd_seq = query.tuples().execute(hub_db)[0]
        return bool(found), int(bd_seq)

    assert status(online=False, bd_seq=4) is True  # a will of a device never seen before
    assert online() == (False, 4)
    assert status(online=True, bd_seq=5) is True
    assert status(online=False, bd_seq=4) is False  # the will of the session before
    assert online() == (True, 5)
    assert status(online=False, bd_seq=5) is True
    assert online() == (False, 5)
    with pytest.raises(DecodeError, match="names"):
        records.record_status("kiosk-2", DeviceStatus(device="kiosk-1", online=True, bd_seq=1))


def test_migrate_twice_changes_nothing(hub_db: Database) -> None:
    assert migrate(hub_db) == []


def test_a_hub_from_before_the_clock_flag_gains_it_with_its_sales_taken_as_verified(
    hub_db: Database,
) -> None:
    SalesIngest(hub_db).apply("kiosk-1", batch("kiosk-1", [1]))
    # The hub as version 2 left it: no column, and its version says so.
    hub_db.execute_sql("ALTER TABLE sale DROP COLUMN clock_verified")
    hub_db.execute_sql("UPDATE hub_schema SET version = 2")

    applied = migrate(hub_db)

    assert [m.version for m in applied] == list(range(3, SCHEMA_VERSION + 1))
    rows = Sale.select(Sale.seq, Sale.clock_verified).tuples().execute(hub_db)
    assert list(rows) == [(1, True)]  # nothing then knew otherwise
    assert migrate(hub_db) == []


def test_a_hub_from_before_rejections_counts_none_and_then_keeps_count(hub_db: Database) -> None:
    ingest = SalesIngest(hub_db)
    ingest.apply("kiosk-1", batch("kiosk-1", [1]))
    # The hub as version 4 left it: no tally of rejections per device.
    hub_db.execute_sql("ALTER TABLE device_progress DROP COLUMN rejected")
    hub_db.execute_sql("UPDATE hub_schema SET version = 4")

    assert [m.version for m in migrate(hub_db)] == list(range(5, SCHEMA_VERSION + 1))

    def tally() -> int:
        query = DeviceProgress.select(DeviceProgress.rejected)
        return int(query.where(DeviceProgress.device == "kiosk-1").scalar(hub_db))

    assert tally() == 0
    clash = envelope("kiosk-1", 2, sale_id=sale_id_of("kiosk-1", 1))  # a sale id held at 1
    result = ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[clash]))
    assert [(r.seq, r.code) for r in result.rejected] == [(2, "conflict")]
    assert (result.upto_seq, tally()) == (2, 1)
    result = ingest.ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[clash], acked_upto=0))
    assert (result.upto_seq, tally()) == (2, 1)  # the resend is not counted twice
    assert [r.seq for r in result.rejected] == [2]
