"""The release key: the Ed25519 pair that signs bundles, apart from the fleet command key.

A stolen fleet key can send commands, but without the release key no bundle it offers is
installed: appliances verify the manifest with the release public key they were
provisioned with (`[hub] release_public_key`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import FleetKeyError
from appliance.mqtt.signing import public_key_from_pem
from hub.fleet_keys import write_key_pair
from hub.releases.errors import ReleaseError

log = logging.getLogger(__name__)


def public_path(private: Path) -> Path:
    """Where the public half of a release key lies: beside it, ending in .pub."""
    return private.with_suffix(".pub")


def generate_release_keys(private: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write a new release key pair: `private` (0600 PEM) and its .pub; returns both paths."""
    public = public_path(private)
    if private == public:
        raise ReleaseError(f"{private}: name the private key something other than *.pub")
    if not force and (private.exists() or public.exists()):
        raise ReleaseError(
            f"{private} already exists; a new key would leave every appliance refusing the"
            " next release (--force replaces it)"
        )
    private.parent.mkdir(parents=True, exist_ok=True)
    write_key_pair(private, public)
    log.info("release key pair written: %s, %s", private, public)
    return private, public


def load_release_key(path: Path) -> Ed25519PrivateKey:
    """The release private key (unencrypted PKCS#8 PEM); ReleaseError otherwise."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as err:
        raise ReleaseError(f"{path}: cannot read the release key: {err}") from err
    except (ValueError, TypeError) as err:
        raise ReleaseError(f"{path}: not an unencrypted PEM private key: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{path}: the release key must be Ed25519, not {type(key).__name__}")
    return key


def load_release_public_key(path: Path) -> Ed25519PublicKey:
    """The release public key (PEM) that bundles are verified with; ReleaseError otherwise."""
    try:
        return public_key_from_pem(path.read_bytes())
    except OSError as err:
        raise ReleaseError(f"{path}: cannot read the release public key: {err}") from err
    except FleetKeyError as err:  # the parser speaks of the fleet key; this is the release's
        raise ReleaseError(f"{path}: not an Ed25519 PEM public key") from err
