"""The appliance's side of the hub: the MQTT link, the sales and journal uploaders, telemetry.

Started only when the configuration has a [hub] table; the till sells the same without it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.core.devices import DeviceHealthChanged, DrawerOpened
from appliance.core.events import KioskLockChanged, SaleCommitted
from appliance.core.reports import ReportMade, ShiftClosed
from appliance.core.storage import StorageChanged
from appliance.drivers.manager import DeviceManager
from appliance.errors import ConfigError
from appliance.mqtt import topics
from appliance.mqtt.card_debits import HubCardLedger, stored_value_references
from appliance.mqtt.catalog_pictures import HubPictures
from appliance.mqtt.catalog_sync import CatalogSync
from appliance.mqtt.client import TlsFiles
from appliance.mqtt.help_uplink import HelpUplink
from appliance.mqtt.journal_uploader import JournalUploader
from appliance.mqtt.link import LinkState, PahoHubLink, device_id_from_cert
from appliance.mqtt.telemetry import (
    DeviceHealthBoard,
    JournalHealth,
    OfflineCards,
    StoredValueWaiting,
    TelemetryBuilder,
    TelemetryPublisher,
)
from appliance.mqtt.uploader import SalesUploader
from appliance.service.assembly import Appliance
from appliance.service.bagging_desk import bagging_report
from appliance.service.fleet_control import FleetControl
from appliance.service.image_version import read_image_version
from appliance.service.offline_card_limits import limits_from
from appliance.service.staff_help import StaffHelp
from appliance.settings import HubSettings
from appliance.store.card_debits import CardDebitStore
from appliance.store.catalog_versions import CatalogVersions
from appliance.store.hub_session import SessionStore
from appliance.store.journal import FiscalJournal
from appliance.store.journal_outbox import JournalOutbox
from appliance.store.outbox import SalesOutbox

if TYPE_CHECKING:
    from appliance.service.updates import UpdateStart
    from appliance.update.updater import Updater

log = logging.getLogger(__name__)


class HubConnection:
    """Link, uploaders and telemetry, started and stopped together."""

    def __init__(
        self,
        app: Appliance,
        devices: DeviceManager,
        hub: HubSettings,
        *,
        config_path: Path | None = None,
        journald: bool = False,
        update: UpdateStart | None = None,
    ) -> None:
        device_id = app.settings.device.id
        tls = _tls_files(hub, device_id)
        self.link = PahoHubLink(
            device_id,
            hub.host,
            hub.port,
            tls=tls,
            bus=app.bus,
            session_store=SessionStore(app.db),
            # The hub sends a staff device its store's calls for help (docs/protocol.md).
            screen=app.settings.screen.mode,
        )
        # The uploader registers its ack route and state watcher, so it comes before open().
        self.uploader = SalesUploader(SalesOutbox(app.db), self.link, batch_size=hub.batch_size)
        # The fiscal journal (reports, shifts, drawer log inside) follows as its own stream.
        self.journal_uploader = JournalUploader(
            JournalOutbox(app.db), self.link, batch_size=hub.batch_size
        )
        board = DeviceHealthBoard(devices.health())
        app.bus.subscribe(DeviceHealthChanged, board.changed)
        link = self.link
        card_debits = CardDebitStore(app.db)
        self.telemetry = TelemetryPublisher(
            link,
            TelemetryBuilder(
                device_id,
                SalesOutbox(app.db),
                CatalogVersions(app.db).version,
                data_dir=Path(app.settings.database.path).parent,
                malformed=lambda: link.dispatcher.malformed,
                offline_cards=OfflineCards(
                    app.stores.payments.offline_usage,
                    limits_from(app.settings.payments),
                    app.settings.store.currency,
                ).report,
                storage=lambda: app.storage.status,
                journal=JournalHealth(FiscalJournal(app.db), JournalOutbox(app.db)).report,
                image_version=read_image_version() or "",
                locked=self._kiosk_locked,
                bagging=lambda: bagging_report(app),
                stored_value=StoredValueWaiting(card_debits, app.settings.store.currency).report,
            ),
            health=board.snapshot,
            interval_s=hub.telemetry_seconds,
        )
        app.bus.subscribe(SaleCommitted, lambda _event: self.uploader.wake())
        # Events that chain journal entries; a wake before the entry's commit finds nothing
        # new, and the uploader's poll finds it and any other entry soon after.
        for chained in (SaleCommitted, ReportMade, ShiftClosed, DrawerOpened):
            app.bus.subscribe(chained, lambda _event: self.journal_uploader.wake())
        # The hub hears of a storage change or a lock at once, not at the next interval.
        self.telemetry.nudge_on(app.bus, StorageChanged, KioskLockChanged)
        # Catalog deltas and snapshots are applied on their own worker, never the main loop.
        # Pictures keep clear of the partition's reserve: a sale needs the room, not them.
        self.catalog = CatalogSync(
            app.db,
            device_id,
            lambda topic, payload: link.publish(topic, payload, qos=1),
            pictures=HubPictures.beside(
                app.db.database, reserve_bytes=app.settings.database.reserve_bytes
            ),
        )
        link.dispatcher.on(topics.catalog_down(device_id), self.catalog.submit)
        if app.help_desk is not None:  # calls for help, again whenever the link is ready
            HelpUplink(link, app.bus, lambda: app.help_desk.active if app.help_desk else ())
        # One balance per card: the hub holds it; this kiosk asks, or decides offline.
        self.cards = HubCardLedger(
            link,
            card_debits,
            app.db,
            currency=app.settings.store.currency,
            timeout_s=app.settings.stored_value.hub_timeout_s,
            offline_limit=app.settings.stored_value.offline_limit,
            paid_references=lambda since: stored_value_references(app.ledger.since(since)),
            # The health report counted what waited for the hub: say at once that it is in.
            all_settled=self.telemetry.nudge,
        )
        app.cards = self.cards
        # A staff till or tablet sees its store's calls and answers some from where it is.
        self.staff_help = StaffHelp(link, app.bus) if app.settings.screen.mode == "staff" else None
        link.watch(self._resync_catalog_per_session)
        self._catalog_session = 0
        self.fleet: FleetControl | None = None
        if hub.fleet_public_key and config_path is not None:
            self.fleet = FleetControl(
                app,
                devices,
                link,
                hub,
                config_path=config_path,
                request_snapshot=self.catalog.notify_reload,
                journald=journald,
                update=update,
            )
        else:
            log.warning("no fleet key or no config file: fleet commands are not accepted")

    @property
    def updater(self) -> Updater | None:
        """The software updates' job, when fleet commands and slots are configured."""
        return self.fleet.updater if self.fleet is not None else None

    def _kiosk_locked(self) -> bool:
        # Read on the telemetry thread; the lock's flag is thread-safe. No fleet, no lock.
        return self.fleet is not None and self.fleet.lock.locked

    def _resync_catalog_per_session(self, state: LinkState) -> None:
        # Notifications are lost while offline: every new session with the hub up resyncs.
        if state.ready and state.session != self._catalog_session:
            self._catalog_session = state.session
            self.catalog.notify_connected()

    def open(self) -> None:
        """Start uploading and connect (the link retries in the background)."""
        self.catalog.start()
        self.cards.start()
        if self.fleet is not None:
            self.fleet.open()
        self.uploader.start()
        self.journal_uploader.start()
        self.telemetry.start()
        self.link.open()
        log.info("hub link to %s started", self.link)

    def close(self) -> None:
        """Stop telemetry, the uploaders and the link; what is unsent stays for the next start."""
        self.telemetry.close()
        self.journal_uploader.close()
        self.uploader.close()
        self.cards.close()
        if self.fleet is not None:
            self.fleet.close()
        self.link.close()
        self.catalog.stop()


def _tls_files(hub: HubSettings, device_id: str) -> TlsFiles | None:
    """The mTLS files; the certificate's CN must be this device's id (the hub's view of us)."""
    if not hub.cert_file:
        return None
    cert = Path(hub.cert_file)
    tls = TlsFiles(Path(hub.ca_file), cert, Path(hub.key_file))
    try:
        identity = device_id_from_cert(cert)
    except (OSError, ValueError) as err:
        raise ConfigError(f"hub.cert_file: cannot read {cert}: {err}") from err
    if identity != device_id:
        raise ConfigError(
            f"hub.cert_file: the certificate is for {identity!r} but device.id is {device_id!r}"
        )
    return tls
