"""A host stand-in for the Pi firmware over DirectorySlots: pick the slot, start, reboot on request.

`python -m appliance.update.host_firmware ROOT -- CMD...` "boots" as the firmware does
(appliance.update.slots): it reads ROOT/autoboot.txt and the one-shot flag ROOT/tryboot,
clears the flag before starting (so any end of that run comes back on the default slot),
writes ROOT/booted, and runs CMD. When CMD exits after writing ROOT/reboot-requested it
boots again; otherwise its exit status is the launcher's. SIGTERM or SIGINT to the
launcher is passed on to CMD, and the launcher ends with it.

CMD sees APPLIANCE_SLOT (A or B) and APPLIANCE_SLOT_DIR. A slot's root.img that starts
with a line `appliance-release VERSION` makes APPLIANCE_RELEASE that version: the release
the "image" in that slot carries, as /etc/appliance-release does on a device. A try of a
slot whose image names no release does not start: like a kernel that never comes up, the
board resets and, the flag being gone, the default slot boots (a slot with no image at
all, on a developer's machine, still starts when it is the default).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from appliance.update.slots import (
    AUTOBOOT,
    BOOT_PARTITIONS,
    Autoboot,
    Slot,
    autoboot_bytes,
    fsync_dir,
    read_autoboot,
    slot_of,
    write_atomically,
)

log = logging.getLogger(__name__)

RELEASE_TAG = b"appliance-release "


def firmware_boot(root: Path) -> tuple[Slot, bool]:
    """Choose the slot of this start as the firmware does, and record it in ROOT/booted.

    A ROOT without autoboot.txt is a fresh card: slot A is the default.
    """
    root.mkdir(parents=True, exist_ok=True)
    if not (root / AUTOBOOT).exists() and not (root / (AUTOBOOT + ".new")).exists():
        write_atomically(root / AUTOBOOT, autoboot_bytes(Autoboot(BOOT_PARTITIONS["A"])))
    autoboot = read_autoboot(root)
    flag = root / "tryboot"
    trying = flag.exists() and autoboot.tryboot is not None
    if flag.exists():
        flag.unlink()  # cleared before the "firmware" starts: the try happens once
        fsync_dir(root)
    partition = autoboot.tryboot if trying and autoboot.tryboot is not None else autoboot.default
    slot = slot_of(partition, BOOT_PARTITIONS)
    write_atomically(root / "booted", f"{slot} {int(trying)}\n".encode("ascii"))
    return slot, trying


def slot_release(root: Path, slot: Slot) -> str:
    """The release a slot's root image names on its first line, or ""."""
    try:
        with open(root / f"slot-{slot}" / "root.img", "rb") as image:
            head = image.readline(128)
    except OSError:
        return ""
    if not head.startswith(RELEASE_TAG):
        return ""
    return head[len(RELEASE_TAG) :].decode("ascii", "replace").strip()


def run(root: Path, command: Sequence[str]) -> int:
    """Boot and run `command` until it exits without asking for a reboot; its exit status."""
    while True:
        (root / "reboot-requested").unlink(missing_ok=True)
        slot, trying = firmware_boot(root)
        env = dict(os.environ, APPLIANCE_SLOT=slot, APPLIANCE_SLOT_DIR=str(root / f"slot-{slot}"))
        if release := slot_release(root, slot):
            env["APPLIANCE_RELEASE"] = release
        elif trying:
            log.info("slot %s does not boot (its image names no release): reset", slot)
            continue
        log.info("booting slot %s%s", slot, " (the one-shot try)" if trying else "")
        status, stopped = _run_forwarding_stop(command, env)
        if stopped or not (root / "reboot-requested").exists():
            return status


def _run_forwarding_stop(command: Sequence[str], env: dict[str, str]) -> tuple[int, bool]:
    """Run one "boot" of `command`; SIGTERM or SIGINT to the launcher goes on to it.

    Returns its exit status and whether it was stopped (a stopped board stays off).
    """
    stopped: list[int] = []
    children: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopped.append(signum)
        for child in children:
            child.send_signal(signum)

    # Installed before the start, so a stop in between is not lost.
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        children.append(subprocess.Popen(list(command), env=env))
        if stopped:
            children[0].send_signal(stopped[0])
        status = children[0].wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status, bool(stopped)


def main(argv: Sequence[str] | None = None) -> int:
    """`ROOT -- CMD...`."""
    logging.basicConfig(level=logging.INFO, format="host firmware: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m appliance.update.host_firmware ROOT -- CMD...", file=sys.stderr)
        return 2
    return run(Path(args[0]), args[2:])


if __name__ == "__main__":
    sys.exit(main())
