"""The provisioning file parser: good files parse, every bad key is refused by its path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from appliance.errors import ConfigError
from appliance.provisioning.apply import toml_text
from appliance.provisioning.file import (
    FILE_KEY,
    Checked,
    check_bytes,
    check_file,
    parse_provisioning,
)
from tests.provisioning import DELETE, DEVICE_ID, NOW, PSK, good_data, pki, set_key

EXAMPLE = Path(__file__).parents[2] / "examples" / "provisioning.toml"


def check(data: dict[str, Any]) -> Checked:
    """Check `data` written as a file."""
    return check_bytes(toml_text(data).encode(), now=NOW)


def problems(data: dict[str, Any]) -> list[str]:
    """The problems found in `data`, as the command prints them."""
    return [str(problem) for problem in check(data).problems]


def test_a_good_file_parses_into_typed_tables() -> None:
    checked = check(good_data())
    assert checked.problems == ()
    found = checked.provisioning
    assert found is not None
    assert found.device.id == DEVICE_ID
    assert (found.hub.host, found.hub.port) == ("hub.example.com", 8883)
    assert found.wifi is not None and found.wifi.psk == PSK
    assert found.system.timezone == "Europe/Berlin"
    assert found.ssh.authorized_keys == pki().ssh_keys
    assert len(checked.sha256) == 64


def test_the_settings_it_makes_are_the_appliance_settings_with_the_file_laid_over() -> None:
    found = parse_provisioning(toml_text(good_data()).encode(), now=NOW)
    config = found.appliance_config({"ca_file": "/p/ca.crt"})
    assert config["device"] == {"receipt_prefix": "K42", "id": DEVICE_ID}
    assert config["store"]["currency"] == "EUR"
    assert config["store"]["tax_classes"]["standard"] == 1900
    assert config["hub"] == {"host": "hub.example.com", "port": 8883, "ca_file": "/p/ca.crt"}


def test_a_minimal_file_needs_only_the_device_and_the_hub() -> None:
    keys = pki()
    data = {
        "device": {"id": DEVICE_ID},
        "hub": {
            "host": "10.0.0.5",
            "ca": keys.ca,
            "client_cert": keys.cert,
            "client_key": keys.key,
        },
    }
    found = check(data).provisioning
    assert found is not None
    assert (found.wifi, found.ssh.authorized_keys, found.system.timezone) == (None, (), "UTC")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("device.id", DELETE, "device.id: required key is missing"),
        ("device", DELETE, "device: required table is missing"),
        ("device.id", "kiosk/0042", "device.id: Expected `str` matching regex"),
        ("hub.port", "8883", "hub.port: Expected `int`, got `str`"),
        ("hub.port", 70000, "hub.port: expected a TCP port from 1 to 65535"),
        ("hub.host", "hub example", "hub.host: expected a host name or an IP address"),
        ("hub", "hub.example.com", "hub: expected a table, got str"),
        ("wifi.hidden", "yes", "wifi.hidden: Expected `bool`, got `str`"),
        ("wifi.country", "XX", "wifi.country: expected a country code like DE"),
        ("wifi.ssid", "x" * 33, "wifi.ssid: expected 1 to 32 bytes"),
        ("system.timezone", "Mars/Olympus_Mons", "system.timezone: expected a time zone"),
        ("system.timezone", "../../etc/passwd", "system.timezone: expected a time zone"),
        ("system.locale", "german", "system.locale: expected a UTF-8 locale"),
        ("ssh.authorized_keys", "ssh-ed25519 AAAA", "ssh.authorized_keys: Expected `array`"),
        ("version", 2, "version: this appliance reads version 1 files"),
        ("version", True, "version: this appliance reads version 1 files"),
        ("colour", "blue", "colour: unknown key (check its spelling)"),
        ("hub.hots", "x", "hub.hots: unknown key (check its spelling)"),
        ("system.keyboard", "de", "system.keyboard: unknown key (check its spelling)"),
        ("appliance.store.colour", "blue", "appliance.store.colour: unknown key"),
        ("appliance.screen.mode", "tablet", "appliance.screen.mode: Invalid enum value 'tablet'"),
        ("appliance.device", "x", "appliance.device: expected a table"),
        ("appliance.device.id", "kiosk-7", "appliance.device.id: differs from device.id"),
        ("appliance.hub.key_file", "/k", "appliance.hub.key_file: set from hub.client_key"),
        ("appliance.store.currency", "EUR", "appliance.store.currency: differs from store"),
        ("store.currency", "EURO", "store.currency: expected an ISO 4217 code"),
        ("store.locale", "xx_YY", "store.locale: expected a locale like en_US"),
        ("config_url", "https://hub.example.com/c", "config_url: give either an [appliance]"),
        ("appliance", 3, "appliance: expected a table, got int"),
    ],
)
def test_a_bad_value_is_refused_by_its_key_path(key: str, value: Any, expected: str) -> None:
    data = set_key(good_data(), key, value)
    if key == "appliance.store.currency":
        data["store"]["currency"] = "CHF"  # the same key given twice, differently
    found = problems(data)
    assert any(line.startswith(expected) for line in found), found
    assert check(data).provisioning is None


def test_a_config_url_must_be_https() -> None:
    data = good_data(config_url="http://hub.example.com/config")
    del data["appliance"]
    assert problems(data) == ["config_url: expected an https:// URL"]
    data["config_url"] = "https://hub.example.com/config/kiosk-0042"
    found = check(data).provisioning
    assert found is not None and found.config_url.endswith("kiosk-0042")


@pytest.mark.parametrize(
    ("key", "attribute", "expected"),
    [
        ("hub.client_key", "other_key", "hub.client_cert: does not match hub.client_key"),
        ("hub.client_cert", "foreign_cert", "hub.client_cert: not issued by the CA in hub.ca"),
        (
            "hub.client_cert",
            "other_device_cert",
            "hub.client_cert: its CN is 'kiosk-9999', but device.id is 'kiosk-0042'",
        ),
        ("hub.client_cert", "expired_cert", "hub.client_cert: expired on"),
        ("hub.client_key", "encrypted_key", "hub.client_key: an encrypted key cannot be used"),
        ("hub.client_key", "cert", "hub.client_key: not a PEM private key"),
        ("hub.client_cert", "key", "hub.client_cert: not a PEM certificate"),
        ("hub.ca", "cert", "hub.ca: certificate 1 is not a CA certificate"),
        ("hub.fleet_public_key", "ca", "hub.fleet_public_key: not a PEM Ed25519 public key"),
        ("hub.release_public_key", "ca", "hub.release_public_key: not a PEM Ed25519 public key"),
        (
            "hub.release_public_key",
            "fleet_public_key",
            "hub.release_public_key: is the fleet key: releases need a key of their own",
        ),
    ],
)
def test_tls_material_that_does_not_fit_is_refused(key: str, attribute: str, expected: str) -> None:
    data = set_key(good_data(), key, getattr(pki(), attribute))
    found = problems(data)
    assert any(line.startswith(expected) for line in found), found


def test_a_certificate_bundle_as_the_client_certificate_is_refused() -> None:
    data = set_key(good_data(), "hub.client_cert", pki().cert + pki().ca)
    assert problems(data) == [
        "hub.client_cert: holds several certificates; give the device's own only"
    ]


@pytest.mark.parametrize(
    "line",
    [
        "hello",
        "ssh-ed25519 not-base64!",
        "no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuknJihmyc12enUAri5aXkSQ2XCiRxWZNhUqFqL7r5e",
        "",
        "ssh-ed25519 AAAA\nssh-ed25519 AAAA",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP tech@old",
    ],
)
def test_an_ssh_line_that_is_not_a_key_is_refused_by_its_index(line: str) -> None:
    data = set_key(good_data(), "ssh.authorized_keys", [pki().ssh_keys[0], line])
    found = problems(data)
    assert len(found) == 1 and found[0].startswith("ssh.authorized_keys.1: "), found


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("password", "password: passwords are refused"),
        ("root_password", "root_password: passwords are refused"),
        ("ssh.password", "ssh.password: passwords are refused (use ssh.authorized_keys)"),
        ("ssh.user_passwd", "ssh.user_passwd: passwords are refused"),
        ("wifi.password", "wifi.password: passwords are refused (the network's key is wifi.psk)"),
        ("system.passphrase", "system.passphrase: passwords are refused"),
    ],
)
def test_a_password_like_field_is_refused_anywhere(key: str, expected: str) -> None:
    data = set_key(good_data(), key, "hunter2-hunter2")
    found = problems(data)
    assert found == [expected + found[0].removeprefix(expected)], found
    assert found[0].startswith(expected)
    assert "hunter2" not in "".join(found)


def test_a_terminal_password_in_the_appliance_settings_is_a_setting_not_a_login() -> None:
    terminal = {"kind": "zvt_terminal", "host": "127.0.0.1", "password": "123456"}
    data = set_key(good_data(), "appliance.devices", {"terminal": terminal})
    assert problems(data) == []


def test_the_wifi_key_is_checked_and_never_echoed() -> None:
    for psk in ("short", "é" * 10, "x" * 64):
        found = problems(set_key(good_data(), "wifi.psk", psk))
        assert found == ["wifi.psk: expected 8 to 63 printable ASCII characters or 64 hex digits"]
    assert problems(set_key(good_data(), "wifi.psk", "0123456789abcdef" * 4)) == []
    assert problems(set_key(good_data(), "wifi.psk", DELETE)) == []  # an open network


def test_every_problem_is_reported_not_only_the_first() -> None:
    data = good_data()
    set_key(data, "device.id", DELETE)
    set_key(data, "hub.port", "x")
    set_key(data, "wifi.country", "XX")
    set_key(data, "system.timezone", "Nowhere/Town")
    set_key(data, "ssh.authorized_keys", ["nonsense"])
    set_key(data, "ssh.pasword", "x")
    set_key(data, "extra", 1)
    keys = [line.partition(":")[0] for line in problems(data)]
    assert sorted(keys) == sorted(
        [
            "device.id",
            "hub.port",
            "wifi.country",
            "system.timezone",
            "ssh.authorized_keys.0",
            "ssh.pasword",
            "extra",
        ]
    )


def test_no_problem_message_holds_secret_material() -> None:
    keys = pki()
    data = good_data()
    set_key(data, "hub.client_key", keys.other_key)
    set_key(data, "wifi.psk", "tiny")
    set_key(data, "ssh.password", "hunter2-hunter2")
    text = "\n".join(problems(data))
    body = "".join(keys.other_key.splitlines()[1:-1])
    assert "PRIVATE KEY" not in text
    assert not any(chunk in text for chunk in re.findall(r".{16}", body))
    assert "tiny" not in text and "hunter2" not in text


def test_a_file_that_is_not_toml_is_one_problem_at_the_file() -> None:
    found = check_bytes(b"[device\nid = 1", now=NOW).problems
    assert len(found) == 1 and str(found[0]).startswith(f"{FILE_KEY}: not valid TOML")
    assert str(check_bytes(b"\xff\xfe", now=NOW).problems[0]) == f"{FILE_KEY}: not UTF-8 text"


def test_a_missing_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    found = check_file(tmp_path / "nowhere.toml").problems
    assert [p.key for p in found] == [FILE_KEY]


def test_parse_raises_a_config_error_with_one_problem_per_line() -> None:
    data = set_key(good_data(), "hub.port", "x")
    set_key(data, "system.timezone", "Nowhere/Town")
    with pytest.raises(ConfigError) as caught:
        parse_provisioning(toml_text(data).encode(), now=NOW)
    lines = str(caught.value).splitlines()
    assert [line.partition(":")[0] for line in lines] == ["hub.port", "system.timezone"]


def _example_with(device_id: str) -> str:
    """The example file with its placeholders replaced by real material."""
    keys = pki(device_id)
    text = EXAMPLE.read_text(encoding="utf-8")
    for marker, pem in (
        ("THE-FLEET-CA-CERTIFICATE", keys.ca),
        ("THIS-DEVICE-CERTIFICATE", keys.cert),
        ("THIS-DEVICE-PRIVATE-KEY", keys.key),
    ):
        block = rf"-----BEGIN [A-Z ]+-----\nREPLACE-WITH-{marker}\n-----END [A-Z ]+-----\n"
        text = re.sub(block, pem, text)
    return text.replace("ssh-ed25519 REPLACE-WITH-A-PUBLIC-KEY tech@example.com", keys.ssh_keys[0])


def test_the_example_is_refused_only_for_its_placeholders() -> None:
    found = check_file(EXAMPLE, now=NOW).problems
    assert [p.key for p in found] == [
        "hub.ca",
        "hub.client_cert",
        "hub.client_key",
        "ssh.authorized_keys.0",
    ]


def test_the_example_with_real_certificates_passes() -> None:
    checked = check_bytes(_example_with("kiosk-berlin-01").encode(), now=NOW)
    assert checked.problems == ()
    assert checked.provisioning is not None
    assert checked.provisioning.appliance_config({})["device"]["receipt_prefix"] == "K01"


def test_a_weak_rsa_ssh_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    line = weak.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    data = set_key(good_data(), "ssh.authorized_keys", [line.decode()])
    assert problems(data) == [
        "ssh.authorized_keys.0: an RSA key of 1024 bits is too weak (2048 at least)"
    ]
