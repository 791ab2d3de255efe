"""What to do once systemd gave up restarting the appliance: reboot once, never in a loop.

A reboot resets the USB bus, GPIO and the GPU, which a wedged scanner, printer or display
often needs. But a fault a reboot does not fix (a bad configuration, a crash on every
start) would turn rebooting into a loop that shows customers nothing and wears the card.
So the appliance reboots for a failure at most once per `min_hours`, remembered on the
data partition, and otherwise shows a notice for staff and stays put.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MARK_NAME = "last-failure-reboot"
EX_CONFIG = 78  # sysexits.h; `appliance run` exits with it for a configuration a reboot won't fix
MIN_HOURS = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Reboot or not, and why (for the journal and the notice)."""

    reboot: bool
    reason: str


def decide(state_dir: Path, exit_status: str, *, now: float, min_hours: float) -> Verdict:
    """The verdict for a failure whose main process ended with `exit_status` (systemd's text)."""
    if exit_status == str(EX_CONFIG):
        return Verdict(False, "the configuration is wrong; a reboot would read it again")
    mark = state_dir / MARK_NAME
    try:
        last = float(mark.read_text(encoding="utf-8").strip() or 0)
    except FileNotFoundError:
        last = 0.0
    except (OSError, ValueError) as err:
        return Verdict(False, f"the last reboot for a failure cannot be read ({err})")
    if last and now - last < min_hours * 3600:
        minutes = round((now - last) / 60)
        return Verdict(False, f"a reboot for a failure {minutes} min ago did not help")
    return Verdict(True, "the appliance failed to start repeatedly; rebooting once")


def remember_reboot(state_dir: Path, now: float | None = None) -> bool:
    """Write down this reboot before it happens (durably); False when it cannot be written.

    Without the mark the next failure could not tell, so the caller must not reboot then.
    """
    mark = state_dir / MARK_NAME
    temp = mark.with_suffix(".tmp")
    try:
        with temp.open("w", encoding="utf-8") as out:
            out.write(f"{time.time() if now is None else now}\n")
            out.flush()
            os.fsync(out.fileno())
        temp.replace(mark)
    except OSError as err:
        log.error("cannot remember the reboot in %s: %s", mark, err)
        return False
    return True


def notice_for(verdict: Verdict, result: str) -> str:
    """The notice's text: a title for customers, then what staff need to know."""
    return (
        "This checkout is out of order\n"
        "Please ask a member of staff for help.\n\n"
        f"The appliance stopped ({result or 'failed'}) and was not restarted: {verdict.reason}."
        " See `journalctl -u appliance` or `appliance status`."
    )
