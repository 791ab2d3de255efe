"""The appliance assembled: store, catalog, ledger and checkout wired to one settings tree."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from peewee import SqliteDatabase

from appliance.core.card_balance import StoredValueLedger
from appliance.core.checkout import Checkout
from appliance.core.clock import Clock, SystemClock
from appliance.core.events import EventBus
from appliance.core.storage import StorageChanged, StorageStatus
from appliance.device_settings import HardwareSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.escpos_cache import use_profile_cache
from appliance.drivers.manager import DeviceManager, UnavailableDevice, snapshot_path_for
from appliance.errors import ApplianceError
from appliance.service.clock_check import ClockCheck
from appliance.service.storage_watch import StorageWatch
from appliance.settings import Settings
from appliance.store.catalog import SqliteCatalog
from appliance.store.catalog_versions import CatalogVersions
from appliance.store.database import open_database
from appliance.store.documents import SalesLedger
from appliance.store.journal import FiscalJournal
from appliance.store.memory_catalog import MemoryCatalog
from appliance.store.migrations import migrate
from appliance.store.outbox import SalesOutbox
from appliance.store.parked_carts import ParkedCarts
from appliance.store.payment_attempts import PaymentAttempts
from appliance.store.reports import ReportBook
from appliance.store.shifts import ShiftBook
from appliance.store.staff import StaffDirectory
from appliance.store.stored_value import StoredValueAccounts

if TYPE_CHECKING:
    from appliance.drivers.sim.lab import SimLab
    from appliance.service.bagging_desk import BaggingDesk
    from appliance.service.bagging_watch import BaggingWatch
    from appliance.service.card_gate import CardGate
    from appliance.service.headless_till import HeadlessTill
    from appliance.service.help_desk import HelpDesk
    from appliance.service.kiosk_shift import KioskShift
    from appliance.service.simulation import Simulation

log = logging.getLogger(__name__)


def _pause_for(checkout: Checkout, status: StorageStatus, hold: str = "") -> None:
    """New sales wait while the data partition is short or failing, or an update holds them.

    The sale in progress ends either way.
    """
    checkout.pause_new_sales(("" if status.accepting_sales else status.headline()) or hold)


@dataclass(frozen=True, slots=True)
class Stores:
    """The store objects the screens and the demo seeding use, each built once over the database."""

    staff: StaffDirectory
    stored_value: StoredValueAccounts  # in the store's currency
    parked: ParkedCarts
    outbox: SalesOutbox
    catalog_versions: CatalogVersions
    payments: PaymentAttempts  # the card-attempt journal
    shifts: ShiftBook  # this till's shifts: float, cash in and out, counted close with its Z
    reports: ReportBook  # X reports, and the stored X and Z reports
    journal: FiscalJournal  # the hash chain of every fiscal event

    @classmethod
    def over(cls, db: SqliteDatabase, settings: Settings, clock: Clock | None = None) -> Stores:
        """Build each store object over the open database."""
        till = settings.till
        shifts = ShiftBook(
            db,
            till=settings.device.id,
            currency=settings.store.currency,
            denominations=till.denominations,
            signoff_threshold=till.signoff_threshold,
            clock=clock,
        )
        return cls(
            StaffDirectory(db),
            StoredValueAccounts(db, settings.store.currency),
            ParkedCarts(db),
            SalesOutbox(db),
            CatalogVersions(db),
            PaymentAttempts(db),
            shifts,
            ReportBook(db, shifts),
            FiscalJournal(db),
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
    storage: StorageWatch  # the data partition: free space and faults, read from memory
    devices: DeviceManager | None = None
    # The simulators and `appliance sim`'s socket, in simulate mode with no devices configured.
    simulation: Simulation | None = None
    till: HeadlessTill | None = None  # scans and payments without a screen
    card_gate: CardGate | None = None  # whether card is offered; recovers open attempts
    kiosk_shift: KioskShift | None = None  # a kiosk's shift by its [till] hours
    update_hold: str = ""  # why an update holds new sales ("": it does not)
    help_desk: HelpDesk | None = None  # calls for help: the screen, the light, the hub
    bagging: BaggingDesk | None = None  # the bagging-area check, when [bagging] is on
    bagging_watch: BaggingWatch | None = None  # reads the bagging scale on its thread
    # Stored-value cards whose balance the hub holds ([hub]); without it, stores.stored_value.
    cards: StoredValueLedger | None = None

    @property
    def lab(self) -> SimLab | None:
        """The simulators, in simulate mode with no devices configured."""
        return self.simulation.lab if self.simulation is not None else None

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
        ledger = SalesLedger(
            db,
            settings.device.receipt_prefix,
            clock_verified=ClockCheck(trusted=settings.device.clock == "trusted"),
        )
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
            cash_rounding=settings.till.rounding_increment,
        )
        database = settings.database
        storage = StorageWatch(
            path.parent,
            database.reserve_bytes,
            bus,
            interval_seconds=database.storage_check_seconds,
        )
        db.fault_listener = storage.fault
        bus.subscribe(
            StorageChanged, lambda event: _pause_for(checkout, event.status, app.update_hold)
        )
        stores = Stores.over(db, settings, clock)
        app = cls(settings, db, bus, catalog, lookup, ledger, checkout, stores, storage)
        app._require_shifts(clock or SystemClock())
        app._open_help_desk(clock)
        return app

    def _open_help_desk(self, clock: Clock | None) -> None:
        from appliance.service.help_desk import HelpDesk

        kiosk = self.settings.screen.mode == "kiosk"
        self.help_desk = HelpDesk(self.checkout, self.bus, kiosk=kiosk, clock=clock)

    def _require_shifts(self, clock: Clock) -> None:
        """A staffed till sells only within an open shift; a kiosk with hours, within them.

        A kiosk without hours sells without a shift: a supervisor opens and closes one when
        they want a Z, and the next shift holds whatever was sold between (store/shifts.py).
        """
        shifts, till = self.stores.shifts, self.settings.till
        if self.settings.screen.mode == "staff":
            self.checkout.require_shift(
                lambda: "" if shifts.current() is not None else "no shift is open on this till"
            )
        elif (hours := till.kiosk_schedule) is not None:
            from appliance.service.kiosk_shift import KioskShift, parse_hh_mm

            self.kiosk_shift = KioskShift(
                shifts,
                open_at=parse_hh_mm(hours[0]),
                close_at=parse_hh_mm(hours[1]),
                clock=clock,
                bus=self.bus,
                busy=lambda: self.checkout.paying or not self.checkout.cart.is_empty,
            )
            self.checkout.require_shift(self.kiosk_shift.hours_reason)

    def start_kiosk_shift(self) -> None:
        """Open or close the kiosk's shift by its hours, now and from here on (if it has any)."""
        if self.kiosk_shift is not None:
            self.kiosk_shift.start()

    def watch_storage(self) -> None:
        """Look at the data partition now and from here on; new sales wait while it is short."""
        self.storage.start()
        _pause_for(self.checkout, self.storage.status, self.update_hold)

    def hold_sales(self, reason: str) -> None:
        """New sales wait for an update while `reason` holds ("" lets them go); main thread."""
        self.update_hold = reason
        _pause_for(self.checkout, self.storage.status, reason)

    def open_devices(self, *, simulate: bool, route_input: bool = True) -> DeviceManager:
        """Build and open every configured device; simulated, the lab fills in the rest.

        With `route_input`, the headless till takes scans and payments (the kiosk's path);
        the checkout screen passes False and routes scans itself, and a simulated kiosk
        keeps the till only for `appliance sim pay`. Call on the main thread.
        A device that fails is reported offline; selling goes on.
        """
        overrides: dict[str, DeviceBase] = {}
        tables: dict[str, HardwareSettings] = dict(self.settings.devices)
        if simulate:
            from appliance.service.simulation import Simulation

            # nfcpy takes a while to import: its simulator and reader start after READY=1.
            self.simulation = Simulation.start(
                self.settings.database.path,
                self.settings.store.currency,
                tables,
                bagging=self._checks_bagging,
            )
            tables, overrides = self.simulation.tables, self.simulation.overrides
        devices = self.devices = DeviceManager.build(
            tables,
            overrides=overrides,
            snapshot_path=snapshot_path_for(self.settings.database.path),
        )
        if route_input or self.simulation is not None:
            from appliance.service.headless_till import HeadlessTill

            self.till = HeadlessTill(
                self.checkout,
                self.bus,
                self.stores.payments,
                lambda: devices.terminal,
                device_id=self.settings.device.id,
                take_scans=route_input,
                staff_badge=self.stores.staff.by_badge,
                scale=lambda: devices.scale,
            )
        devices.open_all(self.bus)
        if self.help_desk is not None:
            self.help_desk.use_light(devices.attendant_light)
        self._open_bagging(devices)
        self.card_gate = self._open_card_gate(devices)
        if self.simulation is not None:
            self.simulation.open(devices, self.bus, self.till, self.card_gate)
        return devices

    @property
    def _checks_bagging(self) -> bool:
        """A self-checkout whose store checks the bagging area."""
        return self.settings.bagging.mode != "off" and self.settings.screen.mode == "kiosk"

    def _open_bagging(self, devices: DeviceManager) -> None:
        """Check the bagging area when configured, reading its scale on a thread of its own."""
        if not self._checks_bagging or self.help_desk is None:
            return
        scale = devices.bagging_scale
        settings = self.settings.bagging
        if scale is None:
            log.warning(
                'bagging mode is %s, but no serial_scale has role = "bagging":'
                " the bagging area is not checked",
                settings.mode,
            )
            return
        from appliance.core.bagging import BaggingCheck, Tolerance
        from appliance.service.bagging_desk import BaggingDesk
        from appliance.service.bagging_watch import BaggingWatch

        check = BaggingCheck(
            settings.mode,
            Tolerance(settings.tolerance_grams, settings.tolerance_percent),
            prompt_after=settings.prompt_seconds,
            help_after=settings.help_seconds,
            alert_after=settings.alert_seconds,
        )
        desk = self.help_desk
        self.bagging = BaggingDesk(
            check,
            self.checkout,
            self.lookup,
            self.bus,
            monotonic=SystemClock().monotonic,
            call_help=lambda detail: desk.call("bagging", detail),
            clear_help=lambda by: desk.clear("bagging", by),
            scale=scale.name,
            scale_online=scale.health.state == "ok",
        )
        if isinstance(scale, UnavailableDevice):
            log.warning("the bagging scale could not be set up: the bagging area is not checked")
            return
        self.bagging_watch = BaggingWatch(scale, self.bus)
        self.bagging_watch.start()
        log.info("bagging area checked (%s)", settings.mode)

    def _open_card_gate(self, devices: DeviceManager) -> CardGate:
        """Card stays off until recovery has resolved every attempt an earlier run left open.

        And while offline approvals not yet submitted are past the [payments] limits.
        """
        from appliance.service.card_gate import CardGate
        from appliance.service.offline_card_limits import OfflineCardLimits, limits_from

        policy = self.settings.store.tax_policy()
        offline = OfflineCardLimits(
            self.stores.payments, limits_from(self.settings.payments), self.bus
        )
        gate = CardGate(
            self.stores.payments,
            lambda: devices.terminal,
            self.bus,
            self.checkout.complete,
            lambda cart: cart.totals(policy).total,
            limits=offline.reason,
        )
        offline.attach(gate.refresh)
        offline.reload()  # on its worker; the gate's recovery waits for it before offering card
        if self.till is not None:
            self.till.attach(gate)
        gate.recover()
        return gate

    def close_devices(self) -> None:
        """Settle what is in flight, stop the simulators' socket, close the devices; safe twice.

        A card payment in flight is cancelled and recorded in doubt first: the appliance
        never waits out a terminal at shutdown, so it stops within the unit's stop timeout.
        """
        till, self.till = self.till, None
        if till is not None:
            till.stop()
        simulation = self.simulation
        if simulation is not None:
            simulation.stop_control()
        watch, self.bagging_watch = self.bagging_watch, None
        if watch is not None:
            watch.close()  # before its scale closes under it
        if self.devices is not None:
            self.devices.close_all()
        try:  # the kiosk's payment in flight, if any: in doubt until settled after the start
            self.stores.payments.abandon_in_flight()
        except ApplianceError as err:  # its row stays "sent", found in doubt all the same
            log.error("card payments in flight not marked in doubt: %s", err)
        self.simulation = None
        if simulation is not None:
            simulation.close()

    def close(self) -> None:
        """Close the devices and the database; safe to call twice."""
        if self.kiosk_shift is not None:
            self.kiosk_shift.close()
        self.close_devices()
        self.storage.close()
        self.lookup.wait_for_reload()
        if not self.db.is_closed():
            self.db.close()
