"""JournalUploader over a real mosquitto to the real hub worker: the journal arrives once.

The device keeps every entry and remembers only the number the hub acknowledged; the hub
stores each entry once on (device, number) and proves the chain. Each test checks both
ends: the hub's rows and the device's `journal_acked_upto`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from peewee import Database

from appliance.mqtt.journal_uploader import JournalUploader
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import JournalBatch
from appliance.mqtt.telemetry import JournalHealth, TelemetryBuilder, TelemetryPublisher
from appliance.store.hub_session import SessionStore
from appliance.store.journal import FiscalJournal
from appliance.store.journal_outbox import JournalOutbox
from hub.cli_fleet import fleet
from hub.db import open_hub_database
from hub.journal_ingest import JournalIngest, JournalResult
from hub.migrations import migrate
from hub.models import JournalEntry
from hub.server import BrokerEndpoint, HubServer
from tests.broker import MosquittoBroker
from tests.hub.journal_entries import day
from tests.mqtt.fake_hub import DeviceStore, eventually
from tests.store.crash_writer import DEVICE_ID

WAIT = 30.0


class DroppingIngest:
    """The real ingest; the first batch that completes entry `drop_at` is never acknowledged.

    Raising after the commit is the hub dying between its commit and its ack: the entries
    are stored, the device hears nothing and must resend them. (An earlier lost ack would
    be covered by the next batch's: acknowledgements are cumulative.)
    """

    def __init__(self, db: Database, drop_at: int = 0) -> None:
        self._ingest = JournalIngest(db)
        self._lock = threading.Lock()
        self.drop_at = drop_at
        self.results: list[JournalResult] = []

    def ingest(self, device: str, batch: JournalBatch) -> JournalResult:
        """Store, record, and maybe lose the acknowledgement."""
        result = self._ingest.ingest(device, batch)
        with self._lock:
            self.results.append(result)
            if self.drop_at and result.upto >= self.drop_at:
                self.drop_at = 0
                raise RuntimeError("the hub stopped between its commit and its ack")
        return result


@pytest.fixture
def hub_db(tmp_path: Path) -> Iterator[Database]:
    """The hub's SQLite database."""
    db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(db)
    yield db
    db.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DeviceStore]:
    """The appliance's database, a few sales in it."""
    device = DeviceStore(tmp_path / "data" / "appliance.db")
    device.sell(5)
    yield device
    device.close()


def journal_days(store: DeviceStore, days: int) -> int:
    """Chain `days` small days of shift, drawer and report events; returns the head."""
    journal = FiscalJournal(store.db)
    for number in range(1, days + 1):
        for kind, event in day(number):
            if kind != "sale":  # the ledger chains its own sales
                journal.append(kind, event)
    head = journal.head()
    assert head is not None
    return head.number


def serve(db: Database, broker: MosquittoBroker, ingest: DroppingIngest) -> HubServer:
    """A started hub worker with the given journal ingest."""
    server = HubServer(db, BrokerEndpoint(broker.host, broker.port), journal=ingest)
    server.start()
    return server


def hub_numbers(db: Database) -> list[int]:
    query = (
        JournalEntry.select(JournalEntry.number)
        .where(JournalEntry.device == DEVICE_ID)
        .order_by(JournalEntry.number)
    )
    return [int(n) for (n,) in query.tuples().execute(db)]


def uploading(
    store: DeviceStore, broker: MosquittoBroker, **options: object
) -> tuple[PahoHubLink, JournalUploader]:
    link = PahoHubLink(DEVICE_ID, broker.host, broker.port, session_store=SessionStore(store.db))
    uploader = JournalUploader(JournalOutbox(store.db), link, **options)  # type: ignore[arg-type]
    link.open()
    uploader.start()
    return link, uploader


def test_a_lost_acknowledgement_and_a_restart_leave_every_entry_at_the_hub_once(
    store: DeviceStore, broker: MosquittoBroker, hub_db: Database
) -> None:
    head = journal_days(store, 20)
    ingest = DroppingIngest(hub_db, drop_at=head)
    server = serve(hub_db, broker, ingest)
    try:
        link, uploader = uploading(
            store, broker, batch_size=25, ack_timeout_s=1.0, backoff_min_s=0.1, backoff_max_s=0.5
        )
        try:
            assert uploader.wait_for(lambda s: s.acked_upto == head, WAIT)
            stats = uploader.stats()
        finally:
            uploader.close()
            link.close()
        assert stats.failures >= 1 and stats.published_items > head  # the lost ack: resent
        assert sum(r.duplicates for r in ingest.results) > 0
        assert JournalOutbox(store.db).acked_upto() == head
        # After a restart the device resumes after the number it kept: nothing is sent twice.
        more = journal_days(store, 2)
        ingest.results.clear()
        link, uploader = uploading(store, broker, batch_size=25)
        try:
            assert uploader.wait_for(lambda s: s.acked_upto == more, WAIT)
        finally:
            uploader.close()
            link.close()
        assert sum(r.duplicates for r in ingest.results) == 0
        assert sum(r.inserted for r in ingest.results) == more - head
    finally:
        server.stop()
    assert sorted(hub_numbers(hub_db)) == list(range(1, more + 1))
    state = JournalIngest(hub_db).state(DEVICE_ID)
    assert state is not None and state.ok and state.upto == more
    assert JournalOutbox(store.db).acked_upto() == more


def test_an_entry_edited_on_the_device_is_flagged_in_fleet_show_and_its_telemetry(
    store: DeviceStore, broker: MosquittoBroker, hub_db: Database, tmp_path: Path
) -> None:
    head = journal_days(store, 2)
    # What someone with the sqlite3 tool does: a no-sale opening becomes a sale's.
    (number,) = store.db.execute_sql(
        "SELECT MIN(number) FROM journal WHERE kind = 'drawer'"
        " AND CAST(body AS TEXT) LIKE '%no_sale%'"
    ).fetchone()
    store.db.execute_sql(
        "UPDATE journal SET body = CAST(REPLACE(CAST(body AS TEXT), 'no_sale', 'sale') AS BLOB)"
        " WHERE number = ?",
        (number,),
    )
    server = serve(hub_db, broker, DroppingIngest(hub_db))
    try:
        link, uploader = uploading(store, broker)
        telemetry = TelemetryPublisher(
            link,
            TelemetryBuilder(
                DEVICE_ID,
                store.outbox,
                lambda: 1,
                data_dir=tmp_path,
                journal=JournalHealth(FiscalJournal(store.db), JournalOutbox(store.db)).report,
            ),
        )
        try:
            assert uploader.wait_for(lambda s: s.acked_upto == head, WAIT)
            assert eventually(telemetry.publish_now)
            assert eventually(lambda: server.stats.telemetry >= 1)
        finally:
            uploader.close()
            link.close()
    finally:
        server.stop()
    result = CliRunner().invoke(
        fleet,
        ["show", DEVICE_ID, "--db", f"sqlite:///{tmp_path / 'hub.db'}"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    lines = {" ".join(line.split()) for line in result.output.splitlines()}
    assert (
        f"journal {head} entries, head {head}, committed up to {head}, chain BROKEN at entry"
        f" {number}: its content does not match its hash"
    ) in lines
    assert any(
        line.startswith(f"journal on the device head {head}, hub confirmed")
        and f"own check broken at {number}" in line
        for line in lines
    ), lines
    assert JournalOutbox(store.db).acked_upto() == head  # a break is stored and acknowledged


def test_a_hub_restored_from_an_older_backup_gets_the_entries_it_lost_again(
    store: DeviceStore, broker: MosquittoBroker, hub_db: Database, tmp_path: Path
) -> None:
    head = journal_days(store, 3)
    server = serve(hub_db, broker, DroppingIngest(hub_db))
    link, uploader = uploading(store, broker)
    try:
        assert uploader.wait_for(lambda s: s.acked_upto == head, WAIT)
        server.stop()
        # The hub comes back on a database that lost everything since its last backup.
        restored = open_hub_database(f"sqlite:///{tmp_path / 'restored.db'}")
        migrate(restored)
        server = serve(restored, broker, DroppingIngest(restored))
        more = journal_days(store, 1)
        uploader.wake()
        assert eventually(lambda: hub_numbers(restored) == list(range(1, more + 1)), WAIT)
        assert uploader.wait_for(lambda s: s.acked_upto == more, WAIT)
    finally:
        uploader.close()
        link.close()
        server.stop()
    state = JournalIngest(restored).state(DEVICE_ID)
    assert state is not None and state.ok and state.upto == more
    assert JournalOutbox(store.db).acked_upto() == more
    restored.close()


def test_the_acknowledged_journal_number_only_grows(store: DeviceStore) -> None:
    outbox = JournalOutbox(store.db)
    assert (outbox.acknowledge(3), outbox.acked_upto(), outbox.waiting()) == (3, 3, 2)
    assert (outbox.acknowledge(1), outbox.acked_upto()) == (0, 3)  # a late, older ack
