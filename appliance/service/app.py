"""The appliance assembled: store, catalog, ledger and checkout wired to one settings tree."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from peewee import SqliteDatabase

from appliance.core.checkout import Checkout
from appliance.core.clock import Clock, SystemClock
from appliance.core.events import EventBus
from appliance.settings import Settings
from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger
from appliance.store.memory_catalog import MemoryCatalog
from appliance.store.migrations import migrate

log = logging.getLogger(__name__)


@dataclass
class Appliance:
    """Everything a running appliance holds; the only place that knows every part."""

    settings: Settings
    db: SqliteDatabase
    bus: EventBus
    catalog: SqliteCatalog
    lookup: MemoryCatalog  # what the checkout scans against
    ledger: SalesLedger
    checkout: Checkout

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Appliance:
        """Open (and migrate) the store and wire the checkout."""
        path = Path(settings.database.path)
        db = open_database(path)
        try:
            migrate(db, backup_dir=path.parent / "backups")
        except Exception:
            db.close()
            raise
        bus = EventBus()
        catalog = SqliteCatalog(db)
        ledger = SalesLedger(db, settings.device.receipt_prefix)
        lookup = MemoryCatalog(catalog)
        store = settings.store
        checkout = Checkout(
            lookup,
            ledger,
            store.tax_policy(),
            currency=store.currency,
            device_id=settings.device.id,
            clock=clock or SystemClock(),
            bus=bus,
            barcode_rules=store.barcode_rules(),
        )
        return cls(settings, db, bus, catalog, lookup, ledger, checkout)

    def close(self) -> None:
        """Close the database; safe to call twice."""
        self.lookup.wait_for_reload()
        if not self.db.is_closed():
            self.db.close()
