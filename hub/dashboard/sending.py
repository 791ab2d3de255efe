"""Sending fleet commands from the dashboard: signed as the CLI signs them, and held.

Each command is signed with the fleet key (hub/fleet_keys.py new_command), recorded as a
job and held at the hub (DeviceAnswers.command_sent, hub/command_hold.py) before it is
published: a device that is offline gets it from a serve worker when it is next born,
until it expires. It is then published over one short-lived MQTT connection with the
hub's identity, with the properties `appliance-hub fleet command` sets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from peewee import Database

from appliance.errors import ApplianceError
from appliance.mqtt import topics
from appliance.mqtt.device_logs import DEFAULT_LOG_LINES
from appliance.mqtt.payloads import Command, CommandName, encode
from hub.cli_command import BrokerOptions, FleetClient
from hub.command_hold import mark_sent
from hub.device_answers import DeviceAnswers
from hub.fleet_keys import load_fleet_key, new_command
from hub.server import BrokerEndpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DashboardCommand:
    """A command an admin can send from the dashboard."""

    name: CommandName
    label: str
    confirm: str = ""  # asked before sending, when set

    def args(self) -> dict[str, Any]:
        """The command's arguments."""
        return {"lines": DEFAULT_LOG_LINES} if self.name == "collect_logs" else {}


COMMANDS: dict[str, DashboardCommand] = {
    c.name: c
    for c in (
        DashboardCommand("lock", "Lock"),
        DashboardCommand("unlock", "Unlock"),
        DashboardCommand("reload_catalog", "Reload catalog"),
        DashboardCommand("print_test_page", "Print test page"),
        DashboardCommand("collect_logs", "Collect logs"),
        DashboardCommand(
            "reboot",
            "Reboot",
            confirm="The appliance restarts; a customer at it now loses the screen for a minute.",
        ),
    )
}
EXPIRIES: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),  # the CLI's longest too: longer is a replay risk, not a help
}
DEFAULT_EXPIRY = "1h"


class NotConfiguredError(ApplianceError):
    """The dashboard cannot send commands: no fleet key, or no broker, was given."""


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of the commands: all recorded and held; published, or not (and why)."""

    commands: tuple[Command, ...]
    published: bool
    problem: str = ""  # why they were not published; the hold delivers them later


def sending_problem(fleet_key: object, broker: BrokerEndpoint | None) -> str:
    """Why the dashboard cannot send commands, or "" when it can."""
    if fleet_key is None:
        return (
            "No fleet key: start `appliance-hub web` with --fleet-key (the key "
            "`appliance-hub fleet keygen` made) to send commands."
        )
    if broker is None:
        return "No broker: start `appliance-hub web` with --host and --port of the broker."
    return ""


class CommandSender:
    """Signs, records, holds and publishes commands; safe from several threads at once."""

    def __init__(self, db: Database, fleet_key: Any, broker: BrokerEndpoint | None) -> None:
        self._db = db
        self._fleet_key = fleet_key
        self._broker = broker

    def send(self, devices: Sequence[str], name: str, expires_in: timedelta) -> Sent:
        """Send command `name` to each of `devices`; NotConfiguredError or FleetKeyError first."""
        problem = sending_problem(self._fleet_key, self._broker)
        if problem:
            raise NotConfiguredError(problem)
        assert self._broker is not None
        choice = COMMANDS[name]
        key = load_fleet_key(self._fleet_key)
        answers = DeviceAnswers(self._db)
        commands = []
        for device in devices:
            command = new_command(key, device, choice.name, choice.args(), expires_in=expires_in)
            answers.command_sent(device, encode(command))  # a job, held until answered
            commands.append(command)
        try:
            self._publish(self._broker, commands, expires_in)
        except ApplianceError as err:
            log.warning("dashboard commands not published (held at the hub): %s", err)
            return Sent(tuple(commands), published=False, problem=str(err))
        # Sent in each online device's session: its birth seen again does not send it twice.
        mark_sent(self._db, [command.id for command in commands])
        return Sent(tuple(commands), published=True)

    def _publish(
        self, broker: BrokerEndpoint, commands: Sequence[Command], expires_in: timedelta
    ) -> None:
        tls = broker.tls
        options = BrokerOptions(
            broker.host,
            broker.port,
            tls.ca if tls else None,
            tls.cert if tls else None,
            tls.key if tls else None,
        )
        with FleetClient(options) as client:
            for command in commands:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                # The broker drops it when the job expires; the response goes where the CLI's does.
                properties.MessageExpiryInterval = max(1, int(expires_in.total_seconds()))
                properties.ResponseTopic = topics.command_update(command.device)
                properties.CorrelationData = command.id.encode()
                client.publish(
                    topics.command(command.device), encode(command), properties=properties
                )
