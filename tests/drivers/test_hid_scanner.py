"""Keyboard-wedge scanners: layouts and key decoding, and EvdevScanner's read loop.

Three levels: the pure decoder (every layout rule); the adapter's loop over an evdev
replay (real `struct input_event` records through a pipe, parsed by evdev's own reader);
and the adapter over a real uinput device, which needs /dev/uinput and is skipped
without it.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from evdev import InputDevice, InputEvent, ecodes
from evdev.eventio import EventIO
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.devices import BarcodeScanned, ScannerInputRejected
from appliance.core.events import EventBus
from appliance.device_settings import HidScannerSettings
from appliance.drivers.hid_scanner import EvdevScanner
from appliance.drivers.keymaps import DE, US, KeyDecoder, KeyLine, decode_keys
from appliance.drivers.registry import adapter_for
from appliance.drivers.sim.scanner import SimHidScanner, keystrokes, uinput_available
from tests.drivers.bus_probe import BusProbe
from tests.drivers.presentations import ScriptedClock, the_issue_script

K = ecodes
PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
needs_uinput = pytest.mark.skipif(
    not uinput_available(), reason="hardware: needs /dev/uinput, which this machine does not offer"
)


def press(*codes: int) -> list[tuple[int, int]]:
    """Key down and up for each code in turn."""
    return [event for code in codes for event in ((code, 1), (code, 0))]


def shifted(code: int) -> list[tuple[int, int]]:
    """One key with left shift held."""
    return [(K.KEY_LEFTSHIFT, 1), *press(code), (K.KEY_LEFTSHIFT, 0)]


def altgr(code: int) -> list[tuple[int, int]]:
    """One key with AltGr held."""
    return [(K.KEY_RIGHTALT, 1), *press(code), (K.KEY_RIGHTALT, 0)]


ENTER = press(K.KEY_ENTER)


# --- the decoder: pure ------------------------------------------------------------------


def test_us_digits_letters_and_shift() -> None:
    """US: digits, lower case, Shift for capitals and !@#."""
    events = press(K.KEY_4, K.KEY_0, K.KEY_A, K.KEY_Y, K.KEY_Z)
    events += shifted(K.KEY_A) + shifted(K.KEY_1) + shifted(K.KEY_2) + ENTER
    assert decode_keys(events, US) == [KeyLine("40ayzA!@")]


def test_de_swaps_y_and_z() -> None:
    """German QWERTZ: the key labelled Y on a US board types z, and Z types y."""
    events = press(K.KEY_Y, K.KEY_Z) + shifted(K.KEY_Y) + shifted(K.KEY_Z) + ENTER
    assert decode_keys(events, DE) == [KeyLine("zyZY")]
    assert decode_keys(events, US) == [KeyLine("yzYZ")]


def test_de_shifted_digits() -> None:
    """German shifted digits: ! " § $ % & / ( ) =."""
    keys = (K.KEY_1, K.KEY_2, K.KEY_3, K.KEY_4, K.KEY_5, K.KEY_6, K.KEY_7, K.KEY_8, K.KEY_9)
    events = [e for code in (*keys, K.KEY_0) for e in shifted(code)] + ENTER
    assert decode_keys(events, DE) == [KeyLine('!"§$%&/()=')]
    assert decode_keys(events, US) == [KeyLine("!@#$%^&*()")]


@pytest.mark.parametrize(
    ("layout", "events", "text"),
    [
        (US, press(K.KEY_MINUS), "-"),
        (US, press(K.KEY_DOT), "."),
        (US, press(K.KEY_SLASH), "/"),
        (US, shifted(K.KEY_EQUAL), "+"),
        (US, press(K.KEY_SPACE), " "),
        (US, shifted(K.KEY_5), "%"),
        (US, shifted(K.KEY_4), "$"),
        (DE, press(K.KEY_SLASH), "-"),
        (DE, press(K.KEY_DOT), "."),
        (DE, shifted(K.KEY_7), "/"),
        (DE, press(K.KEY_RIGHTBRACE), "+"),
        (DE, press(K.KEY_SPACE), " "),
        (DE, shifted(K.KEY_SLASH), "_"),
        (DE, altgr(K.KEY_Q), "@"),
        (DE, altgr(K.KEY_MINUS), "\\"),
        (DE, press(K.KEY_BACKSLASH), "#"),
    ],
)
def test_barcode_punctuation(layout: Any, events: list[tuple[int, int]], text: str) -> None:
    """The characters Code 39 / Code 128 carry (- . / + space $ %) in each layout."""
    assert decode_keys([*events, *ENTER], layout) == [KeyLine(text)]


def test_keypad_types_the_same_in_every_layout() -> None:
    """Keypad digits and operators do not depend on the layout; KP Enter ends the line."""
    events = press(K.KEY_KP1, K.KEY_KP9, K.KEY_KPMINUS, K.KEY_KPDOT, K.KEY_KPSLASH, K.KEY_KPPLUS)
    events += press(K.KEY_KPENTER)
    assert decode_keys(events, US) == decode_keys(events, DE) == [KeyLine("19-./+")]


def test_de_dead_key_then_space_types_the_accent() -> None:
    """^ and ` are dead keys in German: followed by space they type themselves."""
    events = press(K.KEY_GRAVE, K.KEY_SPACE, K.KEY_A) + shifted(K.KEY_EQUAL)
    events += press(K.KEY_SPACE, K.KEY_SPACE) + ENTER
    assert decode_keys(events, DE) == [KeyLine("^a` ")]


def test_de_dead_key_before_a_letter_types_both() -> None:
    """A dead key followed by a letter gives both (no composed accents in barcodes)."""
    assert decode_keys(press(K.KEY_GRAVE, K.KEY_A) + ENTER, DE) == [KeyLine("^a")]


def test_unknown_keys_are_reported_not_typed() -> None:
    """A key the layout has no character for (F1, Ctrl+]) is named in `unknown`."""
    events = press(K.KEY_1, K.KEY_F1)
    events += [(K.KEY_LEFTCTRL, 1), *press(K.KEY_RIGHTBRACE), (K.KEY_LEFTCTRL, 0)]
    events += press(K.KEY_2) + ENTER
    assert decode_keys(events, US) == [KeyLine("12", ("KEY_F1", "KEY_LEFTCTRL+KEY_RIGHTBRACE"))]


def test_us_right_alt_is_plain_alt() -> None:
    """The US layout has no AltGr: right Alt + Q is not a character."""
    assert decode_keys(altgr(K.KEY_Q) + ENTER, US) == [KeyLine("", ("KEY_RIGHTALT+KEY_Q",))]


def test_auto_repeat_and_key_up_type_nothing() -> None:
    """Only key-down events type; repeats (value 2) and releases do not."""
    events = [(K.KEY_1, 1), (K.KEY_1, 2), (K.KEY_1, 2), (K.KEY_1, 0), *ENTER]
    assert decode_keys(events, US) == [KeyLine("1")]


def test_lock_keys_are_ignored() -> None:
    """Caps/Num Lock presses carry no character."""
    events = press(K.KEY_NUMLOCK, K.KEY_KP5, K.KEY_CAPSLOCK, K.KEY_A) + ENTER
    assert decode_keys(events, US) == [KeyLine("5a")]


def test_each_enter_ends_a_line_and_a_partial_line_is_kept() -> None:
    """Two codes are two lines; what follows the last Enter waits for its own Enter."""
    decoder = KeyDecoder(US)
    lines = [decoder.feed(c, v) for c, v in press(K.KEY_1, K.KEY_ENTER, K.KEY_2, K.KEY_ENTER)]
    assert [line for line in lines if line] == [KeyLine("1"), KeyLine("2")]
    for code, value in press(K.KEY_3):
        assert decoder.feed(code, value) is None
    assert decoder.feed(K.KEY_ENTER, 1) == KeyLine("3")


def test_reset_forgets_a_partial_line_and_held_shift() -> None:
    """After a loss, a half-typed code and a held Shift do not leak into the next code."""
    decoder = KeyDecoder(US)
    for code, value in [(K.KEY_LEFTSHIFT, 1), *press(K.KEY_A)]:
        decoder.feed(code, value)
    decoder.reset()
    assert decode_keys([], US) == []
    for code, value in press(K.KEY_B):
        decoder.feed(code, value)
    assert decoder.feed(K.KEY_ENTER, 1) == KeyLine("b")


def test_over_long_line_is_cut_and_flagged() -> None:
    """A stuck scanner cannot grow the line without bound."""
    line = decode_keys(press(*[K.KEY_7] * 50) + ENTER, US, max_length=10)[0]
    assert line == KeyLine("7" * 10, too_long=True)


def test_a_layout_cannot_type_what_it_lacks() -> None:
    """keystrokes() refuses a character the layout has no key for."""
    with pytest.raises(ValueError, match="cannot type"):
        keystrokes("é", US)


@pytest.mark.parametrize("layout", [US, DE], ids=["us", "de"])
def test_every_printable_ascii_character_round_trips(layout: Any) -> None:
    """Typed by a scanner set to the layout, every printable ASCII character decodes back."""
    assert decode_keys(keystrokes(PRINTABLE_ASCII, layout), layout) == [KeyLine(PRINTABLE_ASCII)]


@given(
    st.sampled_from([US, DE]),
    st.text(alphabet=PRINTABLE_ASCII, max_size=60),
)
def test_codes_round_trip_through_keystrokes(layout: Any, code: str) -> None:
    """Any printable ASCII code typed in a layout decodes to itself in that layout."""
    assert decode_keys(keystrokes(code, layout), layout) == [KeyLine(code)]


def test_a_wrong_layout_garbles_the_code() -> None:
    """A scanner set to US read as German: y/z swap and - becomes ß (why layout matters)."""
    assert decode_keys(keystrokes("ZY-12", US), DE) == [KeyLine("YZß12")]


# --- the adapter's loop over an evdev replay ---------------------------------------------

EVENT = struct.Struct("llHHi")  # struct input_event on 64-bit Linux: timeval, type, code, value


class ReplayDevice(EventIO):
    """One opened event device: evdev's own reader parses the records from a pipe."""

    def __init__(self, owner: ReplayScanner) -> None:
        self._owner = owner
        self.fd, self.write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        self.grabbed = False
        self.closed = False

    def grab(self) -> None:
        """EVIOCGRAB: fails with EBUSY when someone else holds the device."""
        if self._owner.held_elsewhere:
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.grabbed = True

    def ungrab(self) -> None:
        """Release the grab."""
        self.grabbed = False

    def read(self) -> Iterator[InputEvent]:
        """evdev's read; a device that is gone answers ENODEV, as the kernel does."""
        if self._owner.unplugged_device is self:
            raise OSError(errno.ENODEV, "No such device")
        return super().read()

    def close(self) -> None:
        """Close both ends of the pipe."""
        if not self.closed:
            self.closed = True
            os.close(self.fd)
            if self.write_fd >= 0:
                os.close(self.write_fd)


class ReplayScanner:
    """An evdev replay of a wedge scanner: a device node that exists while plugged in."""

    def __init__(self, folder: Path, layout: Any) -> None:
        self.device = str(folder / "usb-Replay_Scanner-event-kbd")
        self.layout = layout
        self.opened: list[ReplayDevice] = []
        self.unplugged_device: ReplayDevice | None = None
        self.held_elsewhere = False
        self.replug()

    def open(self, path: str) -> ReplayDevice:
        """The adapter's opener: like evdev.InputDevice(path)."""
        if path != self.device or not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        device = ReplayDevice(self)
        self.opened.append(device)
        return device

    @property
    def current(self) -> ReplayDevice:
        """The device the adapter opened last."""
        return self.opened[-1]

    def type_events(self, events: list[tuple[int, int]]) -> None:
        """Write key events, each followed by SYN_REPORT, as a keyboard does."""
        records = b"".join(
            EVENT.pack(0, 0, ecodes.EV_KEY, code, value)
            + EVENT.pack(0, 0, ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
            for code, value in events
        )
        os.write(self.current.write_fd, records)

    def scan(self, code: str) -> None:
        """Type `code` and Enter in the scanner's layout."""
        self.type_events(keystrokes(code, self.layout))

    def unplug(self) -> None:
        """The node disappears and the open device answers ENODEV."""
        os.remove(self.device)
        self.unplugged_device = self.current
        os.write(self.current.write_fd, b"\0" * EVENT.size)  # wake the reader's select()

    def replug(self) -> None:
        """The node is back."""
        Path(self.device).touch()


def _scanner_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("scanner-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test leaves no scanner thread and no open file descriptor behind."""
    before = set(os.listdir("/proc/self/fd"))
    yield
    assert not _scanner_threads()
    assert set(os.listdir("/proc/self/fd")) <= before


@pytest.fixture
def probe() -> BusProbe:
    """An event bus with a recorder."""
    return BusProbe(EventBus())


@pytest.fixture
def replay(tmp_path: Path) -> ReplayScanner:
    """A plugged-in replayed scanner set to the US layout."""
    return ReplayScanner(tmp_path, US)


@pytest.fixture
def open_scanner(probe: BusProbe) -> Iterator[Callable[..., EvdevScanner]]:
    """Makes, opens and (at the end) closes EvdevScanners on the probe's bus."""
    made: list[EvdevScanner] = []

    def make(
        device: str,
        layout: Literal["us", "de"] = "us",
        clock: Callable[[], float] = time.monotonic,
        open_device: Callable[[str], Any] = InputDevice,
    ) -> EvdevScanner:
        settings = HidScannerSettings(device=device, layout=layout)
        scanner = EvdevScanner("hid", settings, clock=clock, open_device=open_device)
        made.append(scanner)
        scanner.open(probe.bus)
        return scanner

    yield make
    for scanner in made:
        scanner.close()


def test_replay_scan_arrives_and_device_is_grabbed(
    replay: ReplayScanner, probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """Typed keys become BarcodeScanned; the device is grabbed while open, released on close."""
    scanner = open_scanner(replay.device, open_device=replay.open)
    health = probe.wait_health("ok").health
    assert health.address == replay.device
    assert replay.current.grabbed
    replay.scan("ABC-123/4")
    assert probe.wait_scan("ABC-123/4") == BarcodeScanned("hid", "ABC-123/4")
    scanner.close()
    assert not replay.current.grabbed
    assert replay.current.closed


def test_replay_de_layout(
    tmp_path: Path, probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """A scanner set to German, read with the German layout, gives the code unchanged."""
    replay = ReplayScanner(tmp_path, DE)
    open_scanner(replay.device, layout="de", open_device=replay.open)
    probe.wait_health("ok")
    replay.scan("Zy-4/5+6")
    probe.wait_scan("Zy-4/5+6")


def test_replay_unknown_key_and_wrong_layout_are_rejected(
    replay: ReplayScanner, probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """A function key, or a character that is not ASCII, is rejected with a useful reason."""
    open_scanner(replay.device, layout="de", open_device=replay.open)
    probe.wait_health("ok")
    replay.type_events(press(K.KEY_1, K.KEY_F1) + ENTER)
    first = probe.wait_for(ScannerInputRejected)
    assert "keys the de layout cannot type: KEY_F1" in first.reason
    replay.scan("1-2")  # US keystrokes: '-' is KEY_MINUS, which German reads as ß
    second = probe.wait_for(ScannerInputRejected, lambda e: e is not first)
    assert "not printable ASCII" in second.reason
    assert "is the scanner set to de?" in second.reason
    replay.type_events(keystrokes("42", DE))
    probe.wait_scan("42")


def test_replay_each_presentation_counts_and_a_held_code_counts_once(
    replay: ReplayScanner, probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """The wedge scanner shares the rule: 0.35 s and 0.6 s rhythms count every item, a code
    typed at 20 Hz for 2 s counts once (each read's instant from the script)."""
    script = the_issue_script()
    clock = ScriptedClock(script.instants)
    open_scanner(replay.device, clock=clock, open_device=replay.open)
    probe.wait_health("ok")
    for code in script.codes:
        replay.scan(code)
    probe.wait_scan(script.expected[-1])
    assert clock.calls == len(script.reads)
    assert [e.code for e in probe.of(BarcodeScanned)] == script.expected


def test_replay_unplug_and_replug(
    replay: ReplayScanner, probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """ENODEV means offline ("device unplugged"); the node coming back means ok again."""
    open_scanner(replay.device, open_device=replay.open)
    probe.wait_health("ok")
    replay.type_events(press(K.KEY_1))  # half a code, lost with the device
    mark = len(probe.events)
    replay.unplug()
    probe.wait_health("offline", "device unplugged", after=mark)
    probe.wait_health("offline", f"{replay.device} not found", after=mark)
    assert replay.opened[0].closed
    mark = len(probe.events)
    replay.replug()
    probe.wait_health("ok", after=mark)
    assert replay.current.grabbed
    replay.scan("2")
    probe.wait_scan("2")
    assert [e.code for e in probe.of(BarcodeScanned)] == ["2"]


def test_replay_device_grabbed_by_someone_else(
    replay: ReplayScanner, probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """If another program holds the grab, health says so and the adapter keeps trying."""
    replay.held_elsewhere = True
    open_scanner(replay.device, open_device=replay.open)
    probe.wait_health("offline", "grabbed by another program")
    assert replay.opened[0].closed
    replay.held_elsewhere = False
    probe.wait_health("ok")


def test_missing_device_is_offline_not_found(
    tmp_path: Path, probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """The real evdev.InputDevice opener on a path that does not exist: offline, not found."""
    missing = str(tmp_path / "usb-Nothing-event-kbd")
    scanner = open_scanner(missing)
    probe.wait_health("offline", f"{missing} not found")
    scanner.close()
    assert scanner.health.reason == "closed"
    scanner.close()


def test_registry_builds_the_hid_scanner() -> None:
    """The registry's "hid_scanner" kind is this adapter, with the configured layout."""
    settings = HidScannerSettings(device="/dev/input/by-id/usb-X-event-kbd", layout="de")
    scanner = adapter_for("hid_scanner").from_settings("hid", settings, {})
    assert isinstance(scanner, EvdevScanner)
    assert scanner.layout is DE
    assert scanner.address == "/dev/input/by-id/usb-X-event-kbd"


# --- the adapter over a real uinput device -----------------------------------------------


@needs_uinput
@pytest.mark.parametrize("layout", ["us", "de"])
def test_uinput_scan_in_layout_and_grabbed(
    layout: Literal["us", "de"], probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """A real input device: codes typed in each layout arrive; nobody else can grab it."""
    with SimHidScanner(layout) as sim:
        open_scanner(sim.device, layout=layout)
        probe.wait_health("ok")
        sim.scan("Zy-4/5+6 .A")
        probe.wait_scan("Zy-4/5+6 .A")
        other = InputDevice(sim.device)
        try:
            with pytest.raises(OSError):
                other.grab()
        finally:
            other.close()


@needs_uinput
def test_uinput_ungrabbed_on_close(probe: BusProbe) -> None:
    """After close() the device is free for others again."""
    with SimHidScanner("us") as sim:
        scanner = EvdevScanner("hid", HidScannerSettings(device=sim.device))
        scanner.open(probe.bus)
        probe.wait_health("ok")
        scanner.close()
        other = InputDevice(sim.device)
        try:
            other.grab()
            other.ungrab()
        finally:
            other.close()


@needs_uinput
def test_uinput_unplug_and_replug(
    probe: BusProbe, open_scanner: Callable[..., EvdevScanner]
) -> None:
    """Destroying the input device is offline; a new one behind the link is ok again."""
    with SimHidScanner("us") as sim:
        open_scanner(sim.device)
        probe.wait_health("ok")
        mark = len(probe.events)
        sim.unplug()
        probe.wait_health("offline", after=mark)
        mark = len(probe.events)
        sim.replug()
        probe.wait_health("ok", after=mark)
        sim.scan("123")
        probe.wait_scan("123")
