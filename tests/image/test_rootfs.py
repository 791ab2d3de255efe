"""The image's fast tier, in `make test`: its root file system without kernel or firmware.

`image/build --fast` runs the same mmdebstrap hooks as `make image` except the boot layer,
natively for this machine's architecture (no emulation), and stops before the disk image.
The units, the enabled services, the accounts and the provisioning command are then
checked in that root as they will be on the card.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import real_parts
from tests.provisioning import good_data, write_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "provisioning.toml"
OUR_UNITS = (
    "appliance.service",
    "appliance-provision.service",
    "appliance-notice.service",
    "appliance-grow-data.service",
    "appliance-failed.service",
)
# Building the root takes minutes: the fixture's time counts against the first test that
# needs it. pytest-xdist's `loadgroup` no longer keeps a group on one worker under pytest 9
# (it renames `item._nodeid`, which pytest 9 no longer reads), so this module's tests land on
# both workers; the workers of one run share one root instead (built under a lock by
# whichever comes first, removed by whichever finishes last).
pytestmark = [pytest.mark.timeout(1500)]


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The fast tier's root file system, built once for the run (all its workers)."""
    if os.geteuid() != 0:
        real_parts.cannot_run("the image's root file system needs root (mmdebstrap, chroot)")
    if shutil.which("mmdebstrap") is None:
        real_parts.missing("mmdebstrap", "apt-get install mmdebstrap")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    # The workers' temporary folders share a parent for the run; without xdist, our own.
    shared = tmp_path_factory.getbasetemp().parent / f"image-fast-{run}" if run else None
    out = shared or tmp_path_factory.mktemp("image-fast")
    out.mkdir(exist_ok=True)
    with _locked(out / "lock"):
        users = _users(out) + 1
        (out / "users").write_text(str(users))
        if not (out / "built").exists():
            built = subprocess.run(
                [str(ROOT / "image" / "build"), "--fast"],
                env={**os.environ, "APPLIANCE_IMAGE_OUT": str(out)},
                capture_output=True,
                text=True,
                check=False,
            )
            (out / "built").write_text(str(built.returncode))
            (out / "build.log").write_text(built.stderr[-5000:])
    returncode = int((out / "built").read_text())
    assert returncode == 0, (out / "build.log").read_text()
    try:
        yield out / "rootfs-fast"
    finally:
        with _locked(out / "lock"):
            users = _users(out) - 1
            (out / "users").write_text(str(users))
            if users == 0:  # a session that needs it later builds it again
                shutil.rmtree(out / "rootfs-fast", ignore_errors=True)
                (out / "built").unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` between the processes of the run."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _users(out: Path) -> int:
    """How many sessions use the shared root now (read under the lock)."""
    users = out / "users"
    return int(users.read_text()) if users.exists() else 0


def in_root(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command inside the root (chroot, clean environment)."""
    return subprocess.run(
        [
            "chroot",
            str(root),
            "/usr/bin/env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
            *command,
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_our_units_verify_clean(rootfs: Path) -> None:
    for unit in OUR_UNITS:
        verified = subprocess.run(
            ["systemd-analyze", "verify", f"--root={rootfs}", f"/etc/systemd/system/{unit}"],
            capture_output=True,
            text=True,
            check=False,
        )
        # Only complaints about our own files count: the host's units may differ.
        ours = [
            line
            for line in verified.stderr.splitlines()
            if "appliance" in line or "/etc/systemd/system/" in line
        ]
        assert ours == [], "\n".join(ours)


@pytest.mark.parametrize(
    ("unit", "state"),
    [
        ("appliance.service", "enabled"),
        ("appliance-provision.service", "enabled"),
        ("appliance-grow-data.service", "enabled"),
        ("seatd.service", "enabled"),
        ("systemd-networkd.service", "enabled"),
        ("systemd-timesyncd.service", "enabled"),
        ("ssh.service", "enabled"),  # it starts only with provisioned keys (a condition)
        ("getty@tty1.service", "masked"),
        ("autovt@tty1.service", "masked"),
        ("ctrl-alt-del.target", "masked"),
        ("apt-daily.timer", "masked"),
        ("apt-daily-upgrade.timer", "masked"),
    ],
)
def test_services_are_enabled_or_masked_as_the_kiosk_needs(
    rootfs: Path, unit: str, state: str
) -> None:
    shown = subprocess.run(
        ["systemctl", f"--root={rootfs}", "is-enabled", unit],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.stdout.strip() == state


def test_no_account_has_a_usable_password(rootfs: Path) -> None:
    shadow = (rootfs / "etc" / "shadow").read_text().splitlines()
    usable = [
        line.split(":")[0] for line in shadow if not line.split(":")[1].startswith(("!", "*"))
    ]
    assert usable == []
    assert list((rootfs / "etc" / "ssh").glob("ssh_host_*")) == [], "host keys shared by every card"


def test_the_appliance_user_has_its_device_groups_and_no_more(rootfs: Path) -> None:
    groups = set(in_root(rootfs, "id", "-nG", "appliance").stdout.split())
    assert groups == {"appliance", "input", "render", "video", "gpio", "dialout", "lp", "plugdev"}
    shell = in_root(rootfs, "getent", "passwd", "appliance").stdout.strip().split(":")[-1]
    assert shell == "/usr/sbin/nologin"


def test_the_reboot_grant_names_reboot_only(rootfs: Path) -> None:
    rule = (rootfs / "etc" / "polkit-1" / "rules.d" / "50-appliance-reboot.rules").read_text()
    actions = {part.split('"')[1] for part in rule.split("action.id == ")[1:]}
    assert actions == {
        "org.freedesktop.login1.reboot",
        "org.freedesktop.login1.reboot-multiple-sessions",
        "org.freedesktop.login1.set-reboot-parameter",
    }


def test_the_images_provisioning_command_checks_files(rootfs: Path, tmp_path: Path) -> None:
    work = rootfs / "tmp" / "provisioning-check"
    work.mkdir()
    try:
        shutil.copy(EXAMPLE, work / "example.toml")  # placeholders: must be refused
        refused = in_root(
            rootfs,
            "/opt/appliance/venv/bin/appliance",
            "provision",
            "--check",
            "/tmp/provisioning-check/example.toml",
        )
        assert refused.returncode == 1
        assert "hub.ca" in refused.stdout + refused.stderr
        good = _good_file(tmp_path)
        shutil.copy(good, work / "good.toml")
        passed = in_root(
            rootfs,
            "/opt/appliance/venv/bin/appliance",
            "provision",
            "--check",
            "/tmp/provisioning-check/good.toml",
        )
        assert passed.returncode == 0, passed.stdout + passed.stderr
        assert "ok (sha256" in passed.stdout
    finally:
        shutil.rmtree(work)


def _good_file(tmp_path: Path) -> Path:
    """A complete, valid provisioning file (fresh CA and device certificate)."""
    return write_file(tmp_path / "good.toml", good_data())
