r"""Ed25519 signatures on fleet commands: the canonical bytes, signing and verification.

The signed bytes are RFC 8785 (JCS) of the command object with `signature` set to "".
A signed command holds no floats, only integers within ±(2**53 - 1), and object keys in
ASCII. Within that domain JCS is exactly Python's `json.dumps(obj, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)` in UTF-8: JCS sorts keys by UTF-16 code
units (for ASCII keys the same order as code points), writes integers of that range as
plain decimals, and escapes strings as JSON.stringify does: `\"`, `\\`, `\b \t \n \f \r`,
`\u00XX` in lower case for the other controls below U+0020, everything else verbatim
(`/`, DEL, U+2028, non-ASCII). Any implementation that sorts keys and writes compactly
therefore rebuilds them. The hub refuses to sign a command outside the domain, and the
device answers one REJECTED ("not canonical").
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.errors import (
    BadSignatureError,
    CommandSignatureError,
    FleetKeyError,
    UnsignedCommandError,
)
from appliance.mqtt.payloads import MAX_SAFE, Command

SIGNATURE_BYTES = 64  # an Ed25519 signature is always 64 bytes
SIGNED_DOMAIN = (
    f"a signed command holds strings, integers within ±{MAX_SAFE}, booleans, null,"
    " lists and objects with ASCII keys; no floats (send a decimal as a string or in"
    " minor units)"
)
_SHOWN = 40  # characters of an offending value quoted in an error


def canonical_bytes(command: Command) -> bytes:
    """The bytes a signature covers (JCS, see above); ValueError names a value outside it."""
    unsigned = msgspec.to_builtins(msgspec.structs.replace(command, signature=""))
    _check(unsigned, "")
    return json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check(value: Any, where: str) -> None:
    """Raise ValueError at the first value JCS and sorted compact JSON might write apart."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where or 'a string'} holds a lone surrogate") from None
        return
    if isinstance(value, int):
        if not -MAX_SAFE <= value <= MAX_SAFE:
            raise ValueError(f"{where} is an integer beyond ±{MAX_SAFE} ({_show(value)})")
        return
    if isinstance(value, float):
        raise ValueError(f"{where} is a float ({_show(value)})")
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            # JCS orders keys by UTF-16 code units, Python by code points: they differ
            # beyond the Basic Multilingual Plane, never within ASCII.
            if not isinstance(key, str) or not key.isascii():
                raise ValueError(f"{where or 'the command'} has a key that is not ASCII: {key!r}")
            _check(item, f"{where}.{key}" if where else key)
        return
    raise ValueError(f"{where} is a {type(value).__name__}, not JSON")


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."


def sign_command(command: Command, key: Ed25519PrivateKey) -> Command:
    """The command with `signature` set to base64 of the Ed25519 signature of its fields.

    CommandSignatureError when it holds a value outside the signed domain (a float, ...).
    """
    try:
        data = canonical_bytes(command)
    except ValueError as err:
        raise CommandSignatureError(f"cannot sign the command: {err}; {SIGNED_DOMAIN}") from None
    signature = key.sign(data)
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
        data = canonical_bytes(command)
    except ValueError as err:
        # No signer of ours made it; another implementation could have signed other bytes.
        raise BadSignatureError(f"not canonical: {err}") from None
    try:
        key.verify(signature, data)
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
