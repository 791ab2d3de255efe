"""Stock corrections: sales a worker stored change its store's levels; the devices learn them.

After a committed batch with new sales (HubServer `after_sales`) the device's store is
marked; every PERIOD seconds (HubServer `periodic`) the worker recomputes each marked
store's levels (the last count minus the sales ingested since, plus the stock movements
recorded since), makes a stock-only catalog version of those that differ from the level
last sent, and pushes it to the store's devices at once (hub/catalog_push.py, so the
pushed row moves with it). So a device holding the current version learns a level
changed by a batch within PERIOD seconds of its commit, plus the time to compute the
levels. A movement recorded through the API makes its stock-only version itself, in its
own transaction; the serve workers' push sends it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from peewee import Database

from hub.catalog import HubCatalog
from hub.catalog_publisher import CatalogPublisher
from hub.catalog_push import CatalogPush
from hub.ingest import IngestResult
from hub.stock_levels import SoldLine, stock_changes, store_sales

log = logging.getLogger(__name__)

PERIOD = 1.0  # seconds between two passes over the stores with new sales

Sales = Callable[[Database, str, datetime | None], Iterable[SoldLine]]  # like store_sales


class StockCorrections:
    """Marks stores whose sales changed; turns their new levels into published versions.

    `sales_committed` may be called from any thread; `run` from one (the hub worker's).
    """

    def __init__(
        self, db: Database, publisher: CatalogPublisher, *, sales: Sales = store_sales
    ) -> None:
        self._db = db
        self._push = CatalogPush(db, publisher)
        self._sales = sales
        self._lock = threading.Lock()
        self._dirty: set[str] = set()  # under _lock

    def sales_committed(self, device: str, result: IngestResult) -> None:
        """After a committed batch: its device's store needs its levels recomputed."""
        if result.inserted <= 0:
            return  # only resent sales: no level moved
        store = result.store  # looked up in the batch's transaction
        if store is None:
            return
        with self._lock:
            self._dirty.add(store)

    def run(self) -> None:
        """Correct every marked store (the periodic work)."""
        with self._lock:
            stores, self._dirty = sorted(self._dirty), set()
        for k, store in enumerate(stores):
            try:
                self.correct(store)
            except Exception:
                # The database failed: keep these stores marked for the next pass.
                with self._lock:
                    self._dirty.update(stores[k:])
                raise

    def correct(self, store: str) -> int:
        """Publish the store's levels that differ from those last sent; returns 0 or 1."""
        catalog = HubCatalog(self._db, store)
        # Computed under the store's lock: a worker that computes later sees every sale the
        # one before it saw, so an older level can never be published after a newer one.
        with catalog.write_lock():
            change = stock_changes(catalog, lambda since: self._sales(self._db, store, since))
            if not change.levels:
                return 0
            catalog.add_stock_version(change)
        # With whatever else the devices were not sent yet: one delta, no gap.
        self._push.push(store)
        return 1
