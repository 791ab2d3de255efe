"""Software updates of the emulated card's A/B slots, through the real hub and bundle server.

The card test_boot.py provisioned goes on, in file order: its layout and slot A; bundles
refused before any reboot; a good release that commits (with a sale and power cuts during
its download and just after its commit); a release whose try boot loses its power; a
release whose service never reaches READY, which rolls back by itself. The harness plays
the Pi bootloader's tryboot (tests/image/firmware.py), and `vm.boots` shows every choice
it made.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.update.bundle import read_bundle
from appliance.update.manifest import release_key
from hub.releases.adding import PAYLOAD
from hub.releases.issuing import BUNDLE_PATH
from tests.image.conftest import Timings, built_image
from tests.image.firmware import BootChoice
from tests.image.fleet import DEVICE, STORE, Fleet
from tests.image.test_boot import (
    BOOT_SECONDS,
    hub_has_each_once,
    in_guest,
    local_sales,
    sell_one,
    wait_ready,
)
from tests.image.vm import Disk, Vm, wait_until

pytestmark = pytest.mark.image

BOOT_A, BOOT_B = 2, 3  # the slots' boot partitions
ROOT_A = 5
UPDATE_SECONDS = 1800  # a whole root through xz and sha256 under TCG
# A drop-in that keeps the new slot's service from ever sending READY.
NEVER_READY_DROPIN = "[Service]\nExecStart=\nExecStart=/bin/sleep infinity\n"


def later(release: str, step: int) -> str:
    """A release `step` minor versions after `release` (2026.12.1, 1 → 2026.13.0)."""
    numbers = [int(part) for part in release.split(".")] + [0, 0]
    return f"{numbers[0]}.{numbers[1] + step}.0"


@dataclass(frozen=True)
class SlotA:
    """The built image's slot A partitions, and the release its root reports."""

    boot: Path
    root: Path
    release: str

    @property
    def good(self) -> str:
        """The release the good update brings."""
        return later(self.release, 1)

    @property
    def never_ready(self) -> str:
        """The release whose service never reaches READY."""
        return later(self.release, 3)

    @property
    def cut_in_try(self) -> str:
        """The release whose try boot loses its power."""
        return later(self.release, 2)


@pytest.fixture(scope="session")
def slot_a(tmp_path_factory: pytest.TempPathFactory) -> SlotA:
    """Slot A's boot and root partitions copied out of the built image (sparse)."""
    work = tmp_path_factory.mktemp("slot-a")
    image = Disk(built_image())
    boot = image.extract(BOOT_A, work / "boot.img")
    root = image.extract(ROOT_A, work / "root.img")
    shown = subprocess.run(
        ["debugfs", "-R", "cat /etc/appliance-release", str(root)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    release_key(shown)  # a release, or the image is not what this test needs
    return SlotA(boot, root, shown)


def _until(check: Callable[[], object], what: str, vm: Vm, timeout: float = UPDATE_SECONDS) -> None:
    wait_until(check, timeout, what, vm)


def _state(fleet: Fleet) -> tuple[str, str, str]:
    """(version, state, reason) of the device's latest update report at the hub."""
    found = fleet.device_update()
    return ("", "", "") if found is None else (found["version"], found["state"], found["reason"])


def _debugfs(image: Path, *commands: str) -> None:
    """Change files inside an ext4 image, no mount needed."""
    script = "\n".join(commands) + "\n"
    subprocess.run(
        ["debugfs", "-w", "-f", "-", str(image)], input=script, text=True, check=True,
        capture_output=True,
    )  # fmt: skip


def slot_images(slot_a: SlotA, work: Path, release: str, *, dropin: str = "") -> tuple[Path, Path]:
    """Slot A's boot and root, the root saying `release` (and with `dropin`)."""
    work.mkdir(parents=True, exist_ok=True)
    root = work / "root.img"
    subprocess.run(["cp", "--sparse=always", str(slot_a.root), str(root)], check=True)
    (work / "release").write_text(f"{release}\n")
    commands = ["rm /etc/appliance-release", f"write {work / 'release'} /etc/appliance-release"]
    if dropin:
        (work / "dropin.conf").write_text(dropin)
        folder = "/etc/systemd/system/appliance.service.d"
        commands.append(f"write {work / 'dropin.conf'} {folder}/zz-never-ready.conf")
    _debugfs(root, *commands)
    return slot_a.boot, root


def build_release(
    fleet: Fleet, work: Path, version: str, boot: Path, root: Path, *, min_version: str, **how: str
) -> Path:
    """`appliance-hub release build`, fast (xz -1): the bundle file."""
    bundle = work / f"{version}.tar"
    fleet.hub(
        "release", "build", "--boot", str(boot), "--root", str(root), "--version", version,
        "--min-version", min_version, "--xz-preset", "1",
        "--key", how.get("key", str(fleet.root / "keys" / "release.key")), "-o", str(bundle),
        timeout=900,
    )  # fmt: skip
    return bundle


def add_and_roll_out(fleet: Fleet, bundle: Path, version: str, *, alter: bool = False) -> None:
    """Add the release at the hub and roll it out to the whole store.

    `alter`: flip a byte of the hub's copy of the payload once added, as a bad disk would.
    """
    fleet.hub(
        "release", "add", str(bundle), "--key", str(fleet.root / "keys" / "release.pub"),
        "--releases", str(fleet.root / "releases"), "--db", fleet.db_url, timeout=600,
    )  # fmt: skip
    if alter:
        with (fleet.root / "releases" / version / PAYLOAD).open("r+b") as handle:
            handle.seek(100)
            byte = handle.read(1)[0]
            handle.seek(100)
            handle.write(bytes([byte ^ 0xFF]))
    fleet.hub(
        "rollout", "start", version, "--store", STORE, "--percent", "100", "--db", fleet.db_url,
        "--fleet-key", str(fleet.root / "keys" / "fleet.key"), "--bundle-url", fleet.bundle_url,
        net=True,
    )  # fmt: skip


def offer(fleet: Fleet, slot_a: SlotA, work: Path, version: str, *, dropin: str = "") -> Path:
    """Slot A's images as release `version`, built, added and rolled out: the bundle."""
    boot, root = slot_images(slot_a, work, version, dropin=dropin)
    bundle = build_release(fleet, work, version, boot, root, min_version=slot_a.release)
    add_and_roll_out(fleet, bundle, version)
    return bundle


def send_update(fleet: Fleet, bundle: Path, version: str) -> str:
    """An `update` command straight to the device, from a bundle's manifest: its answers."""
    members = read_bundle(bundle)
    args = {
        "version": version,
        "url": fleet.bundle_url + BUNDLE_PATH.format(version=version),
        "manifest": members.manifest_json.decode(),
        "signature": base64.b64encode(members.signature).decode(),
    }
    # --arg parses a value as JSON when it can: each goes as a JSON string.
    pairs = [f"--arg={key}={json.dumps(value)}" for key, value in args.items()]
    return fleet.hub(
        "fleet", "command", DEVICE, "update", *pairs,
        "--fleet-key", str(fleet.root / "keys" / "fleet.key"), "--wait", "300",
        net=True, check=False, timeout=400,
    )  # fmt: skip


def tiny_images(work: Path) -> tuple[Path, Path]:
    """A small boot and root: enough for bundles refused before they download."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "boot.img").write_bytes(b"boot" * 4096)
    (work / "root.img").write_bytes(b"root" * 65536)
    return work / "boot.img", work / "root.img"


def test_the_card_has_two_slots_and_runs_slot_a(vm: Vm, slot_a: SlotA) -> None:
    if not vm.alive():
        vm.start()
    vm.wait_for_ssh(BOOT_SECONDS)
    wait_ready(vm)
    table = json.loads(subprocess.run(
        ["sfdisk", "--json", str(vm.disk.path)], capture_output=True, text=True, check=True
    ).stdout)["partitiontable"]  # fmt: skip
    assert [p["type"] for p in table["partitions"]] == ["c", "c", "c", "f", "83", "83", "83"]
    assert table["id"] == "0x706f7331"
    assert vm.boots[-1] == BootChoice(BOOT_A, tryboot=False)
    assert vm.ssh("cat /etc/appliance-release").strip() == slot_a.release
    assert vm.ssh("readlink -f /dev/disk/by-partuuid/706f7331-05") == vm.ssh(
        "findmnt -n -o SOURCE /media/root-ro"
    )
    autoboot = vm.ssh("cat /boot/autoboot/autoboot.txt")
    assert "boot_partition=2" in autoboot and "[tryboot]" in autoboot
    # The card partition is read-only and root's: the appliance reads autoboot.txt and asks
    # appliance-autoboot.service to change it; it can put no file there for root to apply.
    assert "ro" in vm.ssh("findmnt -n -o OPTIONS /boot/autoboot").split(",")
    owner = vm.ssh("stat -c '%U %G %a' /boot/autoboot/autoboot.txt").split()
    assert owner == ["root", "appliance", "640"]
    write = "runuser -u appliance -- sh -c 'echo x >/boot/autoboot/provisioning.toml' && echo wrote"
    assert vm.answer(write) == ""
    # Only the four slot partitions are the appliance's; the data and card ones are not.
    owners = vm.ssh("stat -L -c '%n %G %a' /dev/appliance/*").split("\n")
    assert sorted(line.split()[0] for line in owners if line) == [
        "/dev/appliance/boot-a", "/dev/appliance/boot-b",
        "/dev/appliance/root-a", "/dev/appliance/root-b",
    ]  # fmt: skip
    assert all(line.split()[1:] == ["appliance", "660"] for line in owners if line), owners
    assert vm.ssh("systemctl is-enabled appliance-try-watchdog.service").strip() == "enabled"
    # Debian's kernel passes no reboot argument to the firmware: the image's module does, and
    # it is loaded, built for this kernel.
    assert vm.ssh("cat /sys/module/appliance_tryboot/initstate").strip() == "live"
    kernel = vm.ssh("uname -r").strip()
    vermagic = vm.ssh("modinfo -F vermagic appliance_tryboot").split()
    assert vermagic[0] == kernel, (vermagic, kernel)


def test_bundles_refused_before_any_reboot(
    vm: Vm, fleet: Fleet, slot_a: SlotA, tmp_path: Path
) -> None:
    boot_id = vm.ssh("cat /proc/sys/kernel/random/boot_id").strip()
    boots = len(vm.boots)
    autoboot = vm.ssh("cat /boot/autoboot/autoboot.txt")
    boot, root = tiny_images(tmp_path)
    base = slot_a.release
    forged, newer_base, altered = later(base, 7), later(base, 8), later(base, 9)
    # Signed by a key that is not the fleet's release key.
    fleet.hub("release", "keygen", str(tmp_path / "other.key"))
    bundle = build_release(fleet, tmp_path, forged, boot, root, min_version=base,
                           key=str(tmp_path / "other.key"))  # fmt: skip
    answer = send_update(fleet, bundle, forged)
    assert "REJECTED" in answer and "signature" in answer, answer
    # Too new a base: it updates only from a release after this one.
    minimum = f"{base}.1"
    bundle = build_release(fleet, tmp_path, newer_base, boot, root, min_version=minimum)
    answer = send_update(fleet, bundle, newer_base)
    assert "REJECTED" in answer and minimum in answer, answer
    # A payload that is not what its manifest says: the hub's copy altered after adding it.
    bundle = build_release(fleet, tmp_path, altered, boot, root, min_version=base)
    add_and_roll_out(fleet, bundle, altered, alter=True)
    _until(lambda: _state(fleet)[:2] in {(altered, "rejected"), (altered, "committed")},
           "the altered release's end", vm, timeout=600)  # fmt: skip
    version, state, reason = _state(fleet)
    assert state == "rejected", (version, state, reason)
    assert vm.ssh("cat /proc/sys/kernel/random/boot_id").strip() == boot_id
    assert len(vm.boots) == boots
    assert vm.ssh("cat /boot/autoboot/autoboot.txt") == autoboot


@pytest.mark.timeout(3600)
def test_a_good_release_commits_through_power_cuts_and_a_sale_in_its_download(
    vm: Vm, fleet: Fleet, slot_a: SlotA, timings: Timings, tmp_path: Path
) -> None:
    good = slot_a.good
    bundle = offer(fleet, slot_a, tmp_path, good)
    timings.record("update_bundle_bytes", bundle.stat().st_size)
    _until(lambda: _state(fleet)[:2] == (good, "downloading"), "the download to start", vm, 600)
    # A sale while the download runs: it reaches the hub once, whatever follows.
    receipt = sell_one(vm)
    documents = {r["document_id"] for r in local_sales(vm) if r["receipt_number"] == receipt}
    # Power cut mid-download: the download resumes after the boot, on slot A still.
    assert vm.boots[-1] == BootChoice(BOOT_A, tryboot=False), "the try started already"
    assert _state(fleet)[1] == "downloading"
    vm.power_cut()
    vm.start()
    vm.wait_for_ssh(BOOT_SECONDS)
    assert vm.boots[-1] == BootChoice(BOOT_A, tryboot=False)
    _until(lambda: vm.boots[-1] == BootChoice(BOOT_B, tryboot=True), "the try boot of slot B", vm)
    tried = time.monotonic()
    _until(lambda: _state(fleet)[:2] == (good, "committed"), f"{good} committed", vm)
    timings.record("update_try_boot_to_committed_s", time.monotonic() - tried)
    timings.record("update_reboot_to_ready_s", wait_ready(vm))
    assert "boot_partition=3" in vm.ssh("sed -n 1,3p /boot/autoboot/autoboot.txt")
    assert vm.ssh("cat /etc/appliance-release").strip() == good
    # Power cut just after the commit: the new slot is the default from now on.
    vm.power_cut()
    vm.start()
    vm.wait_for_ssh(BOOT_SECONDS)
    wait_ready(vm)
    assert vm.boots[-1] == BootChoice(BOOT_B, tryboot=False)
    assert vm.ssh("cat /etc/appliance-release").strip() == good
    in_guest(vm, "db", "check")
    assert {r["document_id"] for r in local_sales(vm)} >= documents
    _until(lambda: hub_has_each_once(fleet, {r["document_id"] for r in local_sales(vm)}),
           "every sale at the hub once", vm, 300)  # fmt: skip
    assert _state(fleet) == (good, "committed", "")


@pytest.mark.timeout(3600)
def test_a_power_cut_in_the_try_boot_brings_the_old_slot_back_with_its_data(
    vm: Vm, fleet: Fleet, slot_a: SlotA, tmp_path: Path
) -> None:
    before = {r["document_id"] for r in local_sales(vm)}
    cut = slot_a.cut_in_try
    offer(fleet, slot_a, tmp_path, cut)
    _until(lambda: vm.boots[-1] == BootChoice(BOOT_A, tryboot=True), "the try boot of slot A", vm)
    # Well into the try: the new slot's root is up and its watchdog counting.
    wait_until(lambda: "must commit within" in vm.boot_console(), BOOT_SECONDS, "the try", vm)
    vm.power_cut()
    vm.start()  # the flag went with the power: the bootloader starts the default slot
    vm.wait_for_ssh(BOOT_SECONDS)
    wait_ready(vm)
    assert vm.boots[-1] == BootChoice(BOOT_B, tryboot=False)
    _until(lambda: _state(fleet)[:2] == (cut, "rolled_back"), "the rollback at the hub", vm, 600)
    assert "did not start" in _state(fleet)[2]
    assert vm.ssh("cat /etc/appliance-release").strip() == slot_a.good
    in_guest(vm, "db", "check")
    assert {r["document_id"] for r in local_sales(vm)} == before


@pytest.mark.timeout(3600)
def test_a_release_that_never_becomes_ready_rolls_back_by_itself(
    vm: Vm, fleet: Fleet, slot_a: SlotA, tmp_path: Path
) -> None:
    before = {r["document_id"] for r in local_sales(vm)}
    broken = slot_a.never_ready
    bundle = offer(fleet, slot_a, tmp_path, broken, dropin=NEVER_READY_DROPIN)
    _until(lambda: vm.boots[-1] == BootChoice(BOOT_A, tryboot=True), "the try boot of slot A", vm)
    # Nobody reboots it: the try boot's watchdog does, and the bootloader starts slot B.
    _until(lambda: vm.boots[-1] == BootChoice(BOOT_B, tryboot=False), "the old slot back", vm)
    vm.wait_for_ssh(BOOT_SECONDS)
    wait_ready(vm)
    _until(lambda: _state(fleet)[1] == "rolled_back", "the rollback at the hub", vm, 600)
    version, _state_name, reason = _state(fleet)
    assert version == broken and "did not start" in reason, reason
    assert vm.ssh("cat /etc/appliance-release").strip() == slot_a.good
    assert "boot_partition=3" in vm.ssh("sed -n 1,3p /boot/autoboot/autoboot.txt")
    assert "did not commit" in vm.console()
    in_guest(vm, "db", "check")
    assert {r["document_id"] for r in local_sales(vm)} == before
    # Offered again, it is refused: a rolled-back release is never retried on its own.
    answer = send_update(fleet, bundle, broken)
    assert "REJECTED" in answer and "rolled back" in answer, answer
    vm.stop()
