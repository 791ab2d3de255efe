"""Ed25519 signatures on fleet commands: the canonical bytes, signing and verification.

The signed bytes are the command's msgspec JSON with `signature` set to "" and every key
sorted (struct fields and nested `args` alike), so the hub and the device derive the same
bytes from the same struct whatever order the fields arrived in on the wire.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import BadSignatureError, FleetKeyError, UnsignedCommandError
from appliance.mqtt.payloads import Command

SIGNATURE_BYTES = 64  # an Ed25519 signature is always 64 bytes


def canonical_bytes(command: Command) -> bytes:
    """The bytes a signature covers: sorted-key JSON of the command with an empty signature."""
    unsigned = msgspec.structs.replace(command, signature="")
    return msgspec.json.encode(unsigned, order="sorted")


def sign_command(command: Command, key: Ed25519PrivateKey) -> Command:
    """The command with `signature` set to base64 of the Ed25519 signature of its fields."""
    signature = key.sign(canonical_bytes(command))
    return msgspec.structs.replace(command, signature=base64.b64encode(signature).decode("ascii"))


def verify_command(command: Command, key: Ed25519PublicKey) -> None:
    """Return when `key` signed exactly these fields, else raise a CommandSignatureError."""
    if not command.signature:
        raise UnsignedCommandError("unsigned")
    try:
        signature = base64.b64decode(command.signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise BadSignatureError("bad signature") from None
    if len(signature) != SIGNATURE_BYTES:
        raise BadSignatureError("bad signature")
    try:
        key.verify(signature, canonical_bytes(command))
    except InvalidSignature:
        raise BadSignatureError("bad signature") from None


def public_key_from_pem(pem: bytes) -> Ed25519PublicKey:
    """Parse a PEM (SubjectPublicKeyInfo) Ed25519 public key; FleetKeyError otherwise."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as err:
        raise FleetKeyError(f"not a PEM public key: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise FleetKeyError(f"the fleet key must be Ed25519, not {type(key).__name__}")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read the fleet public key (PEM) the appliance verifies commands with."""
    try:
        pem = path.read_bytes()
    except OSError as err:
        raise FleetKeyError(f"{path}: cannot read the fleet public key: {err}") from err
    try:
        return public_key_from_pem(pem)
    except FleetKeyError as err:
        raise FleetKeyError(f"{path}: {err}") from err


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    """PEM (SubjectPublicKeyInfo) bytes of a public key, as load_public_key reads them."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
