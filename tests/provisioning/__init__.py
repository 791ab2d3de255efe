"""Provisioning tests: a real CA, device certificates and keys, and good files to spoil."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.provisioning.apply import toml_text

DEVICE_ID = "kiosk-0042"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
PSK = "correct-horse-battery"


@dataclass(frozen=True, slots=True)
class Pki:
    """PEM text: the fleet CA, this device's certificate and key, and some that do not fit."""

    ca: str
    cert: str
    key: str
    other_key: str  # a key the certificate was not made for
    foreign_cert: str  # CN=DEVICE_ID, issued by another CA
    other_device_cert: str  # issued by the fleet CA, for another device
    expired_cert: str
    encrypted_key: str
    fleet_public_key: str
    ssh_keys: tuple[str, ...]


def _pem_key(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode()


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    days: int = 730,
) -> str:
    ca_key, ca_cert = ca
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@cache
def pki(device_id: str = DEVICE_ID) -> Pki:
    """A fleet CA and everything a test needs around it (made once per device id)."""
    fleet, other = _ca("Test fleet CA"), _ca("Someone else's CA")
    key = ec.generate_private_key(ec.SECP256R1())
    ssh = [
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
        + f" tech{n}@example.com"
        for n in (1, 2)
    ]
    return Pki(
        ca=fleet[1].public_bytes(serialization.Encoding.PEM).decode(),
        cert=_leaf(fleet, device_id, key),
        key=_pem_key(key),
        other_key=_pem_key(ec.generate_private_key(ec.SECP256R1())),
        foreign_cert=_leaf(other, device_id, key),
        other_device_cert=_leaf(fleet, "kiosk-9999", key),
        expired_cert=_leaf(fleet, device_id, key, days=-1),
        encrypted_key=_pem_key(key, b"secret"),
        fleet_public_key=ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        ssh_keys=tuple(ssh),
    )


def good_data(**tables: Any) -> dict[str, Any]:
    """A complete, valid provisioning file as tomllib would read it; `tables` laid over it."""
    keys = pki()
    data: dict[str, Any] = {
        "version": 1,
        "device": {"id": DEVICE_ID},
        "store": {"name": "Corner shop", "currency": "EUR", "locale": "de_DE"},
        "hub": {
            "host": "hub.example.com",
            "port": 8883,
            "ca": keys.ca,
            "client_cert": keys.cert,
            "client_key": keys.key,
            "fleet_public_key": keys.fleet_public_key,
        },
        "wifi": {"ssid": "Shop floor", "psk": PSK, "country": "DE"},
        "system": {"timezone": "Europe/Berlin", "locale": "de_DE.UTF-8"},
        "ssh": {"authorized_keys": list(keys.ssh_keys)},
        "appliance": {
            "device": {"receipt_prefix": "K42"},
            "store": {"tax_classes": {"standard": 1900, "reduced": 700, "zero": 0}},
            "screen": {"mode": "kiosk"},
        },
    }
    data = copy.deepcopy(data)
    for name, table in tables.items():
        data[name] = table
    return data


def set_key(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """`data` with one dotted key set (or removed, when `value` is DELETE)."""
    *path, last = dotted.split(".")
    table = data
    for part in path:
        table = table.setdefault(part, {})
    if value is DELETE:
        del table[last]
    else:
        table[last] = value
    return data


DELETE = object()


def write_file(path: Path, data: dict[str, Any]) -> Path:
    """`data` as a provisioning file at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toml_text(data), encoding="utf-8")
    return path
