"""The two software slots (A and B): which one runs, writing the other, trying and committing it.

Slot selection is the Raspberry Pi firmware's own A/B mechanism, as its documentation
describes it (raspberrypi/documentation, computers/config_txt/autoboot.adoc, "Example
update flow for A/B booting"; computers/raspberry-pi/bootflow-2711.adoc, "Fail-safe OS
updates (TRYBOOT)"; computers/configuration/device-tree.adoc, "Firmware parameters"):

- `autoboot.txt` on the first FAT partition (at most 512 bytes) holds `[all]`
  `tryboot_a_b=1` and `boot_partition=N` (the default slot's boot partition) and a
  `[tryboot]` section whose `boot_partition=M` applies only when the tryboot flag is set;
- `reboot "0 tryboot"` sets that flag; the bootloader clears it before it starts the
  firmware, so the try happens once and any crash or reset boots partition N again;
- `/proc/device-tree/chosen/bootloader/tryboot` is 1 in a try boot and `.../partition`
  the partition booted from (both big-endian 32-bit integers); the try is ours when that
  partition is the `[tryboot]` one;
- commit = rewrite `autoboot.txt` with the two partitions swapped. The firmware reads the
  file before Linux could repair anything, so it is rewritten in place at one fixed size
  (write_autoboot), never renamed.

PiSlots drives that on the device; DirectorySlots plays it with files on a host, and
appliance.update.host_firmware plays the firmware that reads them.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from appliance.errors import UpdateError, UpdateRejectedError

log = logging.getLogger(__name__)

Slot = Literal["A", "B"]
SLOTS: tuple[Slot, Slot] = ("A", "B")
AUTOBOOT = "autoboot.txt"
AUTOBOOT_MAX = 512  # bytes the firmware reads of autoboot.txt
# autoboot.txt is padded to this size: one sector of a cluster it never leaves.
AUTOBOOT_SIZE = 256
READ_SIZE = 1024 * 1024
# Boot partition numbers of the slots as the image lays them out (p1 holds autoboot.txt).
BOOT_PARTITIONS: Mapping[Slot, int] = {"A": 2, "B": 3}


class SlotWriter(Protocol):
    """The inactive slot's partition images, written by the download (one thread at a time)."""

    def open_part(self, name: str, size: int) -> BinaryIO:
        """The part `name` ("boot", "root") opened for writing and seeking, `size` bytes long."""
        ...

    def read_part(self, name: str, size: int) -> Iterator[bytes]:
        """The first `size` bytes of the part, in pieces (to check its hash)."""
        ...

    def flush(self) -> None:
        """Put what was written on the card (fsync); blocking."""
        ...


class SlotBackend(Protocol):
    """Which slot runs, the other one's writer, and the firmware's try and commit; blocking I/O."""

    def booted(self) -> Slot:
        """The slot this boot came from."""
        ...

    def trying(self) -> bool:
        """Whether this boot is the firmware's one-shot try of the other slot."""
        ...

    def inactive(self) -> Slot:
        """The slot not running: the one an update writes."""
        ...

    def writer(self) -> SlotWriter:
        """The inactive slot's writer."""
        ...

    def arm_try(self) -> None:
        """Make the next try boot start the inactive slot (the default stays as it is)."""
        ...

    def reboot_to_try(self) -> None:
        """Reboot once into the try (the flag is one-shot); returns when the reboot is asked."""
        ...

    def commit(self) -> None:
        """Make the booted slot the default one."""
        ...

    def reboot(self) -> None:
        """Reboot normally (a try boot that reboots comes back on the default slot)."""
        ...


@dataclass(frozen=True, slots=True)
class Autoboot:
    """What autoboot.txt says: the default boot partition and the [tryboot] one."""

    default: int
    tryboot: int | None = None

    def render(self) -> str:
        """The file's text, in the firmware's documented form."""
        text = f"[all]\ntryboot_a_b=1\nboot_partition={self.default}\n"
        if self.tryboot is not None:
            text += f"[tryboot]\nboot_partition={self.tryboot}\n"
        return text


_SECTION = re.compile(r"^\[(\w+)\]$")


def parse_autoboot(text: str) -> Autoboot:
    """Read autoboot.txt as the firmware does: [all] and [tryboot] sections, later lines win."""
    section = "all"
    values: dict[str, int] = {}
    for raw in text[:AUTOBOOT_MAX].splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if found := _SECTION.match(line):
            section = found[1]
            continue
        key, _, value = line.partition("=")
        if key.strip() == "boot_partition" and section in ("all", "tryboot"):
            try:
                values[section] = int(value.strip())
            except ValueError:
                raise UpdateError(f"{AUTOBOOT}: bad boot_partition {value.strip()!r}") from None
    if "all" not in values:
        raise UpdateError(f"{AUTOBOOT}: no boot_partition in [all]")
    return Autoboot(values["all"], values.get("tryboot"))


def autoboot_bytes(autoboot: Autoboot) -> bytes:
    """The file's bytes: its text padded to AUTOBOOT_SIZE with blank lines (parsed as nothing)."""
    text = autoboot.render().encode("ascii")
    return text + b"\n" * (AUTOBOOT_SIZE - len(text))


def write_autoboot(folder: Path, autoboot: Autoboot) -> None:
    """Rewrite autoboot.txt in place at its fixed size, then fsync the file and the folder.

    The firmware reads the file before Linux runs, so nothing may depend on Linux finishing
    a rename. Rewritten at the same length, the file keeps its directory entry size and its
    cluster, and FAT overwrites just its first data sector: a power cut leaves the old
    sector or the new one. Accepted risk: a card that tears that one sector write. A file
    of another size (written by hand or by an older image) is replaced once by rename.
    """
    path = folder / AUTOBOOT
    data = autoboot_bytes(autoboot)
    try:
        with open(path, "r+b") as out:
            if os.fstat(out.fileno()).st_size == len(data):
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
                fsync_dir(folder)
                return
    except FileNotFoundError:
        pass
    write_atomically(path, data)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a temp file, fsync, rename, fsync the folder.

    On vfat a rename is two directory updates, so a power cut between them can leave the
    old file, the new one, or only the temp file beside no file at all; read_autoboot
    finishes such a rename before reading (see PiSlots).
    """
    temp = path.with_name(path.name + ".new")
    with open(temp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Put a folder's entries (a rename, a new or removed file) on the disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_autoboot(folder: Path) -> Autoboot:
    """autoboot.txt in `folder`, first finishing a rename a power cut interrupted."""
    path = folder / AUTOBOOT
    temp = path.with_name(AUTOBOOT + ".new")
    if not path.exists() and temp.exists():
        parse_autoboot(temp.read_text(encoding="ascii"))  # only a whole file is put in place
        os.replace(temp, path)
        fsync_dir(folder)
        log.warning("%s: finished the rename a power cut interrupted", path)
    try:
        return parse_autoboot(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError) as err:
        raise UpdateError(f"cannot read {path}: {err}") from err


def other(slot: Slot) -> Slot:
    """The slot that is not `slot`."""
    return "B" if slot == "A" else "A"


def slot_of(partition: int, partitions: Mapping[Slot, int]) -> Slot:
    """The slot whose boot partition is `partition`."""
    for slot, number in partitions.items():
        if number == partition:
            return slot
    raise UpdateError(f"boot partition {partition} is neither slot's {dict(partitions)}")


@dataclass
class FileSlotWriter:
    """Writes parts into files or block devices named per part; remembers what it opened."""

    paths: Mapping[str, Path]
    create: bool = False  # files on a host are made; block devices must exist
    _opened: set[Path] = field(default_factory=set)

    def open_part(self, name: str, size: int) -> BinaryIO:
        """The part opened read-write without truncating it, so a download resumes into it."""
        path = self._path(name)
        if self.create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        handle = open(path, "r+b")  # noqa: SIM115 - the caller closes it
        capacity = handle.seek(0, os.SEEK_END)
        if self.create and capacity != size:
            handle.truncate(size)
        elif capacity < size:
            handle.close()
            # Never fits, however often it is tried: a release built for a bigger slot.
            raise UpdateRejectedError(
                f"part {name}: {size} bytes do not fit {path} ({capacity} bytes)"
            )
        handle.seek(0)
        self._opened.add(path)
        return handle

    def read_part(self, name: str, size: int) -> Iterator[bytes]:
        """The first `size` bytes of the part, read back from the card."""
        with open(self._path(name), "rb") as handle:
            left = size
            while left > 0:
                piece = handle.read(min(READ_SIZE, left))
                if not piece:
                    raise UpdateError(f"part {name}: ends {left} bytes short of {size}")
                left -= len(piece)
                yield piece

    def flush(self) -> None:
        """fsync every part written: any descriptor of a file flushes all its dirty pages."""
        for path in sorted(self._opened):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if self.create:
            for folder in {path.parent for path in self._opened}:
                fsync_dir(folder)

    def _path(self, name: str) -> Path:
        try:
            return self.paths[name]
        except KeyError:
            raise UpdateError(f"the slot has no part {name!r}") from None


# logind's manager on the system bus, called with busctl (part of systemd).
LOGIND = ("busctl", "call", "org.freedesktop.login1", "/org/freedesktop/login1",
          "org.freedesktop.login1.Manager")  # fmt: skip
TRYBOOT_ARGUMENT = "0 tryboot"  # the Pi firmware's reboot argument for a one-shot try


def _run(argv: Sequence[str]) -> None:
    subprocess.run(list(argv), check=True, timeout=30)


class PiSlots:
    """The slots on a Raspberry Pi: autoboot.txt, the device tree, and `reboot "0 tryboot"`."""

    def __init__(
        self,
        *,
        autoboot_dir: Path = Path("/boot/autoboot"),
        device_tree: Path = Path("/proc/device-tree/chosen/bootloader"),
        boot_partitions: Mapping[Slot, int] = BOOT_PARTITIONS,
        parts: Mapping[Slot, Mapping[str, Path]] | None = None,
        run: Callable[[Sequence[str]], None] = _run,
        write: Callable[[Path, Autoboot], None] = write_autoboot,
    ) -> None:
        """`write` changes autoboot.txt: directly, or through the image's root helper
        (appliance.update.make_default), for an appliance that may not write the card."""
        self._autoboot_dir = autoboot_dir
        self._write_autoboot = write
        self._tree = device_tree
        self._numbers = dict(boot_partitions)
        # The image's udev rule names the card's slot partitions here, by PARTUUID.
        self._parts = parts or {
            slot: {part: Path(f"/dev/appliance/{part}-{slot.lower()}") for part in ("boot", "root")}
            for slot in SLOTS
        }
        self._run = run

    def booted(self) -> Slot:
        """The slot of the partition the bootloader says it booted from."""
        return slot_of(self._tree_value("partition"), self._numbers)

    def trying(self) -> bool:
        """A try boot, of the partition autoboot.txt's [tryboot] section names."""
        if self._tree_value("tryboot", missing=0) != 1:
            return False
        return self._tree_value("partition") == read_autoboot(self._autoboot_dir).tryboot

    def inactive(self) -> Slot:
        """The slot not running."""
        return other(self.booted())

    def writer(self) -> SlotWriter:
        """The inactive slot's partitions (block devices)."""
        return FileSlotWriter(self._parts[self.inactive()])

    def arm_try(self) -> None:
        """autoboot.txt: the default stays, [tryboot] names the inactive slot."""
        booted = self.booted()
        self._write(Autoboot(self._numbers[booted], self._numbers[other(booted)]))

    def reboot_to_try(self) -> None:
        """Reboot with the argument "0 tryboot", which goes to reboot(2) and sets the flag.

        Through logind, as the fleet's reboot goes: the appliance is not root, and only
        logind (with the image's polkit grant) may set the reboot argument for it.
        """
        self._run((*LOGIND, "SetRebootParameter", "s", TRYBOOT_ARGUMENT))
        self._run((*LOGIND, "Reboot", "b", "false"))

    def commit(self) -> None:
        """autoboot.txt: the booted slot becomes the default, the other the next try."""
        booted = self.booted()
        self._write(Autoboot(self._numbers[booted], self._numbers[other(booted)]))

    def reboot(self) -> None:
        """A normal reboot: the tryboot flag is clear, so the default slot starts."""
        self._run((*LOGIND, "SetRebootParameter", "s", ""))  # none left from a try asked
        self._run((*LOGIND, "Reboot", "b", "false"))

    def _write(self, wanted: Autoboot) -> None:
        # Each write of the card partition is a risk (see write_autoboot): only on a change.
        if read_autoboot(self._autoboot_dir) == wanted:
            return
        self._write_autoboot(self._autoboot_dir, wanted)
        if (found := read_autoboot(self._autoboot_dir)) != wanted:
            raise UpdateError(f"{AUTOBOOT} says {found} after the change, not {wanted}")
        log.info("autoboot.txt: boot %d, try %s", wanted.default, wanted.tryboot)

    def _tree_value(self, name: str, missing: int | None = None) -> int:
        try:
            raw = (self._tree / name).read_bytes()
        except FileNotFoundError:
            if missing is not None:
                return missing
            raise UpdateError(
                f"{self._tree / name}: missing (not booted by the Pi firmware?)"
            ) from None
        if len(raw) != 4:
            raise UpdateError(f"{self._tree / name}: {len(raw)} bytes, not a 32-bit integer")
        return int.from_bytes(raw, "big")


class DirectorySlots:
    """The slots as files under `root`, for hosts and tests; host_firmware plays the firmware.

    `root/autoboot.txt` (same format), `root/slot-A/{boot,root}.img`, the one-shot flag
    `root/tryboot`, and `root/booted` ("A 0": slot, 1 in a try boot) that the firmware
    writes at each start. A reboot writes `root/reboot-requested` and calls `on_reboot`,
    which ends the appliance; the launcher then "boots" again.
    """

    def __init__(self, root: Path, *, on_reboot: Callable[[], None] = lambda: None) -> None:
        self.root = root
        self._on_reboot = on_reboot
        root.mkdir(parents=True, exist_ok=True)
        if not (root / AUTOBOOT).exists():
            write_atomically(root / AUTOBOOT, autoboot_bytes(Autoboot(2, 3)))

    def booted(self) -> Slot:
        """The slot the launcher started (A when nothing played the firmware)."""
        return self._booted()[0]

    def trying(self) -> bool:
        """Whether the launcher started this boot as the one-shot try of the [tryboot] slot.

        As on the Pi, a commit in this boot ends it: the booted slot is then the default.
        """
        slot, trying = self._booted()
        return trying and read_autoboot(self.root).tryboot == BOOT_PARTITIONS[slot]

    def inactive(self) -> Slot:
        """The slot not running."""
        return other(self.booted())

    def writer(self) -> SlotWriter:
        """The inactive slot's image files."""
        folder = self.slot_dir(self.inactive())
        return FileSlotWriter({"boot": folder / "boot.img", "root": folder / "root.img"}, True)

    def slot_dir(self, slot: Slot) -> Path:
        """Where a slot's images are."""
        return self.root / f"slot-{slot}"

    def arm_try(self) -> None:
        """autoboot.txt: [tryboot] names the inactive slot."""
        booted = self.booted()
        self._write(Autoboot(BOOT_PARTITIONS[booted], BOOT_PARTITIONS[other(booted)]))

    def reboot_to_try(self) -> None:
        """Set the one-shot flag, then reboot."""
        write_atomically(self.root / "tryboot", b"1\n")
        self.reboot()

    def commit(self) -> None:
        """autoboot.txt: the booted slot becomes the default."""
        booted = self.booted()
        self._write(Autoboot(BOOT_PARTITIONS[booted], BOOT_PARTITIONS[other(booted)]))

    def reboot(self) -> None:
        """Ask the launcher for a reboot, and end the appliance."""
        write_atomically(self.root / "reboot-requested", b"1\n")
        self._on_reboot()

    def _write(self, wanted: Autoboot) -> None:
        if read_autoboot(self.root) != wanted:
            write_autoboot(self.root, wanted)

    def _booted(self) -> tuple[Slot, bool]:
        try:
            slot, trying = (self.root / "booted").read_text(encoding="ascii").split()
        except FileNotFoundError:
            return "A", False
        except ValueError:
            raise UpdateError(f"{self.root / 'booted'}: expected 'SLOT 0|1'") from None
        if slot not in SLOTS:
            raise UpdateError(f"{self.root / 'booted'}: no slot {slot!r}")
        return ("A" if slot == "A" else "B"), trying == "1"
