"""The `update` command of a rollout: signed by the fleet key, recorded as a job, held, published.

Each command is recorded and held (DeviceAnswers.command_sent, hub/command_hold.py) in the
transaction that makes its device a target of the rollout, before anything is published:
a device offline now gets it from a serve worker at its next birth, until it expires. The
publish afterwards is a courtesy to online devices; when it fails the serve workers' pass
over unsent held commands delivers it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.mqtt import topics
from appliance.mqtt.payloads import Command, encode
from hub.cli_command import BrokerOptions, FleetClient
from hub.fleet_keys import new_command
from hub.releases.store import ReleaseView

log = logging.getLogger(__name__)

UPDATE_EXPIRY = timedelta(days=7)  # the longest a signed command may live (a replay risk)
BUNDLE_PATH = "/bundles/{version}/payload.bin"

Publish = Callable[[Sequence[Command]], None]  # raises ApplianceError when it cannot


def bundle_url(base: str, version: str) -> str:
    """The URL of a release's payload at the bundle server whose base URL is `base`."""
    return base.rstrip("/") + BUNDLE_PATH.format(version=version)


def update_args(release: ReleaseView, base_url: str) -> dict[str, str]:
    """The `update` command's arguments: strings only, exactly as the device reads them."""
    return {
        "version": release.version,
        "url": bundle_url(base_url, release.version),
        "manifest": release.manifest,  # the signed bytes, decoded as UTF-8
        "signature": release.signature,  # standard base64 of the 64 signature bytes
    }


def update_command(
    key: Ed25519PrivateKey, device: str, release: ReleaseView, base_url: str
) -> Command:
    """A signed `update` command for one device, valid for UPDATE_EXPIRY."""
    return new_command(
        key, device, "update", update_args(release, base_url), expires_in=UPDATE_EXPIRY
    )


def broker_publisher(broker: BrokerOptions) -> Publish:
    """Publish commands over one short-lived MQTT connection, as `fleet command` does."""

    def publish(commands: Sequence[Command]) -> None:
        if not commands:
            return
        with FleetClient(broker) as client:
            for command in commands:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                # The broker drops it when the job expires; answers go where the CLI's do.
                properties.MessageExpiryInterval = int(UPDATE_EXPIRY.total_seconds())
                properties.ResponseTopic = topics.command_update(command.device)
                properties.CorrelationData = command.id.encode()
                client.publish(
                    topics.command(command.device), encode(command), properties=properties
                )

    return publish
