"""`appliance-hub release …` and `rollout …` as an admin runs them, on a SQLite hub database."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner, Result

from appliance.mqtt.payloads import Command, decode
from appliance.mqtt.signing import load_public_key, verify_command
from hub.cli import cli
from hub.command_hold import HeldCommand
from hub.db import open_hub_database
from hub.fleet_keys import generate_fleet_keys
from hub.stores import assign_device
from tests.update.bundles import BOOT_SIZE, ROOT_SIZE, make_images


def run(*args: str | Path) -> Result:
    """The hub CLI with these arguments."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_release_keygen_build_add_list(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    key = tmp_path / "keys" / "release.key"
    made = run("release", "keygen", key)
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and (tmp_path / "keys/release.pub").exists()
    again = run("release", "keygen", key)
    assert again.exit_code == 1 and "already exists" in again.output
    images = make_images(tmp_path, ROOT_SIZE, BOOT_SIZE)
    bundle = tmp_path / "bundle.tar"
    built = run(
        "release", "build", "--boot", images["boot"], "--root", images["root"],
        "--version", "2026.12.2", "--min-version", "2026.12.1", "--key", key, "-o", bundle,
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    assert "release 2026.12.2 (from 2026.12.1 on)" in built.output
    releases = tmp_path / "releases"
    add = ("release", "add", bundle, "--key", tmp_path / "keys/release.pub")
    added = run(*add, "--releases", releases, "--db", db)
    assert added.exit_code == 0 and "release 2026.12.2 added" in added.output, added.output
    assert (releases / "2026.12.2" / "payload.bin").exists()
    same = run(*add, "--releases", releases, "--db", db)
    assert same.exit_code == 0 and "nothing to do" in same.output
    listed = json.loads(run("release", "list", "--json", "--db", db).output)
    assert [(r["version"], r["min_version"]) for r in listed] == [("2026.12.2", "2026.12.1")]
    assert "2026.12.2" in run("release", "list", "--db", db).output


def test_release_add_with_another_key_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    run("release", "keygen", tmp_path / "a.key")
    run("release", "keygen", tmp_path / "b.key")
    images = make_images(tmp_path, ROOT_SIZE, BOOT_SIZE)
    bundle = tmp_path / "bundle.tar"
    run("release", "build", "--root", images["root"], "--version", "2026.12.2",
        "--min-version", "2026.1.0", "--key", tmp_path / "a.key", "-o", bundle)  # fmt: skip
    refused = run(
        "release", "add", bundle, "--key", tmp_path / "b.pub",
        "--releases", tmp_path / "releases", "--db", db,
    )  # fmt: skip
    assert refused.exit_code == 1 and "signature is not the release key's" in refused.output
    assert json.loads(run("release", "list", "--json", "--db", db).output) == []
    assert not list((tmp_path / "releases").glob("**/*"))


def test_rollout_start_status_pause_resume(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'hub.db'}"
    run("release", "keygen", tmp_path / "release.key")
    images = make_images(tmp_path, ROOT_SIZE, BOOT_SIZE)
    bundle = tmp_path / "bundle.tar"
    run("release", "build", "--root", images["root"], "--version", "2026.12.2",
        "--min-version", "2026.1.0", "--key", tmp_path / "release.key", "-o", bundle)  # fmt: skip
    run("release", "add", bundle, "--key", tmp_path / "release.pub",
        "--releases", tmp_path / "releases", "--db", db_url)  # fmt: skip
    db = open_hub_database(db_url)
    for n in range(1, 5):
        assign_device(db, f"kiosk-{n}", "berlin")
    fleet_key, fleet_pub = generate_fleet_keys(tmp_path / "fleet")
    signing = ("--fleet-key", fleet_key, "--bundle-url", "https://hub:8443", "--hold-only")
    started = run("rollout", "start", "2026.12.2", "--store", "berlin", "--percent", "50",
                  *signing, "--db", db_url)  # fmt: skip
    assert started.exit_code == 0, started.output
    assert "2 of 4 device(s) targeted, running" in started.output
    assert "not published now" in started.output
    payloads = [p for (p,) in HeldCommand.select(HeldCommand.payload).tuples().execute(db)]
    assert len(payloads) == 2
    for payload in payloads:
        command = decode(payload.encode(), Command)
        verify_command(command, load_public_key(fleet_pub))
        assert command.args["url"] == "https://hub:8443/bundles/2026.12.2/payload.bin"
    (status,) = json.loads(run("rollout", "status", "--json", "--db", db_url).output)
    assert (status["targeted"], status["counts"], status["state"]) == (2, {"sent": 2}, "running")
    paused = run("rollout", "pause", "2026.12.2", "--db", db_url)
    assert paused.exit_code == 0 and "paused" in paused.output
    more = run("rollout", "start", "2026.12.2", "--store", "berlin", "--percent", "100",
               *signing, "--db", db_url)  # fmt: skip
    assert "paused: no device added" in more.output
    resumed = run("rollout", "resume", "2026.12.2", *signing, "--db", db_url)
    assert resumed.exit_code == 0 and "4 of 4 device(s) targeted, running" in resumed.output
    plain = run(
        "rollout", "start", "2026.12.2", "--store", "berlin", "--percent", "100",
        "--fleet-key", fleet_key, "--bundle-url", "http://hub:8080", "--db", db_url,
    )  # fmt: skip
    assert plain.exit_code == 2 and "not an https:// URL" in plain.output
    db.close()
