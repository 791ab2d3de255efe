"""The appliance assembled: store, catalog, ledger and checkout wired to one settings tree."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from peewee import SqliteDatabase

from appliance.core.checkout import Checkout
from appliance.core.clock import Clock, SystemClock
from appliance.core.devices import BarcodeScanned, CardTapped
from appliance.core.events import EventBus
from appliance.device_settings import HardwareSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.escpos_cache import use_profile_cache
from appliance.drivers.manager import DeviceManager, snapshot_path_for
from appliance.errors import ApplianceError, DomainError
from appliance.settings import Settings
from appliance.store.catalog import SqliteCatalog
from appliance.store.catalog_versions import CatalogVersions
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger
from appliance.store.memory_catalog import MemoryCatalog
from appliance.store.migrations import migrate
from appliance.store.outbox import SalesOutbox
from appliance.store.parked_carts import ParkedCarts
from appliance.store.staff import StaffDirectory
from appliance.store.stored_value import StoredValueAccounts

if TYPE_CHECKING:
    from appliance.drivers.sim.control import ControlServer
    from appliance.drivers.sim.lab import SimLab

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stores:
    """The store objects the screens and the demo seeding use, each built once over the database."""

    staff: StaffDirectory
    stored_value: StoredValueAccounts  # in the store's currency
    parked: ParkedCarts
    outbox: SalesOutbox
    catalog_versions: CatalogVersions

    @classmethod
    def over(cls, db: SqliteDatabase, settings: Settings) -> Stores:
        """Build each store object over the open database."""
        return cls(
            StaffDirectory(db),
            StoredValueAccounts(db, settings.store.currency),
            ParkedCarts(db),
            SalesOutbox(db),
            CatalogVersions(db),
        )


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
    stores: Stores
    devices: DeviceManager | None = None
    lab: SimLab | None = None  # the simulators, in simulate mode with no devices configured
    control: ControlServer | None = None  # `appliance sim ...` talks to it
    _late_start: threading.Thread | None = None  # starts the slow simulators after READY=1

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Appliance:
        """Open (and migrate) the store and wire the checkout."""
        path = Path(settings.database.path)
        use_profile_cache(path.parent / "cache" / "escpos")
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
        return cls(settings, db, bus, catalog, lookup, ledger, checkout, Stores.over(db, settings))

    def open_devices(self, *, simulate: bool, route_input: bool = True) -> DeviceManager:
        """Build and open every configured device; simulated with none configured, the lab.

        With `route_input`, scans go straight into the cart (headless); the checkout screen
        passes False and routes scans and taps itself. Call on the main thread.
        A device that fails is reported offline; selling goes on.
        """
        overrides: dict[str, DeviceBase] = {}
        tables: dict[str, HardwareSettings] = dict(self.settings.devices)
        if simulate and not tables:
            from appliance.drivers.sim.lab import SimLab

            # nfcpy takes a while to import: its simulator and reader start after READY=1.
            self.lab = SimLab.start(nfc=False)
            tables, overrides = dict(self.lab.settings), dict(self.lab.overrides)
        self.devices = DeviceManager.build(
            tables,
            overrides=overrides,
            snapshot_path=snapshot_path_for(self.settings.database.path),
        )
        if route_input:
            self.bus.subscribe(BarcodeScanned, self._scanned)
            self.bus.subscribe(CardTapped, self._tapped)
        self.devices.open_all(self.bus)
        if self.lab is not None:
            self._open_control()
            self._late_start = threading.Thread(
                target=self._start_slow_simulators, name="sim-late-start", daemon=True
            )
            self._late_start.start()
        return self.devices

    def _start_slow_simulators(self) -> None:
        from appliance.drivers.sim.lab import NFC

        lab, devices = self.lab, self.devices
        assert lab is not None and devices is not None
        try:
            table = lab.start_nfc()
            devices.open_late(NFC, table)
        except Exception as err:  # the till sells without NFC; say why it is missing
            log.warning("simulated NFC reader not started: %s", err)

    def _open_control(self) -> None:
        from appliance.drivers.sim.control import ControlServer, control_socket_path, lab_commands
        from appliance.drivers.sim_terminal import SimTerminal

        assert self.lab is not None and self.devices is not None
        from appliance.drivers.sim.control import Command
        from appliance.service.sim_payment import SimPayment

        terminal = self.devices.terminal
        commands = lab_commands(self.lab, terminal if isinstance(terminal, SimTerminal) else None)
        payment = SimPayment(self.bus, self.checkout, terminal)
        commands["pay"] = Command(
            "pay for the cart: cash|card (card goes through the terminal)",
            lambda request: payment.request(str(request.get("method", "cash"))),
        )
        server = ControlServer(control_socket_path(self.settings.database.path), commands)
        try:
            server.open()
        except ApplianceError as err:
            # The till still sells; only `appliance sim ...` is unavailable.
            log.error("simulator control socket unavailable: %s", err)
            return
        self.control = server

    def _scanned(self, event: BarcodeScanned) -> None:
        before = self.checkout.cart.lines
        try:
            cart = self.checkout.scan(event.code)
        except DomainError as err:
            log.warning("scan %s on %s refused: %s", event.code, event.device, err)
            return
        added = next((line for line in cart.lines if line not in before), None)
        name = added.name if added is not None else "?"
        log.info("scanned %s on %s: %s", event.code, event.device, name)

    def _tapped(self, event: CardTapped) -> None:
        texts = [r.text for r in event.records if r.text is not None]
        log.info("card %s tapped on %s%s", event.uid, event.device, f": {texts}" if texts else "")

    def close_devices(self) -> None:
        """Stop the control socket, close the devices, stop the simulators; safe twice."""
        control, self.control = self.control, None
        if control is not None:
            control.close()
        late, self._late_start = self._late_start, None
        if late is not None:
            late.join()  # so no simulator or device is added after they are closed
        if self.devices is not None:
            self.devices.close_all()
        lab, self.lab = self.lab, None
        if lab is not None:
            lab.close()

    def close(self) -> None:
        """Close the devices and the database; safe to call twice."""
        self.close_devices()
        self.lookup.wait_for_reload()
        if not self.db.is_closed():
            self.db.close()
