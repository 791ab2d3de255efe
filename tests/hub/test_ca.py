"""The fleet and hub CAs: certificates OpenSSL accepts for their purpose and CA; safe ids."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hub import ca
from hub.cli_ca import ca_group
from tests import real_parts

NOW = dt.datetime(2030, 1, 15, 12, 0, tzinfo=dt.UTC)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _openssl_verify(ca_cert: Path, cert: Path, purpose: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            real_parts.binary("openssl", "openssl"),
            "verify",
            "-CAfile",
            str(ca_cert),
            "-purpose",
            purpose,
            str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_init_makes_a_ten_year_p256_ca_with_a_private_key_only_root_can_read(
    tmp_path: Path,
) -> None:
    cert_path = ca.init_ca(tmp_path / "ca", now=NOW)
    cert = _cert(cert_path)
    assert cert.subject == cert.issuer
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == ca.CA_VALIDITY
    assert cert.not_valid_before_utc <= NOW
    key = tmp_path / "ca" / ca.CA_KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_a_device_certificate_has_the_id_as_cn_client_auth_and_two_years(tmp_path: Path) -> None:
    ca.init_ca(tmp_path / "ca", now=NOW)
    cert_path, key_path = ca.issue_device(tmp_path / "ca", "kiosk-7", tmp_path / "out", now=NOW)
    cert = _cert(cert_path)
    assert ca.common_name(cert_path) == "kiosk-7"
    assert cert.issuer == _cert(tmp_path / "ca" / ca.CA_CERT).subject
    assert _eku(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == ca.LEAF_VALIDITY
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    # The device gets the CA certificate beside its own, to verify the broker.
    assert (tmp_path / "out" / ca.CA_CERT).read_bytes() == (
        tmp_path / "ca" / ca.CA_CERT
    ).read_bytes()


def test_openssl_accepts_the_chain_for_the_purpose_each_certificate_was_made_for(
    tmp_path: Path,
) -> None:
    ca_cert = ca.init_ca(tmp_path / "ca")
    device, _ = ca.issue_device(tmp_path / "ca", "kiosk-7", tmp_path / "device")
    server, _ = ca.issue_server(tmp_path / "ca", "hub.example.com", tmp_path / "server")
    assert _openssl_verify(ca_cert, device, "sslclient").returncode == 0
    assert _openssl_verify(ca_cert, server, "sslserver").returncode == 0
    # A device certificate cannot pose as the broker, nor the broker's as a device.
    assert _openssl_verify(ca_cert, device, "sslserver").returncode != 0
    assert _openssl_verify(ca_cert, server, "sslclient").returncode != 0


def test_pythons_ssl_loads_the_issued_key_pairs(tmp_path: Path) -> None:
    ca_cert = ca.init_ca(tmp_path / "ca")
    cert, key = ca.issue_device(tmp_path / "ca", "kiosk-7", tmp_path / "out")
    context = ssl.create_default_context(cafile=str(ca_cert))
    context.load_cert_chain(str(cert), str(key))  # raises if key and cert do not match


def test_a_local_server_certificate_names_localhost_and_127_0_0_1(tmp_path: Path) -> None:
    ca.init_ca(tmp_path / "ca")
    cert_path, _ = ca.issue_server(tmp_path / "ca", "127.0.0.1", tmp_path / "srv")
    cert = _cert(cert_path)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert _eku(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert_path.name == ca.SERVER_CERT


def test_a_named_server_certificate_names_only_that_host(tmp_path: Path) -> None:
    ca.init_ca(tmp_path / "ca")
    cert_path, _ = ca.issue_server(tmp_path / "ca", "hub.example.com", tmp_path / "srv")
    names = _cert(cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == ["hub.example.com"]
    assert names.value.get_values_for_type(x509.IPAddress) == []


def test_the_hub_certificate_has_the_hub_identity_and_a_device_cannot_take_it(
    tmp_path: Path,
) -> None:
    ca.init_ca(tmp_path / "ca")
    cert_path, _ = ca.issue_hub(tmp_path / "ca", tmp_path / "hub")
    assert ca.common_name(cert_path) == ca.HUB_IDENTITY
    with pytest.raises(ca.CaError, match="hub's own identity"):
        ca.issue_device(tmp_path / "ca", ca.HUB_IDENTITY, tmp_path / "dev")


def test_init_makes_a_hub_ca_apart_from_the_fleet_ca(tmp_path: Path) -> None:
    fleet = _cert(ca.init_ca(tmp_path / "ca", now=NOW))
    hub = _cert(tmp_path / "ca" / ca.HUB_CA_CERT)
    assert hub.subject == hub.issuer != fleet.subject
    assert hub.public_key() != fleet.public_key()
    assert hub.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert stat.S_IMODE((tmp_path / "ca" / ca.HUB_CA_KEY).stat().st_mode) == 0o600


def test_each_ca_vouches_only_for_its_own_kind_of_client(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    fleet_ca = ca.init_ca(ca_dir)
    hub_ca = ca_dir / ca.HUB_CA_CERT
    hub, _ = ca.issue_hub(ca_dir, tmp_path / "hub")
    device, _ = ca.issue_device(ca_dir, "kiosk-7", tmp_path / "device")
    # What the broker's two listeners check: the hub listener trusts hub-ca.crt only,
    # the device listener ca.crt only.
    assert _openssl_verify(hub_ca, hub, "sslclient").returncode == 0
    assert _openssl_verify(hub_ca, device, "sslclient").returncode != 0
    assert _openssl_verify(fleet_ca, device, "sslclient").returncode == 0
    assert _openssl_verify(fleet_ca, hub, "sslclient").returncode != 0
    # Hub workers verify the broker (fleet CA) with the ca.crt shipped beside their cert.
    assert (tmp_path / "hub" / ca.CA_CERT).read_bytes() == fleet_ca.read_bytes()
    assert not (tmp_path / "hub" / ca.HUB_CA_CERT).exists()


def test_the_server_folder_holds_both_ca_certificates_for_the_broker(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca.init_ca(ca_dir)
    server, _ = ca.issue_server(ca_dir, "hub.example.com", tmp_path / "server")
    for name in (ca.CA_CERT, ca.HUB_CA_CERT):
        assert (tmp_path / "server" / name).read_bytes() == (ca_dir / name).read_bytes()
    assert _openssl_verify(ca_dir / ca.CA_CERT, server, "sslserver").returncode == 0


def test_a_ca_folder_from_before_the_hub_ca_gets_one_on_first_use(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca.init_ca(ca_dir)
    # A folder made when `ca init` made the fleet CA alone.
    (ca_dir / ca.HUB_CA_KEY).unlink()
    (ca_dir / ca.HUB_CA_CERT).unlink()
    fleet_key = (ca_dir / ca.CA_KEY).read_bytes()
    result = CliRunner().invoke(ca_group, ["hub", "--ca-dir", str(ca_dir)])
    assert result.exit_code == 0, result.output
    assert "new: this CA folder had none" in result.output
    hub_ca = (ca_dir / ca.HUB_CA_CERT).read_bytes()
    first = _openssl_verify(ca_dir / ca.HUB_CA_CERT, ca_dir / "hub" / "hub.crt", "sslclient")
    assert first.returncode == 0
    assert (ca_dir / ca.CA_KEY).read_bytes() == fleet_key
    # Later certificates come from that same hub CA; the message is not repeated.
    again = CliRunner().invoke(ca_group, ["hub", "--ca-dir", str(ca_dir), "--force"])
    assert again.exit_code == 0, again.output
    assert "new:" not in again.output
    assert (ca_dir / ca.HUB_CA_CERT).read_bytes() == hub_ca
    verified = _openssl_verify(ca_dir / ca.HUB_CA_CERT, ca_dir / "hub" / "hub.crt", "sslclient")
    assert verified.returncode == 0


def test_a_half_present_hub_ca_is_never_replaced_silently(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    ca.init_ca(ca_dir)
    (ca_dir / ca.HUB_CA_CERT).unlink()
    key = (ca_dir / ca.HUB_CA_KEY).read_bytes()
    with pytest.raises(ca.CaError, match="refusing to overwrite"):
        ca.issue_hub(ca_dir, tmp_path / "hub")
    assert (ca_dir / ca.HUB_CA_KEY).read_bytes() == key


@pytest.mark.parametrize(
    "device_id", ["", "kiosk/1", "kiosk+", "kiosk#", "-kiosk", "k" * 65, "kiosk 1", "kiosk\u00e9"]
)
def test_a_device_id_that_is_not_a_safe_topic_level_is_refused(
    tmp_path: Path, device_id: str
) -> None:
    ca.init_ca(tmp_path / "ca")
    with pytest.raises(ca.CaError, match="not a valid device id"):
        ca.issue_device(tmp_path / "ca", device_id, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_keys_are_never_overwritten_without_force(tmp_path: Path) -> None:
    ca.init_ca(tmp_path / "ca")
    first = (tmp_path / "ca" / ca.CA_KEY).read_bytes()
    hub_first = (tmp_path / "ca" / ca.HUB_CA_KEY).read_bytes()
    with pytest.raises(ca.CaError, match="refusing to overwrite"):
        ca.init_ca(tmp_path / "ca")
    assert (tmp_path / "ca" / ca.CA_KEY).read_bytes() == first
    (tmp_path / "ca" / ca.CA_KEY).unlink()
    (tmp_path / "ca" / ca.CA_CERT).unlink()
    with pytest.raises(ca.CaError, match="refusing to overwrite"):
        ca.init_ca(tmp_path / "ca")  # the hub CA alone is still there
    assert (tmp_path / "ca" / ca.HUB_CA_KEY).read_bytes() == hub_first
    ca.init_ca(tmp_path / "ca", force=True)
    cert, key = ca.issue_device(tmp_path / "ca", "kiosk-7", tmp_path / "out")
    issued = key.read_bytes()
    with pytest.raises(ca.CaError, match="refusing to overwrite"):
        ca.issue_device(tmp_path / "ca", "kiosk-7", tmp_path / "out")
    assert key.read_bytes() == issued
    ca.issue_device(tmp_path / "ca", "kiosk-7", tmp_path / "out", force=True)
    assert key.read_bytes() != issued
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert ca.common_name(cert) == "kiosk-7"


def test_issuing_without_a_ca_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(ca.CaError, match="ca init"):
        ca.issue_device(tmp_path / "nothing", "kiosk-7", tmp_path / "out")


def test_a_leaf_never_outlives_its_ca(tmp_path: Path) -> None:
    ca.init_ca(tmp_path / "ca", now=NOW)
    late = NOW + ca.CA_VALIDITY - dt.timedelta(days=30)
    cert_path, _ = ca.issue_device(tmp_path / "ca", "kiosk-7", tmp_path / "out", now=late)
    assert (
        _cert(cert_path).not_valid_after_utc
        == _cert(tmp_path / "ca" / ca.CA_CERT).not_valid_after_utc
    )


def test_the_cli_makes_a_ca_then_device_hub_and_server_certificates(tmp_path: Path) -> None:
    runner = CliRunner()
    ca_dir = tmp_path / "fleet-ca"
    result = runner.invoke(
        ca_group, ["init", "--ca-dir", str(ca_dir), "--name", "Test CA", "--hub-name", "Test hub"]
    )
    assert result.exit_code == 0, result.output
    for name, cn in ((ca.CA_CERT, "Test CA"), (ca.HUB_CA_CERT, "Test hub")):
        subject = _cert(ca_dir / name).subject
        assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        assert str(ca_dir / name) in result.output

    result = runner.invoke(ca_group, ["issue", "kiosk-7", "--ca-dir", str(ca_dir)])
    assert result.exit_code == 0, result.output
    device = ca_dir / "devices" / "kiosk-7"
    assert ca.common_name(device / "kiosk-7.crt") == "kiosk-7"
    assert str(device / "kiosk-7.key") in result.output

    out = tmp_path / "hub-certs"
    result = runner.invoke(ca_group, ["hub", "--ca-dir", str(ca_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert ca.common_name(out / "hub.crt") == ca.HUB_IDENTITY
    assert _cert(out / "hub.crt").issuer == _cert(ca_dir / ca.HUB_CA_CERT).subject

    result = runner.invoke(ca_group, ["server", "localhost", "--ca-dir", str(ca_dir)])
    assert result.exit_code == 0, result.output
    assert (ca_dir / "server" / ca.SERVER_CERT).exists()
    assert (ca_dir / "server" / ca.CA_CERT).exists()
    assert (ca_dir / "server" / ca.HUB_CA_CERT).exists()
    assert str(ca_dir / "server" / ca.HUB_CA_CERT) in result.output


def test_the_cli_refuses_to_overwrite_and_rejects_bad_ids_with_a_message(tmp_path: Path) -> None:
    runner = CliRunner()
    ca_dir = tmp_path / "ca"
    assert runner.invoke(ca_group, ["init", "--ca-dir", str(ca_dir)]).exit_code == 0
    again = runner.invoke(ca_group, ["init", "--ca-dir", str(ca_dir)])
    assert again.exit_code == 1
    assert "refusing to overwrite" in again.output
    assert "--force" in again.output
    forced = runner.invoke(ca_group, ["init", "--ca-dir", str(ca_dir), "--force"])
    assert forced.exit_code == 0, forced.output
    bad = runner.invoke(ca_group, ["issue", "kiosk/7", "--ca-dir", str(ca_dir)])
    assert bad.exit_code == 1
    assert "not a valid device id" in bad.output
    missing = runner.invoke(ca_group, ["issue", "kiosk-7", "--ca-dir", str(tmp_path / "none")])
    assert missing.exit_code == 1
    assert "ca init" in missing.output


def test_the_cli_reads_the_ca_folder_from_the_environment(tmp_path: Path) -> None:
    runner = CliRunner(env={"APPLIANCE_HUB_CA_DIR": str(tmp_path / "env-ca")})
    assert runner.invoke(ca_group, ["init"]).exit_code == 0
    assert (tmp_path / "env-ca" / ca.CA_KEY).exists()
