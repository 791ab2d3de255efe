"""Keyboard layouts for keyboard-wedge scanners, and decoding key events into lines of text.

A wedge scanner "types" each code as key presses in the layout it was configured for;
the appliance must decode them with the same layout (US and German QWERTZ here).
Everything here is pure: key codes are evdev's (`evdev.ecodes`), nothing is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from evdev import ecodes

KEY_DOWN, KEY_UP, KEY_HOLD = 1, 0, 2
ENTER_KEYS = frozenset({ecodes.KEY_ENTER, ecodes.KEY_KPENTER})
SHIFT_KEYS = frozenset({ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT})
# Keys that make a character mean something else (Ctrl+], Alt+...): not text.
OTHER_MODIFIERS = frozenset(
    {ecodes.KEY_LEFTCTRL, ecodes.KEY_RIGHTCTRL, ecodes.KEY_LEFTALT, ecodes.KEY_LEFTMETA}
)
# State keys a scanner may press that carry no character; caps lock is not emulated
# (scanners are configured not to depend on it).
IGNORED_KEYS = frozenset({ecodes.KEY_CAPSLOCK, ecodes.KEY_NUMLOCK, ecodes.KEY_SCROLLLOCK})


@dataclass(frozen=True, slots=True)
class Layout:
    """What each key types: `keys[code] = (plain, shifted)`, AltGr characters, dead keys.

    A dead key types nothing by itself; followed by space it types its own character
    (how a wedge scanner sends ^ or ` on a German layout).
    """

    name: str
    keys: Mapping[int, tuple[str, str]]
    altgr: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    dead: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class KeyLine:
    """One line typed by a scanner: its text, keys the layout could not type, overflow."""

    text: str
    unknown: tuple[str, ...] = ()
    too_long: bool = False


def key_name(code: int) -> str:
    """evdev's name of a key code, e.g. "KEY_F1" (aliases joined with "/")."""
    name = ecodes.KEY.get(code, f"key {code}")
    return name if isinstance(name, str) else "/".join(name)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "1234567890"
_DIGIT_KEYS = [getattr(ecodes, f"KEY_{d}") for d in _DIGITS]

# The number pad types the same on every layout, which is why scanners offer a
# "keypad digits" mode; Num Lock is assumed on.
_KEYPAD: dict[int, tuple[str, str]] = {
    **{getattr(ecodes, f"KEY_KP{d}"): (d, d) for d in _DIGITS},
    ecodes.KEY_KPMINUS: ("-", "-"),
    ecodes.KEY_KPPLUS: ("+", "+"),
    ecodes.KEY_KPDOT: (".", "."),
    ecodes.KEY_KPSLASH: ("/", "/"),
    ecodes.KEY_KPASTERISK: ("*", "*"),
    ecodes.KEY_SPACE: (" ", " "),
}


def _letters(swap_y_z: bool) -> dict[int, tuple[str, str]]:
    keys = {}
    for letter in _LETTERS:
        typed = {"y": "z", "z": "y"}.get(letter, letter) if swap_y_z else letter
        keys[getattr(ecodes, f"KEY_{letter.upper()}")] = (typed, typed.upper())
    return keys


def _digits(shifted: str) -> dict[int, tuple[str, str]]:
    return {
        key: (plain, shift) for key, plain, shift in zip(_DIGIT_KEYS, _DIGITS, shifted, strict=True)
    }


US = Layout(
    "us",
    MappingProxyType(
        {
            **_letters(swap_y_z=False),
            **_digits("!@#$%^&*()"),
            **_KEYPAD,
            ecodes.KEY_MINUS: ("-", "_"),
            ecodes.KEY_EQUAL: ("=", "+"),
            ecodes.KEY_LEFTBRACE: ("[", "{"),
            ecodes.KEY_RIGHTBRACE: ("]", "}"),
            ecodes.KEY_BACKSLASH: ("\\", "|"),
            ecodes.KEY_102ND: ("\\", "|"),
            ecodes.KEY_SEMICOLON: (";", ":"),
            ecodes.KEY_APOSTROPHE: ("'", '"'),
            ecodes.KEY_GRAVE: ("`", "~"),
            ecodes.KEY_COMMA: (",", "<"),
            ecodes.KEY_DOT: (".", ">"),
            ecodes.KEY_SLASH: ("/", "?"),
        }
    ),
)

DE = Layout(
    "de",
    MappingProxyType(
        {
            **_letters(swap_y_z=True),
            **_digits('!"§$%&/()='),
            **_KEYPAD,
            ecodes.KEY_MINUS: ("ß", "?"),
            ecodes.KEY_EQUAL: ("´", "`"),
            ecodes.KEY_LEFTBRACE: ("ü", "Ü"),
            ecodes.KEY_RIGHTBRACE: ("+", "*"),
            ecodes.KEY_BACKSLASH: ("#", "'"),
            ecodes.KEY_102ND: ("<", ">"),
            ecodes.KEY_SEMICOLON: ("ö", "Ö"),
            ecodes.KEY_APOSTROPHE: ("ä", "Ä"),
            ecodes.KEY_GRAVE: ("^", "°"),
            ecodes.KEY_COMMA: (",", ";"),
            ecodes.KEY_DOT: (".", ":"),
            ecodes.KEY_SLASH: ("-", "_"),
        }
    ),
    altgr=MappingProxyType(
        {
            ecodes.KEY_Q: "@",
            ecodes.KEY_E: "€",
            ecodes.KEY_M: "µ",
            ecodes.KEY_2: "²",
            ecodes.KEY_3: "³",
            ecodes.KEY_7: "{",
            ecodes.KEY_8: "[",
            ecodes.KEY_9: "]",
            ecodes.KEY_0: "}",
            ecodes.KEY_MINUS: "\\",
            ecodes.KEY_RIGHTBRACE: "~",
            ecodes.KEY_102ND: "|",
        }
    ),
    dead=frozenset({ecodes.KEY_GRAVE, ecodes.KEY_EQUAL}),
)

LAYOUTS: Mapping[str, Layout] = MappingProxyType({US.name: US, DE.name: DE})


class KeyDecoder:
    """Turns key events into lines, one line per Enter. Not thread-safe: one per reader.

    `feed(code, value)` takes an EV_KEY event (value 1 down, 0 up, 2 auto-repeat) and
    returns a KeyLine when Enter ends a line. A line longer than `max_length` is cut
    there and flagged, so a stuck key cannot grow memory without bound.
    """

    def __init__(self, layout: Layout, max_length: int = 128) -> None:
        self.layout = layout
        self.max_length = max_length
        self._held: set[int] = set()
        self._chars: list[str] = []
        self._unknown: list[str] = []
        self._too_long = False
        self._dead: str | None = None

    def feed(self, code: int, value: int) -> KeyLine | None:
        """Take one key event; returns the finished line on Enter, else None."""
        if value == KEY_UP:
            self._held.discard(code)
            return None
        if value != KEY_DOWN:
            return None  # auto-repeat: a scanner never holds a key long enough to mean it
        if code in SHIFT_KEYS or code in OTHER_MODIFIERS or code == ecodes.KEY_RIGHTALT:
            self._held.add(code)
            return None
        if code in ENTER_KEYS:
            return self._finish()
        if code not in IGNORED_KEYS:
            self._type(code)
        return None

    def reset(self) -> None:
        """Forget the partial line and held modifiers (after the device was lost)."""
        self._held.clear()
        self._clear_line()

    def _type(self, code: int) -> None:
        shift = bool(self._held & SHIFT_KEYS)
        right_alt = ecodes.KEY_RIGHTALT in self._held
        altgr = right_alt and bool(self.layout.altgr)
        # Without AltGr characters (US), right Alt is just Alt.
        other = self._held & OTHER_MODIFIERS or (right_alt and not altgr)
        if other or (altgr and code not in self.layout.altgr) or code not in self.layout.keys:
            held = [key_name(k) for k in sorted(self._held) if k not in SHIFT_KEYS]
            self._unknown.append("+".join([*held, key_name(code)]))
            return
        char = self.layout.altgr[code] if altgr else self.layout.keys[code][shift]
        if self._dead is not None:
            dead, self._dead = self._dead, None
            # Dead key + space types the accent itself; anything else types both.
            self._append(dead if char == " " else dead + char)
        elif code in self.layout.dead and not altgr:
            self._dead = char
        else:
            self._append(char)

    def _append(self, text: str) -> None:
        room = self.max_length - len(self._chars)
        if len(text) > room:
            self._too_long = True
        self._chars.extend(text[: max(0, room)])

    def _finish(self) -> KeyLine:
        if self._dead is not None:
            self._append(self._dead)
        line = KeyLine("".join(self._chars), tuple(self._unknown), self._too_long)
        self._clear_line()
        return line

    def _clear_line(self) -> None:
        self._chars.clear()
        self._unknown.clear()
        self._too_long = False
        self._dead = None


def decode_keys(
    events: Iterable[tuple[int, int]], layout: Layout, max_length: int = 128
) -> list[KeyLine]:
    """Decode (key code, value) pairs into the lines they type; a trailing partial is dropped."""
    decoder = KeyDecoder(layout, max_length)
    return [line for code, value in events if (line := decoder.feed(code, value)) is not None]
