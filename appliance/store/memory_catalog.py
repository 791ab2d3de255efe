"""The catalog the checkout scans against: held in memory, reloaded when it changes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from appliance.core.catalog import Product
from appliance.store.catalog import SqliteCatalog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    version: int
    by_barcode: dict[str, Product]
    by_sku: dict[str, Product]


class MemoryCatalog:
    """CatalogLookup from RAM (~0.5 KB a product), so a scan never waits on the disk.

    A scan is a dictionary lookup. At most every `recheck_seconds` a lookup reads the
    catalog version (one indexed row); if another process (`appliance catalog import`)
    or this one changed the catalog, a worker thread loads the new catalog while scans
    go on against the old one, and the new one replaces it in one assignment.
    Lookups: main thread only.
    """

    def __init__(
        self,
        source: SqliteCatalog,
        *,
        recheck_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._recheck = recheck_seconds
        self._monotonic = monotonic
        self._snapshot: _Snapshot | None = None
        self._checked_at = 0.0
        self._loader: threading.Thread | None = None

    def by_barcode_key(self, key: str) -> Product | None:
        """The product carrying a normalised GTIN."""
        return self._current().by_barcode.get(key)

    def by_sku(self, sku: str) -> Product | None:
        """The product with this SKU."""
        return self._current().by_sku.get(sku)

    def __len__(self) -> int:
        return len(self._current().by_sku)

    def refresh(self) -> int:
        """Load the catalog now (at start, so the first scan is fast); returns its size."""
        self._snapshot = self._load()
        self._checked_at = self._monotonic()
        return len(self._snapshot.by_sku)

    def _current(self) -> _Snapshot:
        now = self._monotonic()
        snapshot = self._snapshot
        if snapshot is not None and now - self._checked_at < self._recheck:
            return snapshot
        self._checked_at = now
        if snapshot is None:
            snapshot = self._snapshot = self._load()
        elif self._source.version() != snapshot.version:
            self._reload_in_background()
        return snapshot

    def wait_for_reload(self, timeout: float | None = None) -> None:
        """Block until a background reload (if any) has finished; for tests and shutdown."""
        if self._loader is not None:
            self._loader.join(timeout)

    def _reload_in_background(self) -> None:
        if self._loader is not None and self._loader.is_alive():
            return
        self._loader = threading.Thread(target=self._reload, name="catalog-reload", daemon=True)
        self._loader.start()

    def _reload(self) -> None:
        try:
            self._snapshot = self._load()
        except Exception:
            log.exception("catalog reload failed; scanning against the previous catalog")
        finally:
            self._source.close_thread_connection()

    def _load(self) -> _Snapshot:
        started = time.perf_counter()
        version = self._source.version()
        by_barcode: dict[str, Product] = {}
        by_sku: dict[str, Product] = {}
        for product in self._source.all_products():
            by_sku[product.sku] = product
            for key in product.barcodes:
                by_barcode[key] = product
        log.info(
            "catalog v%d loaded: %d products, %d barcodes in %.2f s",
            version,
            len(by_sku),
            len(by_barcode),
            time.perf_counter() - started,
        )
        return _Snapshot(version, by_barcode, by_sku)
