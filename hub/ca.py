"""A small certificate authority for the fleet: device, hub and broker certificates.

The device id is the CN of its client certificate; the broker takes it as the MQTT
username (mosquitto `use_identity_as_username`) and keys every ACL on it, so whoever
holds the CA key decides which identities exist. Keys are EC P-256: every mosquitto and
OpenSSL build in the field accepts them for TLS 1.2 and 1.3. Files are PEM; private
keys are unencrypted PKCS#8 (mosquitto and paho read them without a passphrase) and
written 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import shutil
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.errors import ApplianceError
from appliance.settings import Identifier

log = logging.getLogger(__name__)

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
HUB_IDENTITY = "hub"  # the CN the broker ACL grants the whole pos/v1/ tree

CA_VALIDITY = dt.timedelta(days=3652)  # ten years
LEAF_VALIDITY = dt.timedelta(days=730)  # two years
# Tolerate clocks a little behind the CA's (a Pi without RTC before NTP sync).
BACKDATE = dt.timedelta(minutes=5)
_LOCAL_NAMES = {"localhost", "127.0.0.1"}


class CaError(ApplianceError):
    """The CA cannot do what was asked (no CA yet, bad id, files already there)."""


def init_ca(
    directory: Path,
    *,
    name: str = "Appliance fleet CA",
    force: bool = False,
    now: dt.datetime | None = None,
) -> Path:
    """Create the CA key and its self-signed certificate in `directory`; return the cert path."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    _refuse_overwrite(key_path, cert_path, force=force)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = _now(now) - BACKDATE
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CA_VALIDITY)
        # path_length 0: this CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(directory, key_path, cert_path, key, cert)
    log.info("created CA %r in %s", name, directory)
    return cert_path


def issue_device(
    ca_dir: Path,
    device_id: str,
    out_dir: Path,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """Issue a client certificate with CN=device_id; return (cert path, key path)."""
    check_identifier(device_id)
    if device_id == HUB_IDENTITY:
        raise CaError(f"{HUB_IDENTITY!r} is the hub's own identity; use issue_hub")
    return _issue_client(ca_dir, device_id, out_dir, force=force, now=now)


def issue_hub(
    ca_dir: Path,
    out_dir: Path,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """Issue the hub workers' client certificate (CN=hub); return (cert path, key path)."""
    return _issue_client(ca_dir, HUB_IDENTITY, out_dir, force=force, now=now)


def issue_server(
    ca_dir: Path,
    hostname: str,
    out_dir: Path,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """Issue the broker's server certificate for `hostname`; return (cert path, key path)."""
    names: list[x509.GeneralName] = []
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
    except ValueError:
        if not hostname or not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", hostname):
            raise CaError(f"not a host name or IP address: {hostname!r}") from None
        names.append(x509.DNSName(hostname))
    if hostname in _LOCAL_NAMES:
        # Local brokers are reached as either name; TLS hostname checks need both.
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    return _issue(
        ca_dir,
        hostname,
        out_dir / SERVER_CERT,
        out_dir / SERVER_KEY,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alt_names=names,
        force=force,
        now=now,
    )


def check_identifier(device_id: str) -> str:
    """Return `device_id` if it is a valid identity, else raise CaError."""
    # The rule of appliance.settings.Identifier: the id is also an MQTT topic level, so it
    # can hold neither `/` nor the wildcards `+` and `#`.
    try:
        msgspec.convert(device_id, type=Identifier)
    except msgspec.ValidationError:
        raise CaError(
            f"not a valid device id: {device_id!r} (letters, digits, '.', '_', '-';"
            " starts with a letter or digit; at most 64 characters)"
        ) from None
    return device_id


def common_name(cert_path: Path) -> str:
    """The CN of a PEM certificate (the identity the broker sees)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        raise CaError(f"{cert_path} has no CN")
    return str(values[0].value)


def _issue_client(
    ca_dir: Path, identity: str, out_dir: Path, *, force: bool, now: dt.datetime | None
) -> tuple[Path, Path]:
    return _issue(
        ca_dir,
        identity,
        out_dir / f"{identity}.crt",
        out_dir / f"{identity}.key",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        alt_names=[],
        force=force,
        now=now,
    )


def _issue(
    ca_dir: Path,
    cn: str,
    cert_path: Path,
    key_path: Path,
    *,
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName],
    force: bool,
    now: dt.datetime | None,
) -> tuple[Path, Path]:
    ca_key, ca_cert = _load_ca(ca_dir)
    _refuse_overwrite(key_path, cert_path, force=force)
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now(now) - BACKDATE
    # A leaf never outlives its CA (verifiers would reject the tail end anyway).
    end = min(start + LEAF_VALIDITY, ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(cert_path.parent, key_path, cert_path, key, cert)
    # Both ends verify the other against the CA: ship its certificate beside the new one.
    ca_copy = cert_path.parent / CA_CERT
    if ca_copy.resolve() != (ca_dir / CA_CERT).resolve():
        shutil.copyfile(ca_dir / CA_CERT, ca_copy)
    log.info("issued a certificate for %r in %s", cn, cert_path.parent)
    return cert_path, key_path


def _load_ca(ca_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
    except FileNotFoundError as err:
        raise CaError(f"no CA in {ca_dir}: run `ca init` first") from err
    except ValueError as err:
        raise CaError(f"the CA in {ca_dir} is unreadable: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"the CA key in {ca_dir} is not an EC key")
    return key, cert


def _refuse_overwrite(key_path: Path, cert_path: Path, *, force: bool) -> None:
    if force:
        return
    existing = [str(path) for path in (key_path, cert_path) if path.exists()]
    if existing:
        raise CaError(f"refusing to overwrite {', '.join(existing)} (use --force)")


def _write(
    directory: Path,
    key_path: Path,
    cert_path: Path,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Create the key 0600 from the start: never a moment where others could read it.
    key_path.unlink(missing_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)
