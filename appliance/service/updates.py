"""Software updates wired to the running appliance: the slots, the start-up step, the Updater.

Start-up order (main_loop.run): `prepare_update` runs the update's start-up step before
the store opens (a rollback puts the database snapshot back); a try boot holds new sales
("finishing a software update") from the store's opening until the health gate commits;
FleetControl builds the Updater (`build_updater`) beside the other fleet commands.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from peewee import DatabaseError, SqliteDatabase

from appliance import __version__
from appliance.core.devices import BarcodeScanned, CardTapped
from appliance.core.events import Event, EventBus, SaleCommitted
from appliance.drivers.manager import DeviceManager
from appliance.errors import ConfigError, UpdateRejectedError
from appliance.mqtt.payloads import CommandName, CommandUpdate, UpdateReport
from appliance.mqtt.signing import load_public_key
from appliance.service.assembly import Appliance
from appliance.settings import HubSettings, Settings
from appliance.store.carry_over import carry_across_restore
from appliance.store.migrations import SCHEMA_VERSION, schema_version
from appliance.update.boot import UpdateBoot
from appliance.update.gate import Check, HealthGate
from appliance.update.make_default import ask_root
from appliance.update.permit import MaintenanceWindow, RebootPermit
from appliance.update.slots import DirectorySlots, PiSlots, SlotBackend
from appliance.update.state import StateFile
from appliance.update.updater import GATE_HOLD_REASON, Fetch, Updater, https_fetch

if TYPE_CHECKING:
    from appliance.mqtt.link import PahoHubLink

log = logging.getLogger(__name__)

RELEASE_FILE = Path("/etc/appliance-release")  # the image writes its release here
RELEASE_ENV = "APPLIANCE_RELEASE"  # set by the host firmware from the slot's image
HOLD_APPLIED_S = 5.0  # how long a hold from another thread waits for the main loop
# Commands that write the fiscal journal (a drawer opening is journalled): in a try boot
# before its commit a rollback would lose the entry, and the drawer opened for nothing.
HELD_WHILE_GATING: frozenset[CommandName] = frozenset({"open_drawer"})


def running_release(environ: dict[str, str] | None = None, path: Path = RELEASE_FILE) -> str:
    """The release this slot runs: $APPLIANCE_RELEASE, the image's file, else the package's."""
    env = dict(os.environ) if environ is None else environ
    if found := env.get(RELEASE_ENV, "").strip():
        return found
    try:
        return path.read_text(encoding="utf-8").strip() or __version__
    except OSError:
        return __version__


def build_slots(spec: str, *, on_reboot: Callable[[], None]) -> SlotBackend | None:
    """The slot backend [update] slots names; None when updates are not configured."""
    if spec == "pi":
        return PiSlots(write=ask_root)  # the image's card partition is root's
    if spec.startswith("directory:"):
        return DirectorySlots(Path(spec.removeprefix("directory:")), on_reboot=on_reboot)
    return None


@dataclass
class UpdateStart:
    """What the update's start-up step found, and what the gate reads later."""

    boot: UpdateBoot
    ready_sent: threading.Event  # READY=1 went to systemd

    @property
    def gating(self) -> bool:
        """A try boot not committed (yet): sales, the kiosk's shift and the drawer wait."""
        return self.boot.mode == "gating" and self.boot.state.load().phase != "committed"

    def holds(self, command: CommandName) -> str:
        """Why a fleet command must wait for the gate ("" when it need not)."""
        return GATE_HOLD_REASON if command in HELD_WHILE_GATING and self.gating else ""


def prepare_update(
    settings: Settings, *, on_reboot: Callable[[], None], ready_sent: threading.Event
) -> UpdateStart:
    """The start-up step, before the store opens; [update] slots must name a backend."""
    slots = build_slots(settings.update.slots, on_reboot=on_reboot)
    if slots is None:
        raise ConfigError(f"update.slots: no slot backend {settings.update.slots!r}")
    database = Path(settings.database.path)
    state = StateFile(database.parent / "update" / "state.json")
    boot = UpdateBoot(state, slots, database, keep=carry_across_restore)
    boot.start()
    return UpdateStart(boot, ready_sent)


@dataclass(frozen=True, slots=True)
class SalesHoldChanged(Event):
    """An update holds new sales (or lets them go): applied on the main loop."""

    reason: str
    applied: threading.Event


class SalesHold:
    """Holds new sales for an update from any thread; the main loop applies it."""

    def __init__(self, app: Appliance) -> None:
        self._bus = app.bus
        app.bus.subscribe(SalesHoldChanged, self._apply)
        self._app = app

    def __call__(self, reason: str) -> bool:
        """Hold new sales for `reason` ("" lets them go); whether the main loop applied it.

        Waits up to HOLD_APPLIED_S; one not applied by then still is, later, in order.
        """
        applied = threading.Event()
        self._bus.post(SalesHoldChanged(reason, applied))
        if not applied.wait(HOLD_APPLIED_S):
            log.warning("the sales hold %r is not applied yet", reason)
            return False
        return True

    def _apply(self, event: SalesHoldChanged) -> None:
        self._app.hold_sales(event.reason)
        if not event.reason:
            # A try boot opens the kiosk's shift only once committed; elsewhere it is open.
            self._app.start_kiosk_shift()
        event.applied.set()


class Activity:
    """When the kiosk last had input (a scan, a card, a sale); written on the main loop."""

    def __init__(self, bus: EventBus, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._last = monotonic()
        for kind in (BarcodeScanned, CardTapped, SaleCommitted):
            bus.subscribe(kind, self._seen)

    def _seen(self, _event: Event) -> None:
        self._last = self._monotonic()

    def idle_for(self) -> float:
        """Seconds since the last input (since the start when there was none)."""
        return self._monotonic() - self._last


def build_updater(
    app: Appliance,
    devices: DeviceManager,
    link: PahoHubLink,
    hub: HubSettings,
    start: UpdateStart,
    *,
    publish_report: Callable[[UpdateReport], None],
    publish_command: Callable[[CommandUpdate], None],
) -> Updater:
    """The Updater over the running appliance's parts."""
    settings = app.settings.update
    checkout, payments = app.checkout, app.stores.payments
    activity = Activity(app.bus)
    permit = RebootPermit(
        sale_open=lambda: checkout.paying or not checkout.cart.is_empty,
        payment_in_doubt=lambda: bool(payments.open_attempts()),
        idle_for=activity.idle_for,
        local_now=lambda: datetime.now().astimezone(),
        idle_s=settings.idle_s,
        window=MaintenanceWindow.parse(settings.window) if settings.window else None,
    )
    gate = HealthGate(
        (
            Check("appliance.service READY", start.ready_sent.is_set),
            Check("the self-test", lambda: _devices_started(devices)),
            Check("the store database", lambda: database_migrated(app.db)),
            Check("the hub link", lambda: link.state.connected),
        ),
        settings.gate_timeout_s,
    )
    key = load_public_key(Path(hub.release_public_key)) if hub.release_public_key else None
    return Updater(
        device=app.settings.device.id,
        boot=start.boot,
        release_key=key,
        running=running_release(),
        fetch=_fetch_for(hub, settings.download_kib_s),
        publish_report=publish_report,
        publish_command=publish_command,
        may_reboot=permit,
        hold_sales=SalesHold(app),
        gate=gate,
    )


def database_migrated(db: SqliteDatabase) -> bool:
    """The store opens at this release's schema: read on the asking thread's own connection.

    (peewee keeps a connection per thread: the main thread's being open says nothing here.)
    """
    try:
        return schema_version(db) == SCHEMA_VERSION
    except DatabaseError:
        return False
    finally:
        db.close()  # this thread's connection only


def _devices_started(devices: DeviceManager) -> bool:
    """The self-test's first rule, on the running devices: every one was built and opened.

    The rest of `appliance selftest` prints, kicks the drawer and charges a card: not for
    an unattended kiosk at night. A device merely offline (unplugged) is not the slot's fault.
    """
    return not any(
        health.reason.startswith(("failed to open", "cannot be built"))
        for health in devices.health()
    )


def _fetch_for(hub: HubSettings, pace_kib_s: int) -> Fetch:
    if hub.cert_file:
        return https_fetch(
            ca_file=Path(hub.ca_file),
            cert_file=Path(hub.cert_file),
            key_file=Path(hub.key_file),
            bytes_per_s=pace_kib_s * 1024,
        )

    def no_certificate(*_args: object, **_kwargs: object) -> None:
        raise UpdateRejectedError("no client certificate for the bundle server ([hub] cert_file)")

    return no_certificate


__all__ = ["GATE_HOLD_REASON", "UpdateStart", "build_updater", "prepare_update"]
