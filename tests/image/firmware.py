"""The Raspberry Pi bootloader's A/B slot choice, played by the harness before each boot.

qemu's virt board has no Pi firmware, so before every power-on or reset the harness does
what the firmware's documentation says it does (raspberrypi/documentation:
computers/config_txt/autoboot.adoc, computers/raspberry-pi/bootflow-2711.adoc "Fail-safe
OS updates (TRYBOOT)", computers/configuration/device-tree.adoc "Firmware parameters"):

- it reads autoboot.txt from the card's first FAT partition: `boot_partition` in `[all]`,
  and the `[tryboot]` section's, which counts only when the tryboot flag is set;
  `tryboot_a_b=1` makes the firmware read the chosen partition's usual config.txt rather
  than tryboot.txt, so a try without it is a card the harness refuses to boot;
- the flag is set by `reboot "0 tryboot"`, through the image's appliance_tryboot module
  (image/kmod), and cleared by the bootloader before it starts anything: a try happens once,
  and any later reset, crash or power cut boots the default partition again. The kernel
  prints the command as it restarts, and the module says it was asked; the virt board has no
  firmware for the module to reach, so its word that it was asked stands for the mailbox
  call, and a restart without it (no module, or one that did not load) sets no flag;
- it loads kernel, initrd and cmdline.txt from the chosen partition, and tells the OS what
  it chose in the device tree: /chosen/bootloader/tryboot and .../partition (32-bit).

Written apart from the appliance's own autoboot.txt code on purpose: a shared bug would
agree with itself.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

AUTOBOOT_PARTITION = 1  # the bootloader reads autoboot.txt from the first FAT partition
AUTOBOOT_READ = 512  # bytes of autoboot.txt the bootloader reads
TRYBOOT_RESTART = "reboot: Restarting system with command '0 tryboot'"
TRYBOOT_ASKED = "appliance_tryboot: tryboot asked"


@dataclass(frozen=True, slots=True)
class BootChoice:
    """What the bootloader decided for one boot."""

    partition: int
    tryboot: bool


def choose(autoboot: str, *, tryboot: bool) -> BootChoice:
    """The partition to boot, from autoboot.txt's text and the tryboot flag."""
    section = "all"
    settings: dict[tuple[str, str], str] = {}
    for raw in autoboot[:AUTOBOOT_READ].splitlines():
        line = raw.split("#", 1)[0].strip()
        if found := re.fullmatch(r"\[(\w+)\]", line):
            section = found[1]
        elif "=" in line:
            key, _, value = line.partition("=")
            settings[(section, key.strip())] = value.strip()
    partition = int(settings.get(("all", "boot_partition"), "1"))
    if tryboot and ("tryboot", "boot_partition") in settings:
        partition = int(settings[("tryboot", "boot_partition")])
    if tryboot and settings.get(("all", "tryboot_a_b")) != "1":
        raise AssertionError("a try without tryboot_a_b=1: the firmware would want tryboot.txt")
    return BootChoice(partition, tryboot)


def asked_for_tryboot(console: str) -> bool:
    """Whether the boot whose console this is ended with `reboot "0 tryboot"`, passed on."""
    return TRYBOOT_RESTART in console and TRYBOOT_ASKED in console


def device_tree(base: Path, choice: BootChoice, out: Path) -> Path:
    """`base` (qemu's own DTB for the machine) with /chosen/bootloader as the firmware sets it."""
    source = subprocess.run(
        ["dtc", "-q", "-I", "dtb", "-O", "dts", str(base)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # A second root node merges into the first (dtc's usual overlay of source files).
    source += (
        "\n/ {\n\tchosen {\n\t\tbootloader {\n"
        f"\t\t\ttryboot = <{int(choice.tryboot)}>;\n"
        f"\t\t\tpartition = <{choice.partition}>;\n"
        "\t\t};\n\t};\n};\n"
    )
    subprocess.run(
        ["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(out), "-"],
        input=source,
        text=True,
        check=True,
    )
    return out
