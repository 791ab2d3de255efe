"""Everything `--simulate` starts beside the real adapters, in one place.

The demo store (products, staff, a stored-value card), the simulator lab (on the far side
of the real transports), the NFC simulator started after READY=1 (nfcpy is slow to
import), and the control socket `appliance sim ...` talks to. The control socket drives the
simulators, and pays and settles through the checkout screen when one serves
(`serve_screen`), else through the HeadlessTill, on the kiosk's own path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.core.devices import DeviceKind
from appliance.core.events import EventBus
from appliance.device_settings import HardwareSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.manager import DeviceManager
from appliance.drivers.registry import KINDS, kind_of
from appliance.drivers.sim.control import (
    Command,
    ControlServer,
    control_socket_path,
    lab_commands,
)
from appliance.drivers.sim.lab import DRAWER, NFC, PRINTER, SCALE, SCANNER, TERMINAL, SimLab
from appliance.errors import ApplianceError
from appliance.service.demo import seed_demo_catalog, seed_demo_staff, seed_demo_stored_value

if TYPE_CHECKING:
    from appliance.service.assembly import Appliance
    from appliance.service.card_gate import CardGate
    from appliance.service.headless_till import HeadlessTill
    from appliance.service.sim_payment import PaymentScreen, SimPayment

log = logging.getLogger(__name__)

# The lab's simulator for each family of device.
LAB_NAMES: dict[DeviceKind, str] = {
    "scanner": SCANNER,
    "printer": PRINTER,
    "drawer": DRAWER,
    "card_reader": NFC,
    "payment_terminal": TERMINAL,
    "scale": SCALE,
}


def seed_demo_store(app: Appliance) -> None:
    """Give a simulated store products, two staff members and a stored-value card."""
    if added := seed_demo_catalog(app.catalog, app.settings.store):
        log.info("simulate: added %d demo products", added)
    if added := seed_demo_staff(app.stores.staff):
        log.info("simulate: added %d demo staff members (cashier and supervisor)", added)
    if seed_demo_stored_value(app.stores.stored_value):
        log.info("simulate: added the demo stored-value card")


class Simulation:
    """The lab, its late start and its control socket; close() safe twice."""

    def __init__(self, lab: SimLab, socket_path: Path) -> None:
        self.lab = lab
        self.socket_path = socket_path
        self.control: ControlServer | None = None
        self.payment: SimPayment | None = None  # `sim pay|settle`, with a till to act on
        self._late_start: threading.Thread | None = None
        self.configured: dict[str, HardwareSettings] = {}  # real devices beside the simulated
        self.simulate_nfc = True

    @classmethod
    def start(
        cls,
        database_path: str | Path,
        currency: str = "EUR",
        configured: Mapping[str, HardwareSettings] | None = None,
        *,
        bagging: bool = False,
    ) -> Simulation:
        """Start the simulators (NFC later, see `open`); the socket goes beside the database.

        A family of device that is `configured` is not simulated: `--simulate` fills in only
        what the configuration lacks (a real terminal, say, with the rest simulated). With
        `bagging` (the store checks its bagging area), a bagging scale is simulated too,
        unless one is configured.
        """
        tables = (configured or {}).values()
        bagging_tables = [t for t in tables if getattr(t, "role", "") == "bagging"]
        families = {KINDS[kind_of(t)].family for t in tables if t not in bagging_tables}
        skip = frozenset(name for family, name in LAB_NAMES.items() if family in families)
        lab = SimLab.start(
            nfc=False, currency=currency, skip=skip, bagging=bagging and not bagging_tables
        )
        simulation = cls(lab, control_socket_path(database_path))
        simulation.configured = dict(configured or {})
        simulation.simulate_nfc = NFC not in skip
        return simulation

    @property
    def tables(self) -> dict[str, HardwareSettings]:
        """Device tables: the configured ones, and the real adapters pointed at simulators."""
        return {**self.lab.settings, **self.configured}

    @property
    def overrides(self) -> dict[str, DeviceBase]:
        """Adapters that need more than their table (the drawer's mock pins)."""
        return dict(self.lab.overrides)

    def open(
        self,
        devices: DeviceManager,
        bus: EventBus,
        till: HeadlessTill | None,
        gate: CardGate | None = None,
    ) -> None:
        """Answer `appliance sim ...` and start the slow simulators; call once devices are open.

        With a `till`, `sim pay`, `sim cancel-payment` and `sim settle` act on its cart.
        """
        commands = lab_commands(self.lab)
        if till is not None:
            from appliance.service.sim_payment import SimPayment

            self.payment = SimPayment(bus, till, lambda: gate)
            commands |= self.payment.commands()
        server = ControlServer(self.socket_path, commands)
        try:
            server.open()
        except ApplianceError as err:
            # The till still sells; only `appliance sim ...` is unavailable.
            log.error("simulator control socket unavailable: %s", err)
        else:
            self.control = server
        if self.simulate_nfc:
            self._late_start = threading.Thread(
                target=self._start_nfc, args=(devices,), name="sim-late-start", daemon=True
            )
            self._late_start.start()

    def add_commands(self, commands: Mapping[str, Command]) -> None:
        """Answer these control commands too (a part started after `open`); any thread."""
        if self.control is not None:
            self.control.add(commands)

    def serve_screen(self, screen: PaymentScreen | None) -> None:
        """The screen decides `sim pay|cancel-payment|settle` (None: the till); main thread."""
        if self.payment is not None:
            self.payment.serve(screen)

    def stop_control(self) -> None:
        """Stop answering and wait for the late start, before the devices close; safe twice."""
        control, self.control = self.control, None
        if control is not None:
            try:
                control.close()
            except OSError as err:
                # The socket file stays on a read-only or failing data partition; the next
                # start replaces a stale one, so stopping must not fail for it.
                log.warning("simulator control socket not removed: %s", err)
        late, self._late_start = self._late_start, None
        if late is not None:
            late.join()  # so no simulator or device is added after they are closed

    def close(self) -> None:
        """Stop the control socket and every simulator; safe twice."""
        self.stop_control()
        self.lab.close()

    def _start_nfc(self, devices: DeviceManager) -> None:
        try:
            table = self.lab.start_nfc()
            devices.open_late(NFC, table)
        except Exception as err:  # the till sells without NFC; say why it is missing
            log.warning("simulated NFC reader not started: %s", err)
