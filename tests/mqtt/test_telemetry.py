"""Health telemetry: the figures it gathers, and its delivery over a real mosquitto
(QoS 0 with a message expiry, at once after connecting or a lock, then on its interval)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance import __version__
from appliance.core.devices import DeviceHealth, DeviceHealthChanged
from appliance.core.events import EventBus, KioskLockChanged
from appliance.core.offline_limits import TOTAL_REACHED, OfflineLimits
from appliance.core.storage import StorageStatus
from appliance.errors import StoreError
from appliance.mqtt import topics
from appliance.mqtt.fleet_actions import KioskLock
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import (
    DeviceHealthReport,
    OfflineCardsReport,
    StoredValueReport,
    Telemetry,
    decode,
    encode,
)
from appliance.mqtt.telemetry import (
    EXPIRY_S,
    DeviceHealthBoard,
    JournalHealth,
    OfflineCards,
    StoredValueWaiting,
    TelemetryBuilder,
    TelemetryPublisher,
    cpu_temperature,
)
from appliance.store.card_debits import CardDebitStore
from appliance.store.journal import FiscalJournal
from appliance.store.journal_outbox import JournalOutbox
from appliance.store.outbox import Rejection
from appliance.store.payment_attempts import OfflineUsage
from tests.broker import MosquittoBroker
from tests.mqtt.fake_hub import DeviceStore, FakeHub, eventually
from tests.store.crash_writer import DEVICE_ID

WAIT = 15.0
SCANNER = DeviceHealth("front-scanner", "scanner", "ok")
PRINTER = DeviceHealth("printer", "printer", "degraded", reason="paper low")


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 500.0
        self.wall = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def monotonic(self) -> float:
        """The current fake monotonic time."""
        return self.t

    def now(self) -> datetime:
        """The fixed wall time."""
        return self.wall


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DeviceStore]:
    """An appliance database with three sales waiting in the outbox."""
    device = DeviceStore(tmp_path / "data" / "appliance.db")
    device.sell(3)
    yield device
    device.close()


def builder_for(store: DeviceStore, tmp_path: Path, **options: object) -> TelemetryBuilder:
    """A builder over the store, its database folder as the data partition."""
    return TelemetryBuilder(
        DEVICE_ID,
        store.outbox,
        store.catalog.version,
        data_dir=store.path.parent,
        thermal_zone=tmp_path / "no-sensor",
        **options,  # type: ignore[arg-type]
    )


def test_the_builder_reports_every_figure(store: DeviceStore, tmp_path: Path) -> None:
    clock = FakeClock()
    thermal = tmp_path / "temp"
    thermal.write_text("48250\n")  # the kernel's millidegrees
    builder = TelemetryBuilder(
        DEVICE_ID,
        store.outbox,
        store.catalog.version,
        data_dir=store.path.parent,
        malformed=lambda: 4,
        clock=clock,
        thermal_zone=thermal,
        image_version="2026.12.1-3-gabc1234",
        locked=lambda: True,
    )
    clock.t += 12.5
    report = builder.build([SCANNER, PRINTER])
    assert report.device == DEVICE_ID
    assert report.at == "2024-05-01T12:00:00+00:00"
    assert report.firmware == __version__
    assert report.uptime_s == 12.5
    assert report.outbox_depth == 3
    assert report.catalog_version == store.catalog.version() > 0
    assert report.disk_free_bytes > 0
    assert report.cpu_temp_c == 48.25
    assert report.malformed_messages == 4
    assert report.devices == [
        DeviceHealthReport(device="front-scanner", kind="scanner", state="ok"),
        DeviceHealthReport(device="printer", kind="printer", state="degraded", reason="paper low"),
    ]
    assert (report.quarantined_sales, report.catalog_store) == (0, "")
    assert report.image_version == "2026.12.1-3-gabc1234"
    assert report.locked
    assert decode(encode(report), Telemetry).locked
    assert not builder_for(store, tmp_path).build().locked  # no fleet lock: never locked


def test_the_builder_reports_quarantined_sales_and_the_catalog_store(
    store: DeviceStore, tmp_path: Path
) -> None:
    rows = store.outbox.pending()
    rejected = [Rejection(rows[1].sequence, rows[1].document_id, "invalid", "no lines")]
    store.outbox.acknowledge(rows[1].sequence, rejected)
    store.db.execute_sql("INSERT INTO meta (key, value) VALUES ('catalog_store', 'berlin-1')")
    report = builder_for(store, tmp_path).build()
    assert (report.outbox_depth, report.quarantined_sales) == (1, 1)
    assert report.catalog_store == "berlin-1"


def test_the_builder_reports_offline_card_payments_and_their_limits(
    store: DeviceStore, tmp_path: Path
) -> None:
    clock = FakeClock()
    usage = OfflineUsage(2, 4_500, clock.wall - timedelta(hours=3))
    offline = OfflineCards(lambda: usage, OfflineLimits(), "EUR", clock=clock)
    report = builder_for(store, tmp_path, offline_cards=offline.report).build()
    expected = OfflineCardsReport(
        count=2,
        amount=4_500,
        currency="EUR",
        oldest_age_s=10_800.0,
        max_per_payment=5_000,
        max_total=25_000,
        max_age_s=86_400.0,
        blocked="",
    )
    assert report.offline_cards == expected
    assert decode(encode(report), Telemetry).offline_cards == expected

    usage = OfflineUsage(6, 25_000, clock.wall - timedelta(hours=1))
    blocked = offline.report()
    assert blocked is not None and blocked.blocked == TOTAL_REACHED
    assert OfflineCards(lambda: OfflineUsage(0, 0, None), OfflineLimits(), "EUR").report() == (
        OfflineCardsReport(
            count=0,
            amount=0,
            currency="EUR",
            max_per_payment=5_000,
            max_total=25_000,
            max_age_s=86_400.0,
        )
    )


def test_an_unreadable_journal_leaves_the_offline_figures_out(
    store: DeviceStore, tmp_path: Path
) -> None:
    def broken() -> OfflineUsage:
        raise StoreError("the payment journal could not be read: disk I/O error")

    offline = OfflineCards(broken, OfflineLimits(), "EUR")
    report = builder_for(store, tmp_path, offline_cards=offline.report).build()
    assert report.offline_cards is None
    assert builder_for(store, tmp_path).build().offline_cards is None


def test_without_a_readable_sensor_the_temperature_is_none(tmp_path: Path) -> None:
    assert cpu_temperature(tmp_path / "missing") is None
    garbage = tmp_path / "temp"
    garbage.write_text("hot\n")
    assert cpu_temperature(garbage) is None


def test_the_health_board_keeps_the_latest_state_of_each_device() -> None:
    bus = EventBus()
    board = DeviceHealthBoard([SCANNER])
    bus.subscribe(DeviceHealthChanged, board.changed)
    bus.post(DeviceHealthChanged(PRINTER))
    bus.post(DeviceHealthChanged(DeviceHealth("front-scanner", "scanner", "offline", "unplugged")))
    bus.drain()
    assert [(h.device, h.state) for h in board.snapshot()] == [
        ("front-scanner", "offline"),
        ("printer", "degraded"),
    ]


@pytest.fixture
def hub(broker: MosquittoBroker) -> Iterator[FakeHub]:
    """A fake hub recording health messages."""
    fake = FakeHub(broker.host, broker.port)
    fake.start()
    yield fake
    fake.stop()


def test_telemetry_goes_out_qos0_with_an_expiry_at_connect_and_then_on_its_interval(
    store: DeviceStore, tmp_path: Path, hub: FakeHub, link: PahoHubLink
) -> None:
    board = DeviceHealthBoard([SCANNER, PRINTER])
    publisher = TelemetryPublisher(
        link, builder_for(store, tmp_path), health=board.snapshot, interval_s=0.05
    )
    with publisher:
        link.open()
        assert hub.wait_for(lambda: len(hub.health) >= 3, WAIT)
    with hub._cond:
        first = hub.health[0]
    assert first.qos == 0
    assert first.expiry_s is not None and 0 < first.expiry_s <= EXPIRY_S
    assert first.telemetry.device == DEVICE_ID
    assert first.telemetry.outbox_depth == 3
    assert [d.device for d in first.telemetry.devices] == ["front-scanner", "printer"]
    assert publisher.sent >= 3


def test_malformed_messages_are_reported_in_telemetry(
    store: DeviceStore, tmp_path: Path, hub: FakeHub, link: PahoHubLink
) -> None:
    builder = builder_for(store, tmp_path, malformed=lambda: link.dispatcher.malformed)
    publisher = TelemetryPublisher(link, builder, interval_s=3600.0)
    with publisher:
        link.open()
        assert hub.wait_for(lambda: len(hub.health) == 1, WAIT)  # sent on connect
        hub.publish_raw(topics.sales_ack(DEVICE_ID), b"\x00garbage")
        hub.publish_raw(topics.command(DEVICE_ID), b'{"v": 1}')
        assert eventually(lambda: link.dispatcher.malformed == 2)
        assert publisher.publish_now()
        assert hub.wait_for(lambda: len(hub.health) == 2, WAIT)
    with hub._cond:
        counts = [m.telemetry.malformed_messages for m in hub.health]
    assert counts == [0, 2]


def test_a_lock_and_an_unlock_go_out_at_once_not_at_the_next_interval(
    store: DeviceStore, tmp_path: Path, hub: FakeHub, link: PahoHubLink
) -> None:
    bus = EventBus()
    lock = KioskLock(bus)
    builder = builder_for(store, tmp_path, locked=lambda: lock.locked)
    publisher = TelemetryPublisher(link, builder, interval_s=3600.0)
    publisher.nudge_on(bus, KioskLockChanged)
    with publisher:
        link.open()
        assert hub.wait_for(lambda: len(hub.health) == 1, WAIT)  # sent on connect
        lock.set(True, "cmd-1")
        assert bus.drain() == 1  # this thread is the main loop here
        assert hub.wait_for(lambda: len(hub.health) == 2, WAIT)
        lock.set(False, "cmd-2")
        bus.drain()
        assert hub.wait_for(lambda: len(hub.health) == 3, WAIT)
    with hub._cond:
        locked = [m.telemetry.locked for m in hub.health]
    assert locked == [False, True, False]


def test_nothing_is_published_while_the_link_is_down(
    store: DeviceStore, tmp_path: Path, link: PahoHubLink
) -> None:
    publisher = TelemetryPublisher(link, builder_for(store, tmp_path))
    assert not publisher.publish_now()
    assert publisher.sent == 0


def test_a_failing_card_still_reports_its_storage_and_the_last_figures(
    store: DeviceStore, tmp_path: Path
) -> None:
    """The fleet admin needs health most when the card fails: it is built from memory then."""
    failing = False
    status = StorageStatus("ok", 50 * 2**20, 100 * 2**20, 64 * 2**20)

    def version() -> int:
        if failing:
            raise StoreError("storage I/O error: the catalog version could not be read")
        return store.catalog.version()

    builder = TelemetryBuilder(
        DEVICE_ID,
        store.outbox,
        version,  # a figure a failing card cannot read
        data_dir=store.path.parent,
        thermal_zone=tmp_path / "no-sensor",
        storage=lambda: status,
    )
    healthy = builder.build()
    assert healthy.storage is not None and healthy.storage.state == "ok"
    assert healthy.storage.problem == ""

    failing = True
    status = StorageStatus("io_error", 50 * 2**20, 100 * 2**20, 64 * 2**20, "disk I/O error")
    report = decode(encode(builder.build()), Telemetry)

    assert report.catalog_version == healthy.catalog_version > 0  # the last one read
    assert report.outbox_depth == 3
    assert report.storage is not None
    assert (report.storage.state, report.storage.free_bytes) == ("io_error", 50 * 2**20)
    assert report.storage.problem.startswith("storage failed: the SD card returned an I/O error")


def test_the_journal_report_carries_head_ack_and_the_last_whole_chain_check(
    store: DeviceStore,
) -> None:
    clock = FakeClock()
    outbox = JournalOutbox(store.db)
    health = JournalHealth(FiscalJournal(store.db), outbox, clock=clock, check_every_s=3600)
    outbox.acknowledge(2)
    report = health.report()
    assert report is not None
    assert (report.head, report.acked_upto, report.broken_at) == (3, 2, None)
    assert report.checked_at == clock.wall.isoformat()
    # Edited after the check: reported at the next check, not before (it reads every entry).
    store.db.execute_sql("UPDATE journal SET at = '2000-01-01T00:00:00+00:00' WHERE number = 2")
    clock.t += 3599
    assert health.report().broken_at is None  # type: ignore[union-attr]
    clock.t += 1
    broken = health.report()
    assert broken is not None and broken.broken_at == 2
    assert broken.problem == "its content does not match its hash"


def test_the_builder_reports_stored_value_debits_the_hub_has_not_had(
    store: DeviceStore, tmp_path: Path
) -> None:
    clock = FakeClock()
    debits = CardDebitStore(store.db)
    waiting = StoredValueWaiting(debits, "EUR", clock=clock)
    report = builder_for(store, tmp_path, stored_value=waiting.report)
    assert report.build().stored_value == StoredValueReport(
        debits=0, debit_amount=0, currency="EUR"
    )

    taken = clock.wall - timedelta(hours=2)
    debits.remember("card-a", "EUR", 5_000, 10, taken)
    for n, amount in enumerate((1_250, 700)):
        debits.take_offline(
            f"off-{n}", "card-a", amount, "EUR", limit=10_000, day=taken.date(), at=taken
        )
    later = clock.wall - timedelta(minutes=5)
    debits.void("gone-1", card="card-a", amount=300, currency="EUR", day=later.date(), at=later)
    # Online requests are not counted: one being asked now, one the hub declined.
    long_ago = clock.wall - timedelta(hours=5)
    for reference in ("asking-1", "declined-1"):
        debits.asking(reference, "card-a", 900, "EUR", day=long_ago.date(), at=long_ago)
    debits.declined("declined-1")

    expected = StoredValueReport(
        debits=2,
        debit_amount=1_950,
        voids=1,
        void_amount=300,
        currency="EUR",
        oldest_age_s=7_200.0,
    )
    sent = report.build()
    assert sent.stored_value == expected
    assert decode(encode(sent), Telemetry).stored_value == expected

    # The hub answers: what it has had is no longer waiting.
    debits.settle("off-0", voided=False, balance=3_750, points=10, currency="EUR", at=later)
    debits.settle("gone-1", voided=True, balance=3_750, points=10, currency="EUR", at=later)
    after = report.build().stored_value
    assert after is not None
    assert (after.debits, after.debit_amount, after.voids, after.void_amount) == (1, 700, 0, 0)
    debits.settle("off-1", voided=False, balance=3_050, points=10, currency="EUR", at=later)
    void_left = clock.wall - timedelta(minutes=1)
    debits.void("gone-2", card="card-a", amount=50, currency="EUR", day=later.date(), at=void_left)
    assert report.build().stored_value == StoredValueReport(
        debits=0, debit_amount=0, voids=1, void_amount=50, currency="EUR", oldest_age_s=60.0
    )  # the oldest may be a void


def test_unreadable_stored_value_debits_are_left_out(store: DeviceStore, tmp_path: Path) -> None:
    debits = CardDebitStore(store.db)
    store.db.execute_sql("DROP TABLE hub_card_debit")  # as a read that fails would

    report = builder_for(store, tmp_path, stored_value=StoredValueWaiting(debits, "EUR").report)

    assert report.build().stored_value is None
    assert builder_for(store, tmp_path).build().stored_value is None  # no hub cards here
