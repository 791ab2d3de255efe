"""Applying a provisioning file: all of it in one step, or nothing; the source goes only after."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from appliance.errors import ConfigError
from appliance.provisioning import apply
from appliance.provisioning.apply import (
    CURRENT,
    RECORD,
    REJECTED,
    VERSIONS,
    applied_record,
    apply_provisioning,
    toml_text,
)
from appliance.settings import load_settings
from tests.provisioning import DEVICE_ID, NOW, PSK, good_data, pki, set_key, write_file

MODES = {
    "appliance.toml": 0o600,
    "ca.crt": 0o644,
    "client.crt": 0o600,
    "client.key": 0o600,
    "fleet.pub": 0o644,
    "authorized_keys": 0o600,
    "wifi": 0o600,
    "timezone": 0o644,
    "locale": 0o644,
    "provisioning.toml": 0o600,
    RECORD: 0o644,
}


@pytest.fixture
def boot(tmp_path: Path) -> Path:
    """The boot partition, with nothing on it yet."""
    path = tmp_path / "boot"
    path.mkdir()
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The appliance's directory on the data partition."""
    return tmp_path / "data"


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave every file world-readable, were modes not set explicitly."""
    old = os.umask(0)
    yield
    os.umask(old)


def snapshot(data_dir: Path) -> dict[str, bytes | str]:
    """Every entry under the data directory: links by target, files by content."""
    found: dict[str, bytes | str] = {}
    for path in sorted(data_dir.rglob("*")):
        name = str(path.relative_to(data_dir))
        if path.is_symlink():
            found[name] = os.readlink(path)
        elif path.is_file() and path.name != REJECTED:
            found[name] = path.read_bytes()
    return found


def test_apply_writes_every_file_with_its_mode(
    boot: Path, data_dir: Path, open_umask: None
) -> None:
    source = write_file(boot / "provisioning.toml", good_data())
    applied = apply_provisioning(source, data_dir, now=NOW)
    assert applied.changed
    current = data_dir / CURRENT
    assert current.is_symlink() and not os.path.isabs(os.readlink(current))
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in current.iterdir()}
    assert modes == MODES
    assert (current / "client.key").read_text() == pki().key.strip() + "\n"
    assert (current / "timezone").read_text() == "Europe/Berlin\n"
    assert (current / "locale").read_text() == "de_DE.UTF-8\n"
    assert (current / "authorized_keys").read_text().splitlines() == list(pki().ssh_keys)
    assert (current / "provisioning.toml").read_bytes() == source.read_bytes()
    record = json.loads((current / RECORD).read_text())
    assert record["sha256"] == applied.sha256
    assert record["applied_at"] == "2026-06-01T00:00:00+00:00"
    assert record["device_id"] == DEVICE_ID


def test_the_settings_written_load_and_point_at_the_written_files(
    boot: Path, data_dir: Path
) -> None:
    source = write_file(boot / "provisioning.toml", good_data())
    apply_provisioning(source, data_dir, now=NOW)
    settings = load_settings(data_dir / CURRENT / "appliance.toml")
    assert settings.device.id == DEVICE_ID and settings.device.receipt_prefix == "K42"
    assert settings.store.currency == "EUR" and settings.store.tax_classes["standard"] == 1900
    assert settings.hub is not None
    assert settings.hub.host == "hub.example.com"
    assert Path(settings.hub.key_file) == data_dir / CURRENT / "client.key"
    assert Path(settings.hub.cert_file).read_text() == pki().cert.strip() + "\n"
    assert Path(settings.hub.fleet_public_key).exists()


def test_the_release_key_is_written_beside_the_fleet_key_and_named_in_the_settings(
    boot: Path, data_dir: Path
) -> None:
    release = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    data = set_key(good_data(), "hub.release_public_key", release)
    apply_provisioning(write_file(boot / "provisioning.toml", data), data_dir, now=NOW)
    settings = load_settings(data_dir / CURRENT / "appliance.toml")
    assert settings.hub is not None
    assert Path(settings.hub.release_public_key).read_text() == release.strip() + "\n"


def test_the_machine_s_slots_are_the_default_and_the_file_may_override_them(
    boot: Path, data_dir: Path
) -> None:
    defaults = {"update": {"slots": "pi"}}
    source = write_file(boot / "provisioning.toml", good_data())
    apply_provisioning(source, data_dir, now=NOW, defaults=defaults)
    assert load_settings(data_dir / CURRENT / "appliance.toml").update.slots == "pi"
    data = good_data()
    data["appliance"]["update"] = {"slots": ""}
    source = write_file(boot / "provisioning.toml", data)
    apply_provisioning(source, data_dir, now=NOW, defaults=defaults)
    assert load_settings(data_dir / CURRENT / "appliance.toml").update.slots == ""


def test_a_relative_data_dir_still_gives_the_settings_absolute_paths(
    boot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    apply_provisioning(write_file(boot / "p.toml", good_data()), Path("data"), now=NOW)
    settings = load_settings(tmp_path / "data" / CURRENT / "appliance.toml")
    assert settings.hub is not None
    assert Path(settings.hub.key_file) == tmp_path / "data" / CURRENT / "client.key"


def test_the_wifi_record_reads_back_in_a_shell_whatever_the_ssid(
    boot: Path, data_dir: Path
) -> None:
    ssid = 'Joe\'s "café" $HOME `x`'
    data = set_key(good_data(), "wifi.ssid", ssid)
    apply_provisioning(write_file(boot / "p.toml", data), data_dir, now=NOW)
    script = '. "$1"; printf "%s|%s|%s|%s" "$WIFI_SSID" "$WIFI_PSK" "$WIFI_COUNTRY" "$WIFI_HIDDEN"'
    shown = subprocess.run(
        ["sh", "-c", script, "sh", str(data_dir / CURRENT / "wifi")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == f"{ssid}|{PSK}|DE|no"


def test_without_wifi_no_wifi_record_is_written(boot: Path, data_dir: Path) -> None:
    data = good_data()
    del data["wifi"]
    apply_provisioning(write_file(boot / "p.toml", data), data_dir, now=NOW)
    assert not (data_dir / CURRENT / "wifi").exists()


def test_the_source_is_removed_only_when_asked_and_after_success(
    boot: Path, data_dir: Path
) -> None:
    source = write_file(boot / "provisioning.toml", good_data())
    kept = apply_provisioning(source, data_dir, now=NOW)
    assert source.exists() and not kept.source_removed
    again = apply_provisioning(source, data_dir, remove_source=True, now=NOW)
    # Already in force (a power cut between the swap and the removal): removal is retried.
    assert not again.changed and again.source_removed and not source.exists()


def test_a_bad_file_changes_nothing_and_stays_on_the_boot_partition(
    boot: Path, data_dir: Path
) -> None:
    apply_provisioning(write_file(boot / "first.toml", good_data()), data_dir, now=NOW)
    before = snapshot(data_dir)
    bad = set_key(good_data(), "hub.client_key", pki().other_key)
    set_key(bad, "system.timezone", "Nowhere/Town")
    source = write_file(boot / "provisioning.toml", bad)
    with pytest.raises(ConfigError) as caught:
        apply_provisioning(source, data_dir, remove_source=True, now=NOW)
    assert [line.partition(":")[0] for line in str(caught.value).splitlines()] == [
        "hub.client_cert",
        "system.timezone",
    ]
    assert snapshot(data_dir) == before
    assert source.exists()
    report = (data_dir / REJECTED).read_text()
    assert "was refused; the device keeps its provisioning" in report
    assert "hub.client_cert: does not match hub.client_key" in report
    assert "PRIVATE KEY" not in report


def test_a_write_that_fails_midway_leaves_the_previous_provisioning_and_the_source(
    boot: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_provisioning(write_file(boot / "first.toml", good_data()), data_dir, now=NOW)
    before = snapshot(data_dir)
    real_write = apply._write

    def failing_write(path: Path, content: bytes, mode: int) -> None:
        if path.name == "client.key":
            raise OSError(28, "No space left on device")
        real_write(path, content, mode)

    monkeypatch.setattr(apply, "_write", failing_write)
    changed = set_key(good_data(), "system.timezone", "Europe/Vienna")
    source = write_file(boot / "provisioning.toml", changed)
    with pytest.raises(ConfigError, match=r"^hub.client_key: cannot write client.key: No space"):
        apply_provisioning(source, data_dir, remove_source=True, now=NOW)
    assert snapshot(data_dir) == before  # no half-written version left beside the old one
    assert (data_dir / CURRENT / "timezone").read_text() == "Europe/Berlin\n"
    assert source.exists()
    assert "hub.client_key: cannot write" in (data_dir / REJECTED).read_text()


def test_a_failure_on_a_first_boot_leaves_no_provisioning_at_all(
    boot: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_symlink(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(apply.os, "symlink", failing_symlink)
    source = write_file(boot / "provisioning.toml", good_data())
    with pytest.raises(ConfigError):
        apply_provisioning(source, data_dir, remove_source=True, now=NOW)
    assert not (data_dir / CURRENT).exists() and applied_record(data_dir) is None
    assert list((data_dir / VERSIONS).iterdir()) == []
    assert source.exists()


def test_the_same_file_again_changes_nothing(boot: Path, data_dir: Path) -> None:
    source = write_file(boot / "provisioning.toml", good_data())
    first = apply_provisioning(source, data_dir, now=NOW)
    before = snapshot(data_dir)
    again = apply_provisioning(source, data_dir, now=NOW)
    assert first.changed and not again.changed and again.sha256 == first.sha256
    assert snapshot(data_dir) == before


def test_a_new_file_reprovisions_and_keeps_only_the_new_version(boot: Path, data_dir: Path) -> None:
    apply_provisioning(write_file(boot / "p.toml", good_data()), data_dir, now=NOW)
    old_target = os.readlink(data_dir / CURRENT)
    newer = set_key(good_data(), "system.timezone", "Europe/Vienna")
    newer["ssh"]["authorized_keys"] = []
    del newer["wifi"]
    applied = apply_provisioning(write_file(boot / "p.toml", newer), data_dir, now=NOW)
    assert applied.changed and os.readlink(data_dir / CURRENT) != old_target
    assert (data_dir / CURRENT / "timezone").read_text() == "Europe/Vienna\n"
    assert (data_dir / CURRENT / "authorized_keys").read_text() == ""  # the old keys are gone
    assert not (data_dir / CURRENT / "wifi").exists()
    versions = [p.name for p in (data_dir / VERSIONS).iterdir()]
    assert len(versions) == 1 and versions[0] != Path(old_target).name
    assert applied_record(data_dir) == json.loads((data_dir / CURRENT / RECORD).read_text())


def test_a_success_clears_the_report_of_an_earlier_refusal(boot: Path, data_dir: Path) -> None:
    bad = write_file(boot / "bad.toml", set_key(good_data(), "hub.port", 0))
    with pytest.raises(ConfigError):
        apply_provisioning(bad, data_dir, now=NOW)
    assert (data_dir / REJECTED).exists()
    apply_provisioning(write_file(boot / "good.toml", good_data()), data_dir, now=NOW)
    assert not (data_dir / REJECTED).exists()


def test_settings_toml_reads_back_exactly() -> None:
    data = {
        "a": 1,
        "odd key": {"x.y": 'quote " backslash \\ del \x7f newline \n tab \t é'},
        "b": {"floats": [1.5, -0.0, 1e300], "flag": False, "c": {"d": []}},
        "rows": {"variable_measure": [{"prefix": "21"}, {"prefix": "22", "n": 4}]},
        "empty": {},
    }
    import tomllib

    assert tomllib.loads(toml_text(data)) == data
