"""The root helper that changes autoboot.txt for the unprivileged appliance."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from appliance.errors import UpdateError
from appliance.update import make_default as helper
from appliance.update.slots import AUTOBOOT, Autoboot, PiSlots, read_autoboot, write_autoboot
from tests.update.test_slots import FakePi


def test_the_helper_makes_the_booted_slot_the_default_between_two_remounts(
    tmp_path: Path,
) -> None:
    pi = FakePi(tmp_path)
    pi.booted_from(3, 1)  # the try of slot B
    mounts: list[Sequence[str]] = []

    def remount(argv: Sequence[str]) -> None:
        # The file changes only while the partition is read-write.
        assert read_autoboot(pi.boot) == (
            Autoboot(2, 3) if "remount,rw" in argv[2] else Autoboot(3, 2)
        )
        mounts.append(argv)

    helper.make_default(pi.slots, remount, pi.boot)
    assert [argv[2] for argv in mounts] == ["remount,rw", "remount,ro"]
    assert read_autoboot(pi.boot) == Autoboot(3, 2)


def test_the_partition_goes_back_to_read_only_when_the_change_fails(tmp_path: Path) -> None:
    pi = FakePi(tmp_path)
    (pi.tree / "partition").write_bytes((7).to_bytes(4, "big"))  # no slot's partition
    mounts: list[str] = []
    with pytest.raises(UpdateError, match="neither slot"):
        helper.make_default(pi.slots, lambda argv: mounts.append(argv[2]), pi.boot)
    assert mounts == ["remount,rw", "remount,ro"]


def test_the_appliance_asks_systemd_and_checks_what_it_finds_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pi = FakePi(tmp_path)
    pi.booted_from(3, 1)
    started: list[list[str]] = []

    def fake_systemctl(argv: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        started.append(argv)
        write_autoboot(pi.boot, Autoboot(3, 2))  # what the root helper does
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(helper.subprocess, "run", fake_systemctl)
    slots = PiSlots(autoboot_dir=pi.boot, device_tree=pi.tree, write=helper.ask_root)
    slots.commit()
    assert started == [["systemctl", "start", helper.UNIT]]
    assert read_autoboot(pi.boot) == Autoboot(3, 2)


def test_a_helper_that_changed_nothing_is_an_error_not_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pi = FakePi(tmp_path)
    pi.booted_from(3, 1)
    before = (pi.boot / AUTOBOOT).read_bytes()
    monkeypatch.setattr(
        helper.subprocess, "run", lambda argv, **_: subprocess.CompletedProcess(argv, 0)
    )
    slots = PiSlots(autoboot_dir=pi.boot, device_tree=pi.tree, write=helper.ask_root)
    with pytest.raises(UpdateError, match="after the change"):
        slots.commit()
    assert (pi.boot / AUTOBOOT).read_bytes() == before


def test_a_failing_unit_is_an_update_error_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(argv: list[str], **_: object) -> None:
        raise subprocess.CalledProcessError(1, argv, stderr=b"Access denied")

    monkeypatch.setattr(helper.subprocess, "run", refused)
    with pytest.raises(UpdateError, match="Access denied"):
        helper.ask_root(tmp_path, Autoboot(3, 2))
