"""The slots: autoboot.txt as the Pi firmware reads it, PiSlots on a fake boot partition and
device tree, DirectorySlots and the host firmware that plays the one-shot tryboot flag."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from appliance.errors import UpdateError, UpdateRejectedError
from appliance.update.host_firmware import firmware_boot, slot_release
from appliance.update.slots import (
    AUTOBOOT,
    LOGIND,
    Autoboot,
    DirectorySlots,
    PiSlots,
    parse_autoboot,
    read_autoboot,
)

DOCUMENTED = """\
[all]
tryboot_a_b=1
boot_partition=2
[tryboot]
boot_partition=3
"""


def test_the_documented_autoboot_file_reads_as_default_and_try_partitions() -> None:
    assert parse_autoboot(DOCUMENTED) == Autoboot(2, 3)
    assert Autoboot(2, 3).render() == DOCUMENTED
    assert parse_autoboot("[all]\nboot_partition=3 # after commit\n") == Autoboot(3, None)


def test_an_autoboot_file_without_a_default_partition_is_an_error() -> None:
    with pytest.raises(UpdateError, match="no boot_partition"):
        parse_autoboot("[tryboot]\nboot_partition=3\n")


class FakePi:
    """A boot partition folder, a device tree folder, and the commands PiSlots ran."""

    def __init__(self, tmp_path: Path) -> None:
        self.boot = tmp_path / "autoboot"
        self.tree = tmp_path / "device-tree" / "chosen" / "bootloader"
        self.boot.mkdir()
        self.tree.mkdir(parents=True)
        (self.boot / AUTOBOOT).write_text(DOCUMENTED)
        self.ran: list[Sequence[str]] = []
        parts = {
            slot: {"boot": tmp_path / f"{slot}-boot.dev", "root": tmp_path / f"{slot}-root.dev"}
            for slot in ("A", "B")
        }
        for per_slot in parts.values():
            for device in per_slot.values():
                device.write_bytes(bytes(4096))  # a block device has its size already
        self.slots = PiSlots(
            autoboot_dir=self.boot,
            device_tree=self.tree,
            parts=parts,  # type: ignore[arg-type]
            run=self.ran.append,
        )

    def booted_from(self, partition: int, tryboot: int | None) -> None:
        (self.tree / "partition").write_bytes(partition.to_bytes(4, "big"))
        if tryboot is None:
            (self.tree / "tryboot").unlink(missing_ok=True)
        else:
            (self.tree / "tryboot").write_bytes(tryboot.to_bytes(4, "big"))


def test_pi_slots_read_the_booted_slot_and_the_try_from_the_device_tree(tmp_path: Path) -> None:
    pi = FakePi(tmp_path)
    pi.booted_from(2, None)  # older firmware leaves tryboot out: not a try
    assert (pi.slots.booted(), pi.slots.trying(), pi.slots.inactive()) == ("A", False, "B")
    pi.booted_from(3, 1)
    assert (pi.slots.booted(), pi.slots.trying(), pi.slots.inactive()) == ("B", True, "A")
    # The flag set but the default partition booted: not our try (the doc's own check).
    pi.booted_from(2, 1)
    assert pi.slots.trying() is False


def test_pi_slots_try_then_commit_swaps_the_partitions_in_autoboot(tmp_path: Path) -> None:
    pi = FakePi(tmp_path)
    (pi.boot / AUTOBOOT).write_text("[all]\ntryboot_a_b=1\nboot_partition=2\n")
    pi.booted_from(2, 0)
    pi.slots.arm_try()
    assert read_autoboot(pi.boot) == Autoboot(2, 3)
    pi.slots.reboot_to_try()
    assert pi.ran == [
        (*LOGIND, "SetRebootParameter", "s", "0 tryboot"),
        (*LOGIND, "Reboot", "b", "false"),
    ]
    pi.booted_from(3, 1)
    pi.slots.commit()
    assert read_autoboot(pi.boot) == Autoboot(3, 2)
    assert not (pi.boot / (AUTOBOOT + ".new")).exists()
    pi.slots.reboot()
    assert pi.ran[-2:] == [
        (*LOGIND, "SetRebootParameter", "s", ""),
        (*LOGIND, "Reboot", "b", "false"),
    ]


def test_a_commit_rewrites_autoboot_in_place_at_one_size_within_a_sector(tmp_path: Path) -> None:
    root = tmp_path / "slots"
    DirectorySlots(root)
    firmware_boot(root)
    path = root / AUTOBOOT
    before = path.stat()
    assert before.st_size <= 512  # one sector of the FAT partition holds all of it
    DirectorySlots(root).arm_try()
    (root / "tryboot").write_text("1")
    assert firmware_boot(root) == ("B", True)
    DirectorySlots(root).commit()
    after = path.stat()
    # Same file, same length: FAT rewrites its data sector and nothing else moves.
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert not (root / (AUTOBOOT + ".new")).exists()
    assert read_autoboot(root) == Autoboot(3, 2)
    assert firmware_boot(root) == ("B", False)  # the firmware's parse reads the new default


def test_an_autoboot_file_of_another_size_is_replaced_once_then_kept_in_place(
    tmp_path: Path,
) -> None:
    pi = FakePi(tmp_path)  # the file as written by hand: not the padded size
    pi.booted_from(3, 1)
    pi.slots.commit()
    first = (pi.boot / AUTOBOOT).stat()
    pi.booted_from(2, 1)
    pi.slots.commit()
    second = (pi.boot / AUTOBOOT).stat()
    assert (second.st_ino, second.st_size) == (first.st_ino, first.st_size)
    assert read_autoboot(pi.boot) == Autoboot(2, 3)


def test_a_rename_cut_short_on_fat_is_finished_before_autoboot_is_read(tmp_path: Path) -> None:
    pi = FakePi(tmp_path)
    (pi.boot / AUTOBOOT).rename(pi.boot / (AUTOBOOT + ".new"))  # the cut left only the temp
    assert read_autoboot(pi.boot) == Autoboot(2, 3)
    assert (pi.boot / AUTOBOOT).read_text() == DOCUMENTED


def test_pi_slots_write_the_inactive_slots_devices_and_refuse_an_image_too_big(
    tmp_path: Path,
) -> None:
    pi = FakePi(tmp_path)
    pi.booted_from(2, 0)
    writer = pi.slots.writer()
    with writer.open_part("root", 100) as part:
        part.seek(10)
        part.write(b"new root")
    writer.flush()
    assert (tmp_path / "B-root.dev").read_bytes()[10:18] == b"new root"
    assert (tmp_path / "A-root.dev").read_bytes() == bytes(4096)
    assert b"".join(writer.read_part("root", 18))[10:] == b"new root"
    with pytest.raises(UpdateRejectedError, match="do not fit"):
        writer.open_part("boot", 8192)


def test_a_device_tree_without_the_partition_says_the_pi_firmware_did_not_boot(
    tmp_path: Path,
) -> None:
    pi = FakePi(tmp_path)
    with pytest.raises(UpdateError, match="not booted by the Pi firmware"):
        pi.slots.booted()


def test_directory_slots_and_the_host_firmware_try_once_then_fall_back(tmp_path: Path) -> None:
    root = tmp_path / "slots"
    reboots: list[int] = []
    slots = DirectorySlots(root, on_reboot=lambda: reboots.append(1))
    assert firmware_boot(root) == ("A", False)
    slots.arm_try()
    slots.reboot_to_try()
    assert reboots == [1] and (root / "reboot-requested").exists()
    assert firmware_boot(root) == ("B", True)
    assert (slots.booted(), slots.trying()) == ("B", True)
    # The flag went at that start: a crash or a reboot without a commit comes back on A.
    assert firmware_boot(root) == ("A", False)
    slots.arm_try()
    slots.reboot_to_try()
    assert firmware_boot(root) == ("B", True)
    slots.commit()
    assert firmware_boot(root) == ("B", False)
    assert slots.inactive() == "A"


def test_directory_slot_writer_resumes_without_truncating_and_sizes_the_file(
    tmp_path: Path,
) -> None:
    slots = DirectorySlots(tmp_path)
    writer = slots.writer()
    with writer.open_part("root", 10) as part:
        part.write(b"01234")
    with writer.open_part("root", 10) as part:
        part.seek(5)
        part.write(b"56789")
    writer.flush()
    assert (tmp_path / "slot-B" / "root.img").read_bytes() == b"0123456789"


def test_the_host_firmware_names_the_release_a_slot_image_carries(tmp_path: Path) -> None:
    (tmp_path / "slot-B").mkdir()
    (tmp_path / "slot-B" / "root.img").write_bytes(b"appliance-release 2026.12.2\n" + bytes(9))
    assert slot_release(tmp_path, "B") == "2026.12.2"
    assert slot_release(tmp_path, "A") == ""


def test_the_host_firmware_restarts_the_command_that_asked_for_a_reboot(tmp_path: Path) -> None:
    from appliance.update.host_firmware import main

    root = tmp_path / "slots"
    script = textwrap.dedent(
        """
        import os, pathlib, sys
        root = pathlib.Path(sys.argv[1])
        with open(root / "log", "a") as log:
            log.write(os.environ["APPLIANCE_SLOT"] + "\\n")
        if not (root / "once").exists():
            (root / "once").write_text("")
            (root / "tryboot").write_text("1")
            (root / "reboot-requested").write_text("1")
            sys.exit(0)
        sys.exit(7)
        """
    )
    (root / "slot-B").mkdir(parents=True)
    (root / "slot-B" / "root.img").write_bytes(b"appliance-release 2026.12.2\n")  # boots
    (root / "autoboot.txt").write_text(DOCUMENTED)
    status = main([str(root), "--", sys.executable, "-c", script, str(root)])
    assert status == 7
    assert (root / "log").read_text().split() == ["A", "B"]
    assert os.path.exists(root / "booted")


def test_a_try_of_a_slot_that_does_not_boot_comes_back_on_the_default(tmp_path: Path) -> None:
    from appliance.update.host_firmware import main

    root = tmp_path / "slots"
    for slot, image in (("A", b"appliance-release 2026.12.1\n"), ("B", b"not a system")):
        (root / f"slot-{slot}").mkdir(parents=True)
        (root / f"slot-{slot}" / "root.img").write_bytes(image)
    slots = DirectorySlots(root)
    firmware_boot(root)
    slots.arm_try()
    (root / "tryboot").write_text("1")  # as reboot_to_try leaves it
    script = "import os, sys; print(os.environ['APPLIANCE_SLOT'], os.environ['APPLIANCE_RELEASE'])"
    command = [sys.executable, "-c", script]
    out = subprocess.run(
        [sys.executable, "-m", "appliance.update.host_firmware", str(root), "--", *command],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert out.stdout.split() == ["A", "2026.12.1"]
    assert "slot B does not boot" in out.stderr
    assert main([str(root), "--", *command]) == 0 and not (root / "tryboot").exists()


def test_the_host_firmware_passes_sigterm_on_and_ends_with_its_command(tmp_path: Path) -> None:
    root = tmp_path / "slots"
    script = textwrap.dedent(
        """
        import pathlib, signal, sys, time
        ready = pathlib.Path(sys.argv[1]) / "running"
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
        ready.write_text("")
        time.sleep(60)
        """
    )
    launcher = subprocess.Popen(
        [sys.executable, "-m", "appliance.update.host_firmware", str(root), "--",
         sys.executable, "-c", script, str(tmp_path)],
    )  # fmt: skip
    try:
        for _ in range(600):
            if (tmp_path / "running").exists():
                break
            time.sleep(0.05)
        launcher.terminate()
        assert launcher.wait(timeout=30) == 3  # the command's own status: it got the SIGTERM
    finally:
        if launcher.poll() is None:
            launcher.kill()
