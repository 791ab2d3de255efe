"""Scanner simulators: a serial scanner on a pty, a keyboard-wedge scanner on uinput.

Both sit on the far side of the real transport, so the real adapters (pyserial, evdev)
read them exactly as they read hardware. Both expose a stable path (a symlink, like
/dev/serial/by-id/... and /dev/input/by-id/...) that survives unplug() and replug().
SimScanner needs only the standard library; evdev is imported only by the HID parts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import tty
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.core.closing import Closing

if TYPE_CHECKING:
    from evdev import UInput

    from appliance.drivers.keymaps import Layout

UINPUT_NODE = "/dev/uinput"


class _Symlinked:
    """A temp folder holding one stable symlink to whatever node is current."""

    def __init__(self, subdir: str, link_name: str, prefix: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix=prefix))
        link_dir = self._dir / subdir
        link_dir.mkdir(parents=True)
        self.link = link_dir / link_name

    def point_at(self, target: str) -> None:
        """Point the link at `target` (the device re-enumerated)."""
        self.unlink()
        self.link.symlink_to(target)

    def unlink(self) -> None:
        """Remove the link, as udev does when the device goes."""
        self.link.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the folder."""
        shutil.rmtree(self._dir, ignore_errors=True)


class SimScanner(Closing):
    """A serial barcode scanner: writes codes into a pty the adapter opens with pyserial.

    `port` is a stable symlink to the current /dev/pts/N. `unplug()` closes the pty and
    removes the link; `replug()` makes a new pty behind the same link. Pass
    `plugged=False` to start with the port missing. Single-threaded; no threads of its own.
    """

    def __init__(
        self,
        *,
        terminator: str = "\r",
        prefix: str = "",
        suffix: str = "",
        link_name: str = "usb-Sim_Barcode_Scanner_0001-if00",
        plugged: bool = True,
    ) -> None:
        self.terminator = terminator
        self.prefix = prefix
        self.suffix = suffix
        self._link = _Symlinked("serial/by-id", link_name, "sim-scanner-")
        self._master: int | None = None
        self._slave: int | None = None
        self.pty_path = ""
        self._closed = False
        if plugged:
            self.replug()

    @property
    def port(self) -> str:
        """The stable path to configure as the scanner's port."""
        return str(self._link.link)

    @property
    def plugged(self) -> bool:
        """Whether a pty is behind the port now."""
        return self._master is not None

    def scan(self, code: str) -> None:
        """Send one code framed as configured: prefix, code, suffix, terminator."""
        self.write_raw(f"{self.prefix}{code}{self.suffix}{self.terminator}".encode("ascii"))

    def write_raw(self, data: bytes) -> None:
        """Send bytes as they are (garbage, partial lines, several codes at once)."""
        if self._master is None:
            raise OSError("the simulated scanner is unplugged")
        view = memoryview(data)
        while view:
            view = view[os.write(self._master, view) :]

    def unplug(self) -> None:
        """Pull the cable: the pty goes away (the reader gets EIO) and so does the link."""
        self._link.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self.pty_path = ""

    def replug(self) -> None:
        """Plug in again (or for the first time): a new pty behind the same stable link."""
        if self._closed:
            raise OSError("the simulated scanner is closed")
        self.unplug()
        master, slave = os.openpty()
        # Raw mode so the line discipline neither echoes nor turns CR into LF; we keep
        # the slave open so the pty stays configured while the adapter reconnects.
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self.pty_path = os.ttyname(slave)
        self._link.point_at(self.pty_path)

    def close(self) -> None:
        """Unplug and delete the temp folder; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.unplug()
        self._link.remove()


def keystrokes(text: str, layout: Layout, *, enter: bool = True) -> list[tuple[int, int]]:
    """The (key code, value) events a wedge scanner set to `layout` sends to type `text`.

    Raises ValueError for a character the layout cannot type.
    """
    from evdev import ecodes

    from appliance.drivers.keymaps import key_name

    plain: dict[str, tuple[int, bool]] = {}
    for code, chars in layout.keys.items():
        if key_name(code).startswith("KEY_KP"):
            continue  # scanners type on the main block unless set to keypad mode
        for shifted, char in enumerate(chars):
            plain.setdefault(char, (code, bool(shifted)))
    events: list[tuple[int, int]] = []
    for char in text:
        if char in plain:
            code, shift = plain[char]
            modifier = ecodes.KEY_LEFTSHIFT if shift else None
        else:
            altgr = [code for code, typed in layout.altgr.items() if typed == char]
            if not altgr:
                raise ValueError(f"the {layout.name} layout cannot type {char!r}")
            code, modifier = altgr[0], ecodes.KEY_RIGHTALT
        if modifier is not None:
            events.append((modifier, 1))
        events += [(code, 1), (code, 0)]
        if modifier is not None:
            events.append((modifier, 0))
        if code in layout.dead and modifier != ecodes.KEY_RIGHTALT:
            events += [(ecodes.KEY_SPACE, 1), (ecodes.KEY_SPACE, 0)]
    if enter:
        events += [(ecodes.KEY_ENTER, 1), (ecodes.KEY_ENTER, 0)]
    return events


def uinput_available() -> bool:
    """Whether this machine can create virtual input devices (needs /dev/uinput)."""
    try:
        fd = os.open(UINPUT_NODE, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


class SimHidScanner(Closing):
    """A keyboard-wedge scanner as a real input device (uinput), typing in a layout.

    `device` is a stable symlink to the current /dev/input/eventN; `unplug()` destroys
    the input device and `replug()` creates a new one. Needs /dev/uinput (root or the
    uinput group); raises OSError without it.
    """

    def __init__(
        self,
        layout: str = "us",
        *,
        link_name: str = "usb-Sim_Barcode_Scanner_0001-event-kbd",
        plugged: bool = True,
    ) -> None:
        from appliance.drivers.keymaps import LAYOUTS

        self.layout = LAYOUTS[layout]
        self._link = _Symlinked("input/by-id", link_name, "sim-hid-scanner-")
        self._uinput: UInput | None = None
        self._closed = False
        if plugged:
            try:
                self.replug()
            except BaseException:
                self._link.remove()
                raise

    @property
    def device(self) -> str:
        """The stable path to configure as the scanner's device."""
        return str(self._link.link)

    def scan(self, code: str) -> None:
        """Type `code` and Enter, one synchronised report per key event."""
        self.type_events(keystrokes(code, self.layout))

    def type_events(self, events: list[tuple[int, int]]) -> None:
        """Send raw (key code, value) events (keys the layout cannot type, odd sequences)."""
        from evdev import ecodes

        if self._uinput is None:
            raise OSError("the simulated scanner is unplugged")
        for code, value in events:
            self._uinput.write(ecodes.EV_KEY, code, value)
            self._uinput.syn()

    def unplug(self) -> None:
        """Destroy the input device (readers get ENODEV) and remove the link."""
        self._link.unlink()
        if self._uinput is not None:
            with contextlib.suppress(OSError):
                self._uinput.close()
            self._uinput = None

    def replug(self) -> None:
        """Create the input device again behind the same stable link."""
        from evdev import UInput, UInputError, ecodes

        if self._closed:
            raise OSError("the simulated scanner is closed")
        self.unplug()
        keys = {ecodes.KEY_ENTER, ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTALT, ecodes.KEY_SPACE}
        keys |= set(self.layout.keys) | set(self.layout.altgr) | {ecodes.KEY_F1}
        try:
            self._uinput = UInput({ecodes.EV_KEY: sorted(keys)}, name="Sim Barcode Scanner")
        except UInputError as err:
            raise OSError(f"cannot create an input device: {err}") from err
        self._link.point_at(str(self._uinput.device.path))

    def close(self) -> None:
        """Unplug and delete the temp folder; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.unplug()
        self._link.remove()
