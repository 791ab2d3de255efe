"""A full, read-only or failing data partition: the right words, no torn sale, no crash, recovery.

The data folder sits on a real file system that fails for real: a tmpfs of a few MiB that
fills up, and an ext4 on a loop device that the kernel remounts read-only after an error.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

from appliance.core.events import EventBus
from appliance.core.tender import Tender
from appliance.errors import SalesPausedError, StorageFaultError, StorageFullError, StoreError
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.service.main_loop import IdleCheckpointer
from appliance.service.storage_watch import StorageWatch
from appliance.settings import Settings, simulated_settings
from tests.disks import loop_ext4, small_tmpfs

COFFEE = "4006381333931"
MIB = 1024 * 1024


def _settings(data: Path, reserve_mb: float) -> Settings:
    settings = simulated_settings(data)
    database = msgspec.structs.replace(settings.database, reserve_mb=reserve_mb)
    return msgspec.structs.replace(settings, database=database)


@contextmanager
def _opened(settings: Settings) -> Iterator[Appliance]:
    app = Appliance.open(settings)
    try:
        seed_demo_catalog(app.catalog, settings.store)
        app.lookup.refresh()
        app.watch_storage()
        yield app
    finally:
        app.close()


def _sell(app: Appliance) -> None:
    app.checkout.scan(COFFEE)
    total = app.checkout.totals().total
    app.checkout.pay([Tender.cash(total, total)])


def _stored(path: Path) -> tuple[int, int, list[str]]:
    """Documents, outbox rows and integrity problems, read by a fresh connection."""
    with sqlite3.connect(path) as connection:
        documents = connection.execute("SELECT COUNT(*) FROM document").fetchone()[0]
        outbox = connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    return documents, outbox, [p for p in problems if p != "ok"]


def test_below_the_reserve_the_sale_in_progress_finishes_and_new_ones_wait(tmp_path: Path) -> None:
    with (
        small_tmpfs(tmp_path / "data", 6 * 1024) as disk,
        _opened(_settings(disk.path, reserve_mb=2)) as app,
    ):
        _sell(app)
        app.checkout.scan(COFFEE)  # a sale in progress when the space runs short
        filler = disk.fill(leave_bytes=1 * MIB)
        assert app.storage.check().state == "low"
        app.bus.drain()
        status = app.storage.status
        assert "below the reserve" in status.describe()
        assert "filler" in dict(status.usage), "staff see what takes the space"

        total = app.checkout.totals().total
        app.checkout.pay([Tender.cash(total, total)])  # it finishes, payment and all
        with pytest.raises(SalesPausedError, match="storage low"):
            app.checkout.scan(COFFEE)

        filler.unlink()
        assert app.storage.check().state == "ok"
        app.bus.drain()
        _sell(app)  # back by itself
        assert _stored(Path(app.settings.database.path)) == (3, 3, [])


def test_a_full_disk_is_storage_full_with_nothing_torn_and_no_crash(tmp_path: Path) -> None:
    with (
        small_tmpfs(tmp_path / "data", 4 * 1024) as disk,
        _opened(_settings(disk.path, reserve_mb=0)) as app,
    ):
        checkpointer = IdleCheckpointer(app)
        _sell(app)
        disk.fill(leave_bytes=48 * 1024)
        committed = 1
        with pytest.raises(StoreError) as refused:
            for _ in range(200):
                _sell(app)
                committed += 1
        assert isinstance(refused.value, StorageFullError), refused.value
        assert str(refused.value).startswith("storage full: the sale could not be stored")
        assert "no transaction is active" not in str(refused.value)
        assert app.storage.status.state == "full"  # told by the database, not a later look
        app.bus.drain()
        checkpointer.idle()  # housekeeping on a full disk: logged, never raised
        with pytest.raises(SalesPausedError, match="storage full"):
            app.checkout.cancel() and app.checkout.scan(COFFEE)
        db_path = Path(app.settings.database.path)

        disk.resize(16 * 1024)
        assert app.storage.check().state == "ok"
        app.bus.drain()
        app.checkout.cancel()
        _sell(app)
        committed += 1
        assert _stored(db_path) == (committed, committed, [])


def test_an_ext4_error_remounts_read_only_and_a_repair_loses_no_sale(tmp_path: Path) -> None:
    with loop_ext4(tmp_path) as disk:
        settings = _settings(disk.mount_point, reserve_mb=1)
        with _opened(settings) as app:
            for _ in range(3):
                _sell(app)
            disk.fail()
            with pytest.raises(StorageFaultError) as refused:
                _sell(app)
            assert "could not be stored" in str(refused.value)
            assert app.storage.status.state == "read_only"
            assert app.storage.check().state == "read_only"  # it stays so until repaired
            app.bus.drain()
            assert app.checkout.paused
        disk.repair()
        assert _stored(Path(settings.database.path)) == (3, 3, [])
        with _opened(settings) as app:
            assert app.storage.status.state == "ok"
            _sell(app)
        assert _stored(Path(settings.database.path)) == (4, 4, [])


def test_a_database_at_its_size_limit_is_storage_full_and_recovers_without_root(
    tmp_path: Path,
) -> None:
    """SQLite's max_page_count: the same SQLITE_FULL as a full disk, with no mount needed."""
    with _opened(_settings(tmp_path / "data", reserve_mb=0)) as app:
        _sell(app)
        pages = app.db.execute_sql("PRAGMA page_count").fetchone()[0]
        app.db.execute_sql(f"PRAGMA max_page_count = {pages + 2}")
        committed = 1
        with pytest.raises(StorageFullError) as refused:
            for _ in range(500):
                _sell(app)
                committed += 1
        assert str(refused.value).startswith("storage full: the sale could not be stored")
        assert app.storage.status.state == "full"
        app.bus.drain()
        app.checkout.cancel()
        with pytest.raises(SalesPausedError):
            app.checkout.scan(COFFEE)

        app.db.execute_sql(f"PRAGMA max_page_count = {pages + 10_000}")
        assert app.storage.check().state == "ok"  # the test write passes: sales may start
        app.bus.drain()
        _sell(app)
        committed += 1
        assert _stored(Path(app.settings.database.path)) == (committed, committed, [])


def test_checks_from_two_threads_after_a_fault_never_mistake_each_other_for_a_failing_card(
    tmp_path: Path,
) -> None:
    """After a fault every look writes a test file; two at once (the watch's thread and a
    caller's) once unlinked each other's file and called a healthy card failing."""
    bus = EventBus()
    folder = tmp_path / "data"
    folder.mkdir()
    watch = StorageWatch(folder, 0, bus)
    results: list[str] = []
    start = threading.Barrier(4)

    def look() -> None:
        start.wait()
        for _ in range(50):
            watch.fault("full", "database or disk is full")
            results.append(watch.check().state)

    threads = [threading.Thread(target=look) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert set(results) <= {"ok", "full"}, sorted(set(results))
    assert watch.check().state == "ok"
    assert not list(folder.iterdir())  # no test file left behind
