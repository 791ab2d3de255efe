"""Two small certificate authorities: the fleet CA (devices, broker) and the hub CA (workers).

The device id is the CN of its client certificate; the broker takes it as the MQTT
username (mosquitto `use_identity_as_username`) and keys every ACL on it, so whoever
holds the CA key decides which identities exist. The hub workers' certificate comes from
a CA of its own, which only the hub workers' listener trusts: a device certificate fails
the handshake there, and the hub's certificate fails it on the device listener. Keys are
EC P-256: every mosquitto and OpenSSL build in the field accepts them for TLS 1.2 and
1.3. Files are PEM; private keys are unencrypted PKCS#8 (mosquitto and paho read them
without a passphrase) and written 0600.
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
HUB_CA_CERT = "hub-ca.crt"  # trusted by the hub workers' listener only
HUB_CA_KEY = "hub-ca.key"
HUB_IDENTITY = "hub"  # the CN the broker ACL grants the whole pos/v1/ tree
FLEET_CA_NAME = "Appliance fleet CA"
HUB_CA_NAME = "Appliance hub CA"

CA_VALIDITY = dt.timedelta(days=3652)  # ten years
LEAF_VALIDITY = dt.timedelta(days=730)  # two years
# Tolerate clocks a little behind the CA's (a Pi without RTC before NTP sync).
BACKDATE = dt.timedelta(minutes=5)
_LOCAL_NAMES = {"localhost", "127.0.0.1"}


_Signer = tuple[ec.EllipticCurvePrivateKey, x509.Certificate]  # a CA's key and certificate


class CaError(ApplianceError):
    """The CA cannot do what was asked (no CA yet, bad id, files already there)."""


def init_ca(
    directory: Path,
    *,
    name: str = FLEET_CA_NAME,
    hub_name: str = HUB_CA_NAME,
    force: bool = False,
    now: dt.datetime | None = None,
) -> Path:
    """Create the fleet CA and the hub CA in `directory`; return the fleet CA's cert path."""
    _refuse_overwrite(
        *(directory / n for n in (CA_KEY, CA_CERT, HUB_CA_KEY, HUB_CA_CERT)), force=force
    )
    _new_ca(directory / CA_KEY, directory / CA_CERT, name, now)
    _new_ca(directory / HUB_CA_KEY, directory / HUB_CA_CERT, hub_name, now)
    return directory / CA_CERT


def ensure_hub_ca(ca_dir: Path, *, name: str = HUB_CA_NAME, now: dt.datetime | None = None) -> bool:
    """Create the hub CA beside an existing fleet CA unless it is there; True when created."""
    # A CA folder made before the hub CA existed gets one on first use; never without
    # the fleet CA, so `ca init` stays the one way to start a folder.
    _load_ca(ca_dir)
    key_path, cert_path = ca_dir / HUB_CA_KEY, ca_dir / HUB_CA_CERT
    if key_path.exists() and cert_path.exists():
        return False
    _refuse_overwrite(key_path, cert_path, force=False)
    _new_ca(key_path, cert_path, name, now)
    return True


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
    return _issue_client(ca_dir, _load_ca(ca_dir), device_id, out_dir, force=force, now=now)


def issue_hub(
    ca_dir: Path,
    out_dir: Path,
    *,
    force: bool = False,
    now: dt.datetime | None = None,
) -> tuple[Path, Path]:
    """Issue the hub workers' client certificate (CN=hub) from the hub CA, made on first use."""
    ensure_hub_ca(ca_dir, now=now)
    signer = _load_ca(ca_dir, HUB_CA_KEY, HUB_CA_CERT)
    # The fleet ca.crt goes beside it all the same: workers verify the broker against it.
    return _issue_client(ca_dir, signer, HUB_IDENTITY, out_dir, force=force, now=now)


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
    signer = _load_ca(ca_dir)
    # The broker trusts the hub CA on the workers' listener: ship it with the rest.
    ensure_hub_ca(ca_dir, now=now)
    paths = _issue(
        signer,
        hostname,
        out_dir / SERVER_CERT,
        out_dir / SERVER_KEY,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        alt_names=names,
        force=force,
        now=now,
    )
    _ship(ca_dir, out_dir, CA_CERT, HUB_CA_CERT)
    return paths


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
    ca_dir: Path,
    signer: _Signer,
    identity: str,
    out_dir: Path,
    *,
    force: bool,
    now: dt.datetime | None,
) -> tuple[Path, Path]:
    paths = _issue(
        signer,
        identity,
        out_dir / f"{identity}.crt",
        out_dir / f"{identity}.key",
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        alt_names=[],
        force=force,
        now=now,
    )
    # Every client verifies the broker's certificate against the fleet CA.
    _ship(ca_dir, out_dir, CA_CERT)
    return paths


def _new_ca(key_path: Path, cert_path: Path, name: str, now: dt.datetime | None) -> None:
    """Write a new CA key and its self-signed certificate (ten years)."""
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
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(cert_path.parent, key_path, cert_path, key, cert)
    log.info("created CA %r in %s", name, cert_path.parent)


def _issue(
    signer: _Signer,
    cn: str,
    cert_path: Path,
    key_path: Path,
    *,
    usage: x509.ObjectIdentifier,
    alt_names: list[x509.GeneralName],
    force: bool,
    now: dt.datetime | None,
) -> tuple[Path, Path]:
    ca_key, ca_cert = signer
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
        .add_extension(_key_usage(signs_certificates=False), critical=True)
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
    log.info("issued a certificate for %r in %s", cn, cert_path.parent)
    return cert_path, key_path


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """A CA signs certificates and CRLs only; a leaf makes digital signatures only (TLS)."""
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _ship(ca_dir: Path, out_dir: Path, *names: str) -> None:
    """Copy CA certificates beside a new certificate (both ends verify the other)."""
    for name in names:
        copy = out_dir / name
        if copy.resolve() != (ca_dir / name).resolve():
            shutil.copyfile(ca_dir / name, copy)


def _load_ca(ca_dir: Path, key_name: str = CA_KEY, cert_name: str = CA_CERT) -> _Signer:
    try:
        key = serialization.load_pem_private_key((ca_dir / key_name).read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate((ca_dir / cert_name).read_bytes())
    except FileNotFoundError as err:
        raise CaError(f"no CA in {ca_dir} ({err.filename}): run `ca init` first") from err
    except ValueError as err:
        raise CaError(f"the CA in {ca_dir} is unreadable: {err}") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"the CA key {ca_dir / key_name} is not an EC key")
    return key, cert


def _refuse_overwrite(*paths: Path, force: bool) -> None:
    if force:
        return
    existing = [str(path) for path in paths if path.exists()]
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
