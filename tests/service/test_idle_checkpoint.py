"""WAL checkpoints happen while the till is idle, not inside a sale's commit."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from appliance.core.tender import Tender
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.service.main_loop import IdleCheckpointer
from appliance.settings import simulated_settings


def _documents_in_main_file(db_path: Path, tmp_path: Path) -> int:
    """Documents visible from the database file alone, without its WAL."""
    copy = tmp_path / "main-only.db"
    shutil.copyfile(db_path, copy)
    with sqlite3.connect(copy) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM document").fetchone()[0])


def test_a_sale_reaches_the_main_file_at_the_next_idle_tick(tmp_path: Path) -> None:
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    try:
        seed_demo_catalog(app.catalog, settings.store)
        checkpointer = IdleCheckpointer(app)
        # Start from a checkpointed file so only the sale below is in the WAL.
        app.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db_path = Path(settings.database.path)
        app.checkout.scan("4006381333931")
        total = app.checkout.totals().total
        app.checkout.pay([Tender.cash(total, total)])
        assert _documents_in_main_file(db_path, tmp_path) == 0, "committed to the WAL only"
        checkpointer.idle()
        assert _documents_in_main_file(db_path, tmp_path) == 0, "no SaleCommitted seen yet"
        app.bus.drain()
        checkpointer.idle()
        assert _documents_in_main_file(db_path, tmp_path) == 1
    finally:
        app.close()


def test_the_commit_itself_does_not_checkpoint_a_small_wal(tmp_path: Path) -> None:
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    try:
        seed_demo_catalog(app.catalog, settings.store)
        app.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        for _ in range(20):
            app.checkout.scan("4006381333931")
            total = app.checkout.totals().total
            app.checkout.pay([Tender.cash(total, total)])
        assert _documents_in_main_file(Path(settings.database.path), tmp_path) == 0
    finally:
        app.close()
