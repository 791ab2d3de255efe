"""Everything a running appliance has started, opened and closed in one place.

Both main loops use it: the headless loop and the Kivy checkout screen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.drivers.manager import DeviceManager
from appliance.service.after_sale import AfterSale
from appliance.service.assembly import Appliance
from appliance.settings import Settings

if TYPE_CHECKING:
    from appliance.service.hub_connection import HubConnection
    from appliance.service.updates import UpdateStart

log = logging.getLogger(__name__)


@dataclass
class Running:
    """The open appliance, its devices, what follows a sale, and the hub link if any."""

    app: Appliance
    devices: DeviceManager
    after_sale: AfterSale
    hub: HubConnection | None
    simulate: bool


@contextmanager
def running(
    settings: Settings,
    *,
    simulate: bool,
    screen: bool = False,
    config_path: Path | None = None,
    journald: bool = False,
    update: UpdateStart | None = None,
) -> Iterator[Running]:
    """Open the store, devices, receipts and hub link; close them all on the way out.

    With `screen`, scans and card taps are left to the checkout screen, which routes them
    by what is on it, and receipts print when the customer asks for one. `update` is the
    update's start-up step, already run: a try boot holds new sales until its gate commits.
    """
    app = Appliance.open(settings)
    try:
        if update is not None and update.gating:
            from appliance.service.updates import GATE_HOLD_REASON

            app.hold_sales(GATE_HOLD_REASON)  # before READY: no sale before the commit
        if simulate:
            from appliance.service.simulation import seed_demo_store

            seed_demo_store(app)
        app.lookup.refresh()  # before READY=1, so the first scan is as fast as any other
        app.watch_storage()
        if update is None or not update.gating:
            # A kiosk with [till] hours opens or closes its shift now; a try boot does it
            # once committed (a rollback would lose the journal entry).
            app.start_kiosk_shift()
        devices = app.open_devices(simulate=simulate, route_input=not screen)
        after_sale = AfterSale(app, devices, print_every_sale=not screen)
        after_sale.open()
        hub = None
        if settings.hub is not None:
            # paho loads only when a hub is configured: a stand-alone till starts faster.
            from appliance.service.hub_connection import HubConnection

            hub = HubConnection(
                app,
                devices,
                settings.hub,
                config_path=config_path,
                journald=journald,
                update=update,
            )
            hub.open()
            if app.simulation is not None and hub.staff_help is not None:
                # `appliance sim help-calls|approve-help` answer calls from a staff device.
                from appliance.service.sim_staff_help import SimStaffHelp

                staff_help = SimStaffHelp(app.bus, hub.staff_help, app.stores.staff)
                app.simulation.add_commands(staff_help.commands())
        if update is not None and update.gating and (hub is None or hub.updater is None):
            # Nothing here could pass the gate (no hub link or no fleet control): say so now.
            update.boot.fail("the new slot has no hub link or fleet control configured")
        try:
            yield Running(app, devices, after_sale, hub, simulate)
        finally:
            log.info("appliance stopping")
            if hub is not None:
                hub.close()
            after_sale.close()
            app.close_devices()
            app.bus.drain()  # events of the last kick and print (the drawer log) before closing
    finally:
        app.close()
