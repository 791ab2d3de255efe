"""Sending every new catalog version to the store's devices, whoever made it, once.

The API (in the web process), the import CLI and a worker's stock corrections all make
catalog versions. `catalog_pushed` holds, per store, the version up to which its devices
were sent the changes. Every PERIOD seconds each serve worker looks for stores whose
catalog is past that row and sends the delta from there (CatalogPublisher.publish_update),
so a device holding the current version learns a change within PERIOD seconds of its
commit, plus the time to send it.

Safe with several workers: the push runs under the store's catalog lock and moves the row
in the same transaction, so two workers never send the same change. The row moves only
after the messages are handed to the broker client: a crash in between sends the change
again, and a device ignores a delta it already holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from peewee import Database, fn

from hub.catalog import HubCatalog, HubCatalogVersion, store_transaction
from hub.catalog_publisher import CatalogPublisher
from hub.catalog_records import CatalogPushed

log = logging.getLogger(__name__)

PERIOD = 0.25  # seconds between two looks for stores with versions not yet sent


class CatalogPush:
    """Sends each store's unsent versions to its devices; call from one worker thread.

    `ready` says whether the broker connection is up: while it is not, nothing is sent
    and the rows stay, so the changes go out once it is back.
    """

    def __init__(
        self,
        db: Database,
        publisher: CatalogPublisher,
        *,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._ready = ready

    def run(self) -> None:
        """Push every store that is behind (the periodic work)."""
        if not self._ready():
            return
        for store in self.behind():
            self.push(store)

    def behind(self) -> list[str]:
        """The stores whose catalog has versions their devices were not sent yet."""
        newer = HubCatalogVersion.select(fn.MAX(HubCatalogVersion.version)).where(
            HubCatalogVersion.store == CatalogPushed.store
        )
        # One indexed look per store: the newest version, against the row.
        query = CatalogPushed.select(CatalogPushed.store).where(newer > CatalogPushed.version)
        return sorted(str(store) for (store,) in query.tuples().execute(self._db))

    def push(self, store: str) -> int:
        """Send the store's unsent versions to its devices; returns the messages sent."""
        catalog = HubCatalog(self._db, store)
        # Under the store's lock: no other worker pushes the store meanwhile, and no new
        # version can slip between the one read here and the row written below.
        with store_transaction(self._db, store):
            query = CatalogPushed.select(CatalogPushed.version).where(CatalogPushed.store == store)
            found = query.tuples().execute(self._db)
            pushed = int(found[0][0]) if found else 0
            current = catalog.version()
            if current <= pushed:
                return 0
            sent = self._publisher.publish_update(store, pushed, current)
            CatalogPushed.insert(store=store, version=current).on_conflict(
                conflict_target=[CatalogPushed.store], preserve=[CatalogPushed.version]
            ).execute(self._db)
        log.debug("catalog of %s pushed v%d -> v%d: %d message(s)", store, pushed, current, sent)
        return sent
