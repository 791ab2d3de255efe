"""The till's answer to a scan in sound: a short beep when it is taken, a low tone when not.

Two tones are written once as WAV files into Kivy's home and preloaded through Kivy's
SoundLoader (SDL_mixer), so answering a scan is one `play()` on the main thread: a call
that queues the sound for the mixer thread and returns within microseconds. Where there
is no audio device the tones load as silent sounds; that is logged once, and scans go on.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from appliance.core.cart import Cart
from appliance.core.devices import BarcodeScanned, ScannerInputRejected
from appliance.core.events import EventBus
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.staff.refund_presenter import SCREEN as REFUND

log = logging.getLogger(__name__)

Answer = Literal["accepted", "refused"]
RATE = 22_050  # samples a second: plenty for tones under 3 kHz, half the bytes of 44.1 kHz
FADE_S = 0.004  # a ramp at each end, so a tone starts and stops without a click
LEVEL = 0.8  # of full scale: headroom for the mixer at volume 1
# Screens that take a scan for a look-up of their own and answer it in words (the refund
# screen finds a receipt): the cart did not take it, yet it was not refused either.
OWN_ANSWER_SCREENS = frozenset({REFUND})


@dataclass(frozen=True, slots=True)
class Tone:
    """A sound as (frequency in Hz, seconds) parts played one after another."""

    parts: tuple[tuple[float, float], ...]

    def wav(self) -> bytes:
        """The tone as a 16-bit mono WAV file."""
        samples = bytearray()
        for frequency, seconds in self.parts:
            count = round(seconds * RATE)
            ramp = max(1, round(FADE_S * RATE))
            for i in range(count):
                envelope = min(1.0, i / ramp, (count - 1 - i) / ramp)
                value = LEVEL * envelope * math.sin(2 * math.pi * frequency * i / RATE)
                samples += struct.pack("<h", round(value * 32767))
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(bytes(samples))
        return out.getvalue()


# A checkout's beep is high and short; the refusal is lower, longer and falls, so the two
# are told apart without looking, and by someone who hears high tones poorly.
TONES: dict[Answer, Tone] = {
    "accepted": Tone(((2400.0, 0.07),)),
    "refused": Tone(((440.0, 0.14), (311.0, 0.22))),
}


def default_cache() -> Path:
    """Where the tones are written: a folder in Kivy's home (the appliance's state)."""
    from kivy import kivy_home_dir

    return Path(kivy_home_dir) / "sounds"


class Tones:
    """The two tones, preloaded; main thread. Silent and harmless without an audio device.

    `volume` is 0 to 1 of full volume; 0 loads nothing and plays nothing.
    """

    def __init__(self, volume: float, cache: Path | None = None) -> None:
        self._cache = cache
        self._sounds: dict[Answer, Any] = {}
        self._volume = 0.0
        self._failed = False  # a failure is logged once, not at every scan
        self.set_volume(volume)

    @property
    def volume(self) -> float:
        """0 to 1 of full volume; 0 is off."""
        return self._volume

    @property
    def loaded(self) -> bool:
        """Both tones are ready to play on an audio device."""
        return len(self._sounds) == len(TONES)

    def sound(self, answer: Answer) -> Any:
        """The Kivy Sound that plays `answer`, or None when there is none."""
        return self._sounds.get(answer)

    def set_volume(self, volume: float) -> None:
        """Change the volume now; the tones are loaded the first time it is above 0."""
        self._volume = min(1.0, max(0.0, volume))
        if self._volume > 0 and not self._sounds and not self._failed:
            self._load()
        for sound in self._sounds.values():
            sound.volume = self._volume

    def play(self, answer: Answer) -> str:
        """Start `answer` and return at once; the Sound's state after the call ("play")."""
        sound = self._sounds.get(answer)
        if sound is None or self._volume <= 0:
            return ""
        try:
            sound.play()
        except Exception:  # a sound must never cost a scan
            self._fail("scan sound failed to play", exc_info=True)
            return ""
        return str(sound.state)

    def _load(self) -> None:
        from kivy.core.audio import SoundLoader

        try:
            paths = {answer: self._write(answer, tone) for answer, tone in TONES.items()}
        except OSError as err:
            self._fail("scan sounds off: cannot write the tones: %s", err)
            return
        sounds: dict[Answer, Any] = {}
        for answer, path in paths.items():
            sound = SoundLoader.load(str(path))
            # Without an audio device SDL_mixer still hands back a Sound, of length 0.
            if sound is None or not sound.length:
                self._fail("scan sounds off: no audio output to play %s on", path.name)
                return
            sounds[answer] = sound
        self._sounds = sounds
        log.info("scan sounds on at volume %.2f", self._volume)

    def _write(self, answer: Answer, tone: Tone) -> Path:
        data = tone.wav()
        folder = self._cache or default_cache()
        # Named by content: a changed tone gets a new file, an unchanged one is reused.
        path = folder / f"scan-{answer}-{hashlib.sha256(data).hexdigest()[:12]}.wav"
        if path.exists():
            return path
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, path)  # whole or absent, even with two processes at it
        return path

    def _fail(self, message: str, *args: object, exc_info: bool = False) -> None:
        if not self._failed:
            log.warning(message, *args, exc_info=exc_info)
        self._failed = True
        self._sounds = {}


class ScanSounds:
    """Plays the beep for each scan the cart takes and the low tone for each refused; main thread.

    A scan is refused when the cart does not take it (an unknown item, a code that is not
    a barcode, a cart held for payment or parking, a locked kiosk, a screen that takes no
    scans) or the scanner could not read it (ScannerInputRejected). Scans on a screen that
    looks them up itself (OWN_ANSWER_SCREENS) are answered there, in words.

    `scan_arrives` must be subscribed to BarcodeScanned before every screen's handler and
    `scan_routed` after them all (see `appliance.screens.presenter_set`): the verdict is
    whether the cart changed in between.
    """

    def __init__(
        self,
        tones: Tones,
        *,
        cart: Callable[[], Cart],
        screen: Callable[[], str],
    ) -> None:
        self.tones = tones
        self._cart = cart
        self._screen = screen
        self._before: tuple[Cart, str] | None = None
        self.played: dict[Answer, int] = dict.fromkeys(TONES, 0)  # answers played, by kind
        self.last_state = ""  # the Kivy Sound's state just after the last play(): "play"

    @classmethod
    def for_screens(cls, ctx: ScreenContext) -> ScanSounds:
        """Tones at the configured volume, judging by the checkout's cart and the screen."""
        tones = Tones(ctx.settings.screen.scan_sound_volume)
        return cls(tones, cart=lambda: ctx.checkout.cart, screen=lambda: ctx.session.screen)

    def listen_before(self, bus: EventBus) -> None:
        """Subscribe the first half: call before any screen subscribes to scans."""
        bus.subscribe(BarcodeScanned, self.scan_arrives)
        bus.subscribe(ScannerInputRejected, lambda _event: self.answer("refused"))

    def listen_after(self, bus: EventBus) -> None:
        """Subscribe the second half: call once every screen has subscribed."""
        bus.subscribe(BarcodeScanned, self.scan_routed)

    def scan_arrives(self, _event: BarcodeScanned) -> None:
        """Note the cart and the screen before the scan is routed."""
        self._before = (self._cart(), self._screen())

    def scan_routed(self, _event: BarcodeScanned) -> None:
        """The scan went where the screen wanted it: beep if the cart took it, else the low tone."""
        before, self._before = self._before, None
        if before is None:
            return
        cart, screen = before
        if screen in OWN_ANSWER_SCREENS:
            return
        # Every change makes a new (immutable) cart: a scan the cart took replaced it.
        self.answer("accepted" if self._cart() is not cart else "refused")

    def answer(self, answer: Answer) -> None:
        """Play `answer` (when the volume is above 0)."""
        if self.tones.volume <= 0:
            return
        self.last_state = self.tones.play(answer)
        self.played[answer] += 1
