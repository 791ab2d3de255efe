"""A checkout scale on a pty that answers the Mettler Toledo 8217 protocol as a real one does.

The real adapter (appliance.drivers.serial_scale, pyserial) opens the pty's stable
symlink and asks it `W` and `Z`; this side answers `STX 01.250 CR` or `STX ? <status> CR`
from the state a test (or `appliance sim weigh` / `sim scale ...`) sets. Standard
library only. Thread-safe: one thread of its own answers, tests set state from any thread.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import tty

from appliance.core.closing import Closing
from appliance.drivers.serial_scale import (
    ALWAYS_ONE,
    CENTRE_OF_ZERO,
    CR,
    MOTION,
    OUTSIDE_ZERO_RANGE,
    OVER_CAPACITY,
    STX,
    UNDER_ZERO,
    WEIGH,
    ZERO,
)
from appliance.drivers.sim.scanner import _Symlinked

log = logging.getLogger(__name__)

CAPACITY_GRAMS = 15_000  # a 15 kg POS scale
DIVISION_GRAMS = 5  # its display steps (e-value) below 6 kg; we keep one step for simplicity
# Zero capture range: a scale zeroes only a platter within +-2 % of capacity of its zero.
ZERO_RANGE_GRAMS = CAPACITY_GRAMS * 2 // 100
POLL_SECONDS = 0.05


class SimScale(Closing):
    """A 15 kg Toledo 8217 scale behind a pty; `port` is the path to configure.

    State: `put(grams)` sets a stable load; `motion()`, `underload()`, `overload()` make
    the scale say so until `clear()` (or the next `put`). `settle_after(n)` answers motion
    to the next n weight requests, then the load. `silent = True` stops all answers.
    `requests` records every command byte received, for tests to assert the wire.
    """

    def __init__(self, *, link_name: str = "usb-Sim_Toledo_8217_Scale_0001-if00") -> None:
        self._link = _Symlinked("serial/by-id", link_name, "sim-scale-")
        self._lock = threading.Lock()
        self._gross = 0  # grams on the load cell
        self._zero = 0  # where the last zeroing put zero
        self._condition = ""  # "", "motion", "underload" or "overload"
        self._settle_after = 0
        self.silent = False
        self.requests: list[bytes] = []
        self._closed = False
        self._master = self._slave = -1
        self.pty_path = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.replug()

    @property
    def port(self) -> str:
        """The stable path to configure as the scale's port."""
        return str(self._link.link)

    def put(self, grams: int) -> None:
        """A stable load of `grams` on the platter (0: empty); clears any condition."""
        with self._lock:
            self._gross = self._zero + grams
            self._condition = ""
            self._settle_after = 0

    def motion(self) -> None:
        """The platter moves until clear() or put()."""
        self._set("motion")

    def underload(self) -> None:
        """The scale reads below zero until clear() or put()."""
        self._set("underload")

    def overload(self) -> None:
        """The load is over capacity until clear() or put()."""
        self._set("overload")

    def clear(self) -> None:
        """Back to the stable load as it was."""
        self._set("")

    def settle_after(self, requests: int) -> None:
        """Answer motion to the next `requests` weight requests, then the load."""
        with self._lock:
            self._settle_after = requests

    def state(self) -> dict[str, object]:
        """What the scale shows now, for `appliance sim` answers."""
        with self._lock:
            return {"grams": self._gross - self._zero, "condition": self._condition or "stable"}

    def answer_to(self, command: bytes) -> bytes:
        """The frame this scale sends for one command byte (b"" for none)."""
        with self._lock:
            if command == WEIGH:
                return self._weight_answer()
            if command == ZERO:
                return self._zero_answer()
        return b""  # the 8217 protocol has no answer for an unknown command

    def _set(self, condition: str) -> None:
        with self._lock:
            self._condition = condition
            self._settle_after = 0

    def _status_bits(self) -> int:
        net = self._gross - self._zero
        bits = ALWAYS_ONE
        moving = self._condition == "motion" or self._settle_after > 0
        if moving:
            bits |= MOTION
        if self._condition == "overload" or net > CAPACITY_GRAMS:
            bits |= OVER_CAPACITY
        if self._condition == "underload" or net < 0:
            bits |= UNDER_ZERO
        if abs(self._gross) > ZERO_RANGE_GRAMS:
            bits |= OUTSIDE_ZERO_RANGE
        if net == 0 and not moving:
            bits |= CENTRE_OF_ZERO
        return bits

    def _weight_answer(self) -> bytes:
        bits = self._status_bits()
        if self._settle_after > 0:
            self._settle_after -= 1
        if bits & (MOTION | OVER_CAPACITY | UNDER_ZERO):
            return STX + b"?" + bytes([bits]) + CR
        net = self._gross - self._zero
        return STX + f"{net // 1000:02d}.{net % 1000:03d}".encode("ascii") + CR

    def _zero_answer(self) -> bytes:
        bits = self._status_bits()
        # Zeroing needs a stable platter within the zero capture range (DIVA manual, Z).
        if not bits & (MOTION | OVER_CAPACITY) and abs(self._gross) <= ZERO_RANGE_GRAMS:
            self._zero = self._gross
            if self._condition == "underload":
                self._condition = ""
        return STX + b"?" + bytes([self._status_bits()]) + CR

    def _serve(self, master: int, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], POLL_SECONDS)
                if not ready:
                    continue
                data = os.read(master, 64)
            except OSError:
                return  # closed under us
            for byte in data:
                command = bytes([byte & 0x7F])
                self.requests.append(command)
                if self.silent:
                    continue
                frame = self.answer_to(command)
                if frame:
                    try:
                        os.write(master, frame)
                    except OSError:
                        return

    def unplug(self) -> None:
        """Pull the cable: the pty hangs up under the adapter and the by-id link goes."""
        self._link.unlink()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            # Joined before the fds close: a new pty may reuse their numbers.
            thread.join(2.0)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        self.pty_path = ""

    def replug(self) -> None:
        """Plug in again: a new pty behind the same stable link, the load as it was."""
        if self._closed:
            raise OSError("the simulated scale is closed")
        self.unplug()
        master, slave = os.openpty()
        # Raw, so the line discipline neither echoes our answers nor turns CR into LF.
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self.pty_path = os.ttyname(slave)
        self._link.point_at(self.pty_path)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(master, self._stop), name="sim-scale", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop answering, close the pty and delete the temp folder; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.unplug()
        self._link.remove()
