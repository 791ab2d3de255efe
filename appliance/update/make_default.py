"""The root side of a slot change: autoboot.txt's default becomes the booted slot.

On the image the appliance runs unprivileged and the card partition stays mounted
read-only: a FAT mounted read-write has its boot sector rewritten at each mount, and the
card partition is where the bootloader reads autoboot.txt and where a field tech's
provisioning file goes, which root applies. So the appliance asks systemd to run this as
root (`appliance-autoboot.service`, the only unit polkit lets it start) and reads the
result back. Nothing comes from the caller: arming a try and committing are the same
change (the booted slot the default, the other the try), read off the device tree.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance.errors import UpdateError
from appliance.update.slots import Autoboot, PiSlots

log = logging.getLogger(__name__)

UNIT = "appliance-autoboot.service"
CARD = Path("/boot/autoboot")


def ask_root(folder: Path, wanted: Autoboot) -> None:
    """Have the root helper make the change (PiSlots reads it back against `wanted`)."""
    log.info("asking %s for autoboot.txt boot %d, try %s", UNIT, wanted.default, wanted.tryboot)
    try:
        subprocess.run(["systemctl", "start", UNIT], check=True, timeout=60, capture_output=True)
    except (OSError, subprocess.SubprocessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        raise UpdateError(f"{UNIT} failed: {err} {detail.decode(errors='replace')}") from err


def make_default(slots: PiSlots, remount: Callable[[Sequence[str]], None], card: Path) -> None:
    """Write the change with the card partition read-write for just that long."""
    remount(("mount", "-o", "remount,rw", str(card)))
    try:
        slots.commit()
    finally:
        remount(("mount", "-o", "remount,ro", str(card)))


def _run(argv: Sequence[str]) -> None:
    subprocess.run(list(argv), check=True, timeout=30)


def main() -> int:
    """`python -m appliance.update.make_default`, as root from appliance-autoboot.service."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        make_default(PiSlots(autoboot_dir=CARD), _run, CARD)
    except (UpdateError, OSError, subprocess.SubprocessError) as err:
        log.error("autoboot.txt not changed: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
