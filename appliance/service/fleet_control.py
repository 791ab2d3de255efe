"""What the fleet admin can do to this appliance: signed commands and desired configuration.

Wired only when [hub] names a fleet public key and the appliance runs from a config file;
without the key no command is ever executed (there is nothing to verify it against).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.core.clock import SystemClock
from appliance.core.events import Event, EventBus
from appliance.drivers.manager import DeviceManager
from appliance.mqtt import topics
from appliance.mqtt.commands import CommandHandler
from appliance.mqtt.config_sync import ConfigSync
from appliance.mqtt.device_logs import LogCollector, LogRing, log_source
from appliance.mqtt.fleet_actions import KioskLock, standard_actions
from appliance.mqtt.link import LinkState, PahoHubLink
from appliance.mqtt.payloads import Payload, encode
from appliance.mqtt.signing import load_public_key
from appliance.service.assembly import Appliance
from appliance.service.kiosk_approvals import KioskApprovals
from appliance.settings import HubSettings, Settings
from appliance.store.command_log import SqliteSeenCommands

if TYPE_CHECKING:
    from appliance.service.updates import UpdateStart
    from appliance.update.updater import Updater

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HubSessionStarted(Event):
    """A new session with the hub began: what it may have missed is sent again."""

    session: int


class FleetControl:
    """Commands (lock, drawer, test page, logs, reboot, ...) and remote configuration."""

    def __init__(
        self,
        app: Appliance,
        devices: DeviceManager,
        link: PahoHubLink,
        hub: HubSettings,
        *,
        config_path: Path,
        request_snapshot: Callable[[], None],
        journald: bool,
        update: UpdateStart | None = None,
    ) -> None:
        device = app.settings.device.id
        clock = SystemClock()

        def publisher(topic: str, *, retain: bool = False) -> Callable[[Payload], None]:
            return lambda payload: _publish(link, topic, payload, retain=retain)

        self.lock = KioskLock(app.bus)
        self.updater: Updater | None = None
        if update is not None:
            from appliance.service.updates import build_updater

            self.updater = build_updater(
                app,
                devices,
                link,
                hub,
                update,
                publish_report=publisher(topics.update_up(device)),
                publish_command=publisher(topics.command_update(device)),
            )
            self._update_session = 0
            link.watch(lambda state: self._hub_session(state, app.bus))
            app.bus.subscribe(HubSessionStarted, lambda _event: self._resend_update())
        self._ring = LogRing()
        logging.getLogger().addHandler(self._ring)
        self.config = ConfigSync(
            config_path,
            publish_reported=publisher(topics.config_reported(device), retain=True),
            on_applied=_takes_effect_at_restart,
        )
        actions = standard_actions(
            lock=self.lock,
            request_snapshot=request_snapshot,
            printer=devices.printer,
            drawer=devices.drawer,
            config=self.config,
            logs=LogCollector(
                device,
                log_source(self._ring, journald=journald),
                publisher(topics.logs_up(device)),
            ),
            run=_run_system_command,
            update=self.updater.action if self.updater is not None else None,
        )
        if app.settings.screen.mode == "kiosk":
            # Staff at a tablet answer this kiosk's calls for help (docs/protocol.md).
            approvals = KioskApprovals(app, publisher(topics.command_update(device)))
            actions["approve_help"] = approvals.action
        self.commands = CommandHandler(
            device,
            load_public_key(Path(hub.fleet_public_key)),
            publish_update=publisher(topics.command_update(device)),
            is_sale_open=lambda: not app.checkout.cart.is_empty,
            actions=actions,
            clock=clock,
            seen_store=SqliteSeenCommands(app.db, clock),
            held=update.holds if update is not None else lambda _name: "",
        )
        self.commands.route(link.dispatcher, app.bus)
        self.config.route(device, link.dispatcher, app.bus)

    def open(self) -> None:
        """Start the command worker, and the update's gate or its unfinished download."""
        self.commands.open()
        if self.updater is not None:
            self.updater.open()

    def close(self) -> None:
        """Stop the command worker and the update's threads; safe twice."""
        self.commands.close()
        if self.updater is not None:
            self.updater.close()
        logging.getLogger().removeHandler(self._ring)

    def _hub_session(self, state: LinkState, bus: EventBus) -> None:
        # paho's thread: only post. A report sent before this session may have been lost.
        if state.connected and state.session != self._update_session:
            self._update_session = state.session
            bus.post(HubSessionStarted(state.session))

    def _resend_update(self) -> None:
        if self.updater is not None:
            self.updater.connected()


def _publish(link: PahoHubLink, topic: str, payload: Payload, *, retain: bool) -> None:
    if not link.publish(topic, encode(payload), qos=1, retain=retain):
        log.warning("hub link down: %s not sent", topic)


def _run_system_command(argv: Sequence[str]) -> None:
    """Run `systemctl reboot` and the like; the unit allows nothing more."""
    subprocess.run(list(argv), check=True, timeout=30)


def _takes_effect_at_restart(settings: Settings) -> None:
    # Settings are loaded once and passed in; a new file takes effect at the next start.
    log.warning("configuration changed by the fleet; it takes effect at the next restart")
