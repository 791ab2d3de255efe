"""The built image, booted under qemu-system-aarch64 (`-M virt`), driven from the host.

The disk is a sparse copy of the image, made larger as a bigger card would be. Before each
boot the harness plays the Pi bootloader (tests/image/firmware.py): it picks the slot's
boot partition from autoboot.txt and the one-shot tryboot flag, and boots that partition's
own kernel, initrd and cmdline.txt (the console moved to the virt board's UART), telling
the guest its choice in the device tree. qemu runs with -no-reboot, so a guest reboot ends
the process and the harness boots the next one as the firmware would. The network is
qemu's user network with `restrict=on`: nothing leaves except the forwards made here, all
to 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import real_parts
from tests.broker import free_port
from tests.image.firmware import (
    AUTOBOOT_PARTITION,
    BootChoice,
    asked_for_tryboot,
    choose,
    device_tree,
)

CARD_PARTITION = 1  # FAT: autoboot.txt and a field tech's provisioning.toml
POWER_DOWN = "reboot: Power down"
HUB_ADDRESS = "10.0.2.100"  # where the guest finds the host's broker (a guestfwd)
HUB_PORT = 8883
BUNDLE_PORT = 8443  # where the guest finds the host's bundle server (another guestfwd)
RELAY = Path(__file__).with_name("relay.py")
# Test-only additions to the image's command line: the virt board's UART; cage's pixman
# renderer (its GLES renderer crashes on qemu's kms_swrast); simulated devices (no real
# scanner or terminal in the emulator); boot progress on the console for the record; kernel
# warnings on the console too (the image's `quiet` shows errors only), for the tryboot
# module's word that it ran (firmware.py).
TEST_CMDLINE = (
    "console=ttyAMA0",
    "systemd.setenv=WLR_RENDERER=pixman",
    "systemd.setenv=APPLIANCE_SIMULATE=1",
    "systemd.show_status=1",
    "loglevel=5",
)


def qemu_binary() -> str:
    """qemu-system-aarch64 (Debian's qemu-system-arm)."""
    return real_parts.binary("qemu-system-aarch64", "qemu-system-arm")


def _sectors(image: Path) -> list[tuple[int, int]]:
    """(start, size) in bytes of each partition of the image's MBR."""
    dump = subprocess.run(
        ["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True
    )
    table = json.loads(dump.stdout)["partitiontable"]
    unit = int(table.get("sectorsize", 512))
    return [(int(p["start"]) * unit, int(p["size"]) * unit) for p in table["partitions"]]


@dataclass
class Disk:
    """A writable copy of the image: the emulated SD card."""

    path: Path

    @classmethod
    def from_image(cls, image: Path, path: Path, *, size_bytes: int) -> Disk:
        """Copy `image` sparsely to `path` and make the card `size_bytes` big."""
        subprocess.run(["cp", "--sparse=always", str(image), str(path)], check=True)
        os.truncate(path, size_bytes)
        return cls(path)

    def partition(self, number: int) -> tuple[int, int]:
        """(start, size) in bytes of partition `number` (logical ones count from 5)."""
        return _sectors(self.path)[number - 1]

    def extract(self, number: int, out: Path) -> Path:
        """Partition `number` copied out to the file `out` (sparse)."""
        start, size = self.partition(number)
        with self.path.open("rb") as card, out.open("wb") as copy:
            card.seek(start)
            left = size
            while left:
                piece = card.read(min(left, 4 * 1024 * 1024))
                if piece.count(0) == len(piece):
                    copy.seek(len(piece), os.SEEK_CUR)
                else:
                    copy.write(piece)
                left -= len(piece)
            copy.truncate(size)
        return out

    def _fat(self, partition: int) -> str:
        start, _size = self.partition(partition)
        return f"{self.path}@@{start}"

    def boot_files(self, partition: int = CARD_PARTITION) -> list[str]:
        """The names in a FAT partition's top folder."""
        listing = subprocess.run(
            ["mdir", "-b", "-i", self._fat(partition), "::/"],
            capture_output=True,
            text=True,
            check=True,
        )
        return [line.rsplit("/", 1)[-1] for line in listing.stdout.split()]

    def read_boot_file(self, name: str, partition: int = CARD_PARTITION) -> bytes:
        """One file of a FAT partition."""
        copied = subprocess.run(
            ["mcopy", "-n", "-i", self._fat(partition), f"::/{name}", "-"],
            capture_output=True,
            check=True,
        )
        return copied.stdout

    def put_boot_file(self, name: str, content: bytes) -> None:
        """Write a file to the card partition, as a field tech's laptop would."""
        source = self.path.with_name(f".{name}.tmp")
        source.write_bytes(content)
        try:
            subprocess.run(
                ["mcopy", "-o", "-i", self._fat(CARD_PARTITION), str(source), f"::/{name}"],
                check=True,
            )
        finally:
            source.unlink()

    def kernel_and_initrd(self, partition: int, into: Path) -> tuple[Path, Path]:
        """The slot's own kernel and initrd, from its boot partition."""
        names = self.boot_files(partition)
        kernel = next(n for n in names if n.startswith("vmlinuz-"))
        initrd = next(n for n in names if n.startswith("initrd.img-"))
        (into / "vmlinuz").write_bytes(self.read_boot_file(kernel, partition))
        (into / "initrd.img").write_bytes(self.read_boot_file(initrd, partition))
        return into / "vmlinuz", into / "initrd.img"

    def cmdline(self, partition: int) -> str:
        """The slot's cmdline.txt, with the Pi's consoles replaced by the test's."""
        words = self.read_boot_file("cmdline.txt", partition).decode().split()
        kept = [w for w in words if not w.startswith("console=")]
        return " ".join([*kept, *TEST_CMDLINE])


class Qmp:
    """The QEMU Machine Protocol on a UNIX socket: one short connection per command."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, command: str, **arguments: object) -> object:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(60)
            sock.connect(str(self.path))
            stream = sock.makefile("rw", encoding="utf-8")
            json.loads(stream.readline())  # the greeting
            self._ask(stream, {"execute": "qmp_capabilities"})
            return self._ask(stream, {"execute": command, "arguments": arguments})

    @staticmethod
    def _ask(stream: io.TextIOWrapper, request: dict[str, object]) -> object:
        stream.write(json.dumps(request) + "\n")
        stream.flush()
        while True:  # events may come first
            answer = json.loads(stream.readline())
            if "error" in answer:
                raise RuntimeError(f"qmp {request['execute']}: {answer['error']}")
            if "return" in answer:
                return answer["return"]


class Vm:
    """One emulated Pi: qemu started and stopped by PID, its console kept in `workdir`.

    Powered on, a supervisor thread boots it again after each guest reboot or reset,
    choosing the slot as the Pi bootloader does; `boots` records each choice.
    """

    def __init__(
        self,
        disk: Disk,
        workdir: Path,
        *,
        hub_port: int,
        ssh_key: Path,
        bundle_port: int | None = None,
    ) -> None:
        self.disk = disk
        self.workdir = workdir
        self.hub_port = hub_port
        self.bundle_port = bundle_port
        self.ssh_key = ssh_key
        self.ssh_port = free_port()
        self.serial_log = workdir / "serial.log"
        self.qmp = Qmp(workdir / "qmp.sock")
        self.known_hosts = workdir / "known_hosts"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.boots: list[BootChoice] = []
        self._console_mark = 0  # where the console of the last power-on starts
        self._boot_mark = 0  # ...and of the last boot
        self._lock = threading.Lock()
        self._powered = 0  # bumped at each power-on and cut: a supervisor of another ends
        self._supervisor: threading.Thread | None = None
        self.halted = ""  # why the machine went off by itself (powered down, qemu failed)
        self._base_dtb = self._dump_dtb()

    def _machine(self) -> list[str]:
        return [qemu_binary(), "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048"]

    def _dump_dtb(self) -> Path:
        """qemu's own device tree for this machine, which each boot's is made from."""
        base = self.workdir / "virt.dtb"
        subprocess.run(
            [*self._machine(), "-machine", f"dumpdtb={base}", "-display", "none", "-nodefaults"],
            check=True,
            capture_output=True,
        )
        return base

    def command(self, kernel: Path, initrd: Path, cmdline: str, dtb: Path) -> list[str]:
        """The qemu command line for one boot."""
        relay = f"{sys.executable} {RELAY} 127.0.0.1"
        forwards = [
            "user,id=net0,restrict=on",
            f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            f"guestfwd=tcp:{HUB_ADDRESS}:{HUB_PORT}-cmd:{relay} {self.hub_port}",
        ]
        if self.bundle_port is not None:
            forwards.append(
                f"guestfwd=tcp:{HUB_ADDRESS}:{BUNDLE_PORT}-cmd:{relay} {self.bundle_port}"
            )
        net = ",".join(forwards)
        return [
            *self._machine(),
            *("-kernel", str(kernel), "-initrd", str(initrd), "-dtb", str(dtb)),
            *("-append", cmdline),
            # A reboot or reset ends qemu: the harness's firmware picks the next boot.
            "-no-reboot",
            *("-drive", f"file={self.disk.path},if=virtio,format=raw,cache=unsafe"),
            *("-device", "virtio-gpu-pci", "-display", "none"),
            *("-device", "qemu-xhci", "-device", "usb-kbd", "-device", "usb-tablet"),
            # No option ROM: the kernel is booted directly, and qemu would want ipxe-qemu for it.
            *("-netdev", net, "-device", "virtio-net-pci,netdev=net0,romfile="),
            # The hardware watchdog systemd arms (a Pi has bcm2835-wdt).
            *("-device", "i6300esb"),
            *("-chardev", f"file,id=serial0,path={self.serial_log},append=on"),
            *("-serial", "chardev:serial0"),
            *("-qmp", f"unix:{self.qmp.path},server=on,wait=off"),
            *("-monitor", "none", "-nodefaults", "-no-user-config"),
        ]

    def start(self) -> None:
        """Power on: the tryboot flag is clear (it does not survive a power cut)."""
        with self._lock:
            self.halted = ""
            self._powered += 1
            generation = self._powered
            self._console_mark = self._log_size()
            self._boot(tryboot=False)
        self.started_at = time.monotonic()
        self._supervisor = threading.Thread(
            target=self._supervise, args=(generation,), name="vm-firmware", daemon=True
        )
        self._supervisor.start()
        wait_until(self.qmp.path.exists, 30, "qemu's QMP socket", self)

    def _boot(self, *, tryboot: bool) -> None:
        """The firmware's part of one boot, then qemu; called with the lock held."""
        autoboot = self.disk.read_boot_file("autoboot.txt", AUTOBOOT_PARTITION).decode("ascii")
        choice = choose(autoboot, tryboot=tryboot)
        try:
            kernel, initrd = self.disk.kernel_and_initrd(choice.partition, self.workdir)
        except (subprocess.CalledProcessError, StopIteration):
            # Nothing bootable there (an empty slot): the bootloader falls back to the default.
            choice = choose(autoboot, tryboot=False)
            kernel, initrd = self.disk.kernel_and_initrd(choice.partition, self.workdir)
        dtb = device_tree(self._base_dtb, choice, self.workdir / "boot.dtb")
        self.boots.append(choice)
        self.qmp.path.unlink(missing_ok=True)
        self._boot_mark = self._log_size()
        with (self.workdir / "qemu.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command(kernel, initrd, self.disk.cmdline(choice.partition), dtb),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )

    def _supervise(self, generation: int) -> None:
        """After each guest reboot or reset, boot again as the firmware would."""
        while True:
            process = self.process
            if process is None:
                return
            process.wait()
            with self._lock:
                if generation != self._powered:
                    return  # cut or stopped from the test
                console = self._read_console(self._boot_mark)
                # With -no-reboot a guest reset ends qemu with 0; anything else is qemu's
                # own failure, which booting again would only repeat.
                if process.returncode != 0 or POWER_DOWN in console:
                    self.halted = (
                        "the guest powered down"
                        if POWER_DOWN in console
                        else f"qemu exited {process.returncode} (see qemu.log)"
                    )
                    self.process = None
                    return
                try:
                    self._boot(tryboot=asked_for_tryboot(console))
                except Exception as err:  # the harness's firmware failed: say so, stay off
                    self.halted = f"the harness could not boot the card: {err!r}"
                    self.process = None
                    return

    def power_cut(self) -> None:
        """SIGKILL qemu: the card loses power mid-write (and the tryboot flag with it)."""
        with self._lock:
            self._powered += 1
            process, self.process = self.process, None
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

    def stop(self) -> None:
        """Quit qemu (the test is over); safe twice."""
        with self._lock:
            self._powered += 1
            process = self.process
        if process is None:
            return
        try:
            self.qmp("quit")
            process.wait(timeout=30)
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            pass
        self.power_cut()

    def alive(self) -> bool:
        """Whether the machine is on (between two boots of a reboot it still is)."""
        with self._lock:
            process = self.process
        return process is not None and (
            process.poll() is None or (self._supervisor is not None and self._supervisor.is_alive())
        )

    def _log_size(self) -> int:
        return self.serial_log.stat().st_size if self.serial_log.exists() else 0

    def _read_console(self, mark: int) -> str:
        try:
            with self.serial_log.open("rb") as log:
                log.seek(mark)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def console(self) -> str:
        """The serial console since the last power-on (every boot since)."""
        return self._read_console(self._console_mark)

    def boot_console(self) -> str:
        """The serial console of the current boot only."""
        return self._read_console(self._boot_mark)

    def ssh(self, command: str, *, timeout: float = 120, check: bool = True) -> str:
        """Run `command` as root in the guest (key from the provisioning file); its stdout."""
        done = self._ssh(command, timeout)
        if check and done.returncode != 0:
            raise AssertionError(
                f"in the guest: {command!r} exited {done.returncode}\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def _ssh(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *("ssh", "-i", str(self.ssh_key), "-p", str(self.ssh_port)),
                *("-o", "BatchMode=yes", "-o", "ConnectTimeout=15"),
                # The first answer pins the host key; a changed key after a reboot fails.
                *("-o", "StrictHostKeyChecking=accept-new"),
                *("-o", f"UserKnownHostsFile={self.known_hosts}"),
                *("-o", "LogLevel=ERROR", "root@127.0.0.1", command),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def answer(self, command: str) -> str:
        """`command`'s stdout, or "" while the guest cannot answer (rebooting, booting)."""
        try:
            done = self._ssh(command, 30)
        except subprocess.TimeoutExpired:  # qemu took the connection, the guest is not up
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    def wait_for_ssh(self, timeout: float) -> None:
        """Wait until sshd answers with the provisioned key."""

        def answers() -> bool:
            try:
                return self._ssh("true", 30).returncode == 0
            except subprocess.TimeoutExpired:
                return False

        wait_until(answers, timeout, "SSH with the provisioned key", self)

    def screenshot(self, path: Path) -> Path:
        """The emulated display, as a PNG."""
        self.qmp("screendump", filename=str(path), format="png")
        wait_until(lambda: path.exists() and path.stat().st_size > 0, 30, "the screendump", self)
        return path


def wait_until(check: Callable[[], object], timeout: float, what: str, vm: Vm | None) -> None:
    """Poll `check` until it is true; on timeout fail with the console's last lines."""
    deadline = time.monotonic() + timeout
    while not check():
        if vm is not None and vm.halted:
            raise AssertionError(f"{vm.halted} while waiting for {what}:\n{vm.console()[-3000:]}")
        if vm is not None and vm.process is not None and not vm.alive():
            raise AssertionError(f"qemu exited while waiting for {what}:\n{vm.console()[-3000:]}")
        if time.monotonic() > deadline:
            tail = vm.console()[-3000:] if vm is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(1)


@contextmanager
def booted(vm: Vm) -> Iterator[Vm]:
    """Power on, and always quit qemu afterwards."""
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()


def have_host_tools() -> None:
    """The host programs the boot test needs (fails under CI when one is missing)."""
    for name, package in (
        ("qemu-system-aarch64", "qemu-system-arm"),
        ("mcopy", "mtools"),
        ("sfdisk", "fdisk"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
        ("dtc", "device-tree-compiler"),
        ("debugfs", "e2fsprogs"),
    ):
        if shutil.which(name) is None:
            real_parts.missing(name, f"apt-get install {package}")
