"""The fleet signing key: an Ed25519 key pair; the hub signs commands, appliances verify.

The private key stays with the fleet admins (0600 PEM, PKCS#8); every appliance is
provisioned with the public key (`[hub] fleet_public_key`). A command is only acted on
when this key signed its exact fields (appliance/mqtt/signing.py), so a stolen device
certificate or a broker account alone cannot reboot or unlock a kiosk.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.core.ids import new_document_id
from appliance.errors import FleetKeyError
from appliance.mqtt.payloads import Command, CommandName
from appliance.mqtt.signing import public_key_pem, sign_command

log = logging.getLogger(__name__)

PRIVATE_KEY = "fleet.key"
PUBLIC_KEY = "fleet.pub"


def generate_fleet_keys(directory: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new fleet key pair into `directory`; returns (private, public) paths."""
    private_path, public_path = directory / PRIVATE_KEY, directory / PUBLIC_KEY
    if not force and (private_path.exists() or public_path.exists()):
        raise FleetKeyError(
            f"{private_path} already exists; a new key would orphan every provisioned appliance"
            " (--force replaces it)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    write_key_pair(private_path, public_path)
    log.info("fleet key pair written to %s", directory)
    return private_path, public_path


def write_key_pair(private_path: Path, public_path: Path) -> Ed25519PrivateKey:
    """A new Ed25519 key: the private half as 0600 PKCS#8 PEM, the public half beside it."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Created 0600 from the start: there is no moment when others could read it.
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    os.chmod(private_path, 0o600)  # O_CREAT leaves an existing file's mode alone
    public_path.write_bytes(public_key_pem(key.public_key()))
    return key


def load_fleet_key(path: Path) -> Ed25519PrivateKey:
    """Read the fleet private key (PEM, unencrypted PKCS#8); FleetKeyError otherwise."""
    try:
        pem = path.read_bytes()
    except OSError as err:
        raise FleetKeyError(f"{path}: cannot read the fleet key: {err}") from err
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as err:
        raise FleetKeyError(f"{path}: not an unencrypted PEM private key: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise FleetKeyError(f"{path}: the fleet key must be Ed25519, not {type(key).__name__}")
    return key


def new_command(
    key: Ed25519PrivateKey,
    device: str,
    name: CommandName,
    args: dict[str, Any] | None = None,
    *,
    expires_in: timedelta,
    now: datetime | None = None,
) -> Command:
    """A signed command for one device, valid for `expires_in` from `now`.

    CommandSignatureError, naming the value, when `args` hold what a signed command may
    not (a float, an integer beyond ±(2**53 - 1), a key that is not ASCII): see
    appliance/mqtt/signing.py.
    """
    issued = (now or datetime.now(UTC)).astimezone(UTC)
    command = Command(
        id=new_document_id(),  # UUIDv7: command ids sort by issue time in logs and tables
        device=device,
        name=name,
        args=dict(args or {}),
        issued_at=issued.isoformat(),
        expires_at=(issued + expires_in).isoformat(),
    )
    return sign_command(command, key)
