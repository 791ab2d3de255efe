"""The hub credentials and SSH keys of a provisioning file: they parse, match and chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def tls_problems(
    ca_pem: str,
    cert_pem: str,
    key_pem: str,
    *,
    fleet_pem: str | None,
    release_pem: str | None = None,
    device_id: str | None,
    now: datetime,
) -> Iterator[tuple[str, str]]:
    """(key under [hub], why) for each problem of the TLS material; none when it is sound."""
    cas = _certificates(ca_pem)
    if not cas:
        yield ("ca", "not a PEM certificate")
    for index, ca in enumerate(cas):
        constraints = _extension(ca, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            yield ("ca", f"certificate {index + 1} is not a CA certificate")
        elif ca.not_valid_after_utc < now:
            yield ("ca", f"expired on {ca.not_valid_after_utc:%Y-%m-%d}")
    certs = _certificates(cert_pem)
    if len(certs) != 1:
        yield (
            "client_cert",
            "not a PEM certificate"
            if not certs
            else "holds several certificates; give the device's own only",
        )
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except TypeError:
        # Nobody is at the boot console to type a passphrase.
        yield ("client_key", "an encrypted key cannot be used: give it unencrypted")
        key = None
    except (ValueError, UnsupportedAlgorithm):
        yield ("client_key", "not a PEM private key")
        key = None
    if fleet_pem and not _is_ed25519_public(fleet_pem):
        yield ("fleet_public_key", "not a PEM Ed25519 public key")
    if release_pem and not _is_ed25519_public(release_pem):
        yield ("release_public_key", "not a PEM Ed25519 public key")
    elif release_pem and fleet_pem and release_pem.strip() == fleet_pem.strip():
        # A stolen fleet key must not also be able to put software on every kiosk.
        yield ("release_public_key", "is the fleet key: releases need a key of their own")
    if len(certs) != 1:
        return
    cert = certs[0]
    if key is not None and _spki(key.public_key()) != _spki(cert.public_key()):
        yield ("client_cert", "does not match hub.client_key")
    if cas and not any(_issued_by(cert, ca) for ca in cas):
        yield ("client_cert", "not issued by the CA in hub.ca")
    if cert.not_valid_after_utc < now:
        yield ("client_cert", f"expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    usage = _extension(cert, x509.ExtendedKeyUsage)
    if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        yield ("client_cert", "not a client certificate (extended key usage)")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(names[0].value) if names else None
    if device_id is not None and cn != device_id:
        # The broker takes the CN as the device's identity, whatever the device claims.
        yield ("client_cert", f"its CN is {cn!r}, but device.id is {device_id!r}")


def ssh_key_problem(line: str) -> str | None:
    """Why `line` is not one OpenSSH public key ("type base64 [comment]"), or None."""
    if "\n" in line.strip() or not line.strip():
        return "expected one OpenSSH public key per entry"
    if line.split(maxsplit=1)[0] == "ssh-dss":
        # By name: cryptography's own DSA type warns that it is deprecated.
        return "DSA keys are refused (OpenSSH no longer accepts them)"
    try:
        key = serialization.load_ssh_public_key(line.strip().encode())
    except (ValueError, UnsupportedAlgorithm):
        return "not an OpenSSH public key (expected 'ssh-ed25519 AAAA... comment')"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        return f"an RSA key of {key.key_size} bits is too weak (2048 at least)"
    return None


def _certificates(pem: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []


def _extension(cert: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _is_ed25519_public(pem: str) -> bool:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        return False
    return isinstance(key, ed25519.Ed25519PublicKey)
