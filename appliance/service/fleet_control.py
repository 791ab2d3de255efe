"""What the fleet admin can do to this appliance: signed commands and desired configuration.

Wired only when [hub] names a fleet public key and the appliance runs from a config file;
without the key no command is ever executed (there is nothing to verify it against).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance.core.clock import SystemClock
from appliance.drivers.manager import DeviceManager
from appliance.mqtt import topics
from appliance.mqtt.commands import CommandHandler
from appliance.mqtt.config_sync import ConfigSync
from appliance.mqtt.device_logs import LogCollector, LogRing, log_source
from appliance.mqtt.fleet_actions import KioskLock, standard_actions
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import Payload, encode
from appliance.mqtt.signing import load_public_key
from appliance.service.assembly import Appliance
from appliance.settings import HubSettings, Settings
from appliance.store.command_log import SqliteSeenCommands

log = logging.getLogger(__name__)


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
    ) -> None:
        device = app.settings.device.id
        clock = SystemClock()

        def publisher(topic: str, *, retain: bool = False) -> Callable[[Payload], None]:
            return lambda payload: _publish(link, topic, payload, retain=retain)

        self.lock = KioskLock(app.bus)
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
        )
        self.commands = CommandHandler(
            device,
            load_public_key(Path(hub.fleet_public_key)),
            publish_update=publisher(topics.command_update(device)),
            is_sale_open=lambda: not app.checkout.cart.is_empty,
            actions=actions,
            clock=clock,
            seen_store=SqliteSeenCommands(app.db, clock),
        )
        self.commands.route(link.dispatcher, app.bus)
        self.config.route(device, link.dispatcher, app.bus)

    def open(self) -> None:
        """Start the command worker."""
        self.commands.open()

    def close(self) -> None:
        """Stop the command worker; safe twice."""
        self.commands.close()
        logging.getLogger().removeHandler(self._ring)


def _publish(link: PahoHubLink, topic: str, payload: Payload, *, retain: bool) -> None:
    if not link.publish(topic, encode(payload), qos=1, retain=retain):
        log.warning("hub link down: %s not sent", topic)


def _run_system_command(argv: Sequence[str]) -> None:
    """Run `systemctl reboot` and the like; the unit allows nothing more."""
    subprocess.run(list(argv), check=True, timeout=30)


def _takes_effect_at_restart(settings: Settings) -> None:
    # Settings are loaded once and passed in; a new file takes effect at the next start.
    log.warning("configuration changed by the fleet; it takes effect at the next restart")
