"""`appliance provision`: --check on a laptop, --apply at first boot; exit 0 or 1, no secrets."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner, Result

from appliance.cli.main import cli
from appliance.provisioning.apply import CURRENT, REJECTED
from tests.provisioning import DEVICE_ID, PSK, good_data, pki, set_key, write_file

KEY_PATH = re.compile(r"^[a-z_][a-z0-9_.]*: |^\(file\): ")


def run(*args: str) -> Result:
    """The command, as a person or the boot service runs it."""
    return CliRunner().invoke(cli, ["provision", *args], catch_exceptions=False)


def assert_no_secret(text: str) -> None:
    """Neither the private key (any of its lines) nor the Wi-Fi key appears in `text`."""
    assert "PRIVATE KEY" not in text
    for line in pki().key.splitlines()[1:-1]:
        assert line not in text
    assert PSK not in text


def test_check_a_good_file_exits_0_with_a_summary(tmp_path: Path) -> None:
    source = write_file(tmp_path / "provisioning.toml", good_data())
    result = run("--check", str(source))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{source}: ok (sha256 " in out
    assert f"device   {DEVICE_ID}" in out
    assert "hub      hub.example.com:8883" in out
    assert "'Shop floor' (WPA key set, country DE)" in out
    assert "SHA256:" in out and "tech1@example.com" in out
    assert re.search(r"client\.key\s+0600  from hub\.client_key", out)
    assert re.search(r"ca\.crt\s+0644  from hub\.ca", out)
    assert_no_secret(result.output)


def test_check_a_bad_file_exits_1_with_every_problem_one_per_line(tmp_path: Path) -> None:
    data = set_key(good_data(), "hub.client_key", pki().other_key)
    set_key(data, "system.timezone", "Atlantis/Capital")
    set_key(data, "ssh.password", "hunter2-hunter2")
    source = write_file(tmp_path / "provisioning.toml", data)
    result = run("--check", str(source))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.partition(":")[0] for line in lines] == [
        "ssh.password",
        "hub.client_cert",
        "system.timezone",
    ]
    assert all(KEY_PATH.match(line) for line in lines)
    assert_no_secret(result.output)
    assert "hunter2" not in result.output


def test_check_a_file_that_is_not_there(tmp_path: Path) -> None:
    result = run("--check", str(tmp_path / "nowhere.toml"))
    assert result.exit_code == 1
    assert result.stdout.startswith("(file): cannot read ")


def test_check_the_example_names_only_its_placeholders() -> None:
    example = Path(__file__).parents[2] / "examples" / "provisioning.toml"
    result = run("--check", str(example))
    assert result.exit_code == 1
    assert [line.partition(":")[0] for line in result.stdout.splitlines()] == [
        "hub.ca",
        "hub.client_cert",
        "hub.client_key",
        "ssh.authorized_keys.0",
    ]


def test_apply_then_apply_the_same_file_again(tmp_path: Path) -> None:
    source = write_file(tmp_path / "boot" / "provisioning.toml", good_data())
    data_dir = tmp_path / "data"
    first = run("--apply", str(source), "--data-dir", str(data_dir))
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"provisioned from {source} (sha256 ")
    assert (data_dir / CURRENT / "client.key").exists() and source.exists()
    second = run("--apply", str(source), "--data-dir", str(data_dir), "--remove-source")
    assert second.exit_code == 0, second.output
    assert "already provisioned from this file" in second.stdout
    assert f"removed {source}" in second.stdout and not source.exists()
    assert_no_secret(first.output + second.output)


def test_apply_a_bad_file_exits_1_keeps_the_source_and_says_why(tmp_path: Path) -> None:
    data = set_key(good_data(), "hub.client_cert", pki().foreign_cert)
    source = write_file(tmp_path / "boot" / "provisioning.toml", data)
    data_dir = tmp_path / "data"
    result = run("--apply", str(source), "--data-dir", str(data_dir), "--remove-source")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{source}: refused; the device stays unprovisioned",
        "hub.client_cert: not issued by the CA in hub.ca",
    ]
    assert source.exists() and not (data_dir / CURRENT).exists()
    assert "hub.client_cert: not issued by the CA" in (data_dir / REJECTED).read_text()


def test_check_or_apply_is_required_and_apply_needs_a_data_dir(tmp_path: Path) -> None:
    source = write_file(tmp_path / "provisioning.toml", good_data())
    assert run().exit_code == 2
    assert run("--check", str(source), "--apply", str(source)).exit_code == 2
    missing = run("--apply", str(source))
    assert missing.exit_code == 2 and "--apply needs --data-dir" in missing.output
