"""Scan sounds: the real kiosk offscreen, the scanner on its pty, SDL's dummy audio device."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import wave
from io import BytesIO
from pathlib import Path

import pytest

from appliance.core.barcode import gtin_check_digit
from appliance.core.events import KioskLockChanged
from appliance.screens.scan_sounds import TONES, Tones
from tests.screens.customer_steps import CHOCOLATE, COFFEE, scan_and_wait
from tests.screens.harness import Kiosk, open_kiosk

UNKNOWN = "400000000001" + gtin_check_digit("400000000001")  # valid EAN-13, not sold here
NOT_FOUND = "We could not find this item. Please try again or ask for help."
CLOSED = "This checkout is closed. Please use another checkout."
REPO = Path(__file__).resolve().parents[2]


def played(kiosk: Kiosk) -> dict[str, int]:
    """How many times each answer has been played."""
    return dict(kiosk.app.presenters.scan_sounds.played)


def test_each_item_the_cart_takes_beeps_on_the_audio_device(kiosk: Kiosk) -> None:
    """Two items scanned: two beeps, each started on SDL's mixer, at the default volume."""
    sounds = kiosk.app.presenters.scan_sounds
    assert sounds.tones.loaded
    beep = sounds.tones.sound("accepted")
    assert beep.volume == pytest.approx(0.5)
    scan_and_wait(kiosk, COFFEE, 1)
    assert played(kiosk) == {"accepted": 1, "refused": 0}
    assert sounds.last_state == "play"  # the mixer took it: the dummy device plays it out
    scan_and_wait(kiosk, CHOCOLATE, 2)
    assert played(kiosk) == {"accepted": 2, "refused": 0}


def test_an_unknown_item_gets_the_refusal_tone(kiosk: Kiosk) -> None:
    """A code the catalog does not know: the message, and the low tone instead of the beep."""
    scan_and_wait(kiosk, COFFEE, 1)
    kiosk.scan(UNKNOWN)
    kiosk.wait_for(lambda: kiosk.app.session.message == NOT_FOUND, what="the message")
    assert played(kiosk) == {"accepted": 1, "refused": 1}
    sounds = kiosk.app.presenters.scan_sounds
    assert sounds.last_state == "play"
    assert len(kiosk.app.cart.rows) == 1


def test_input_the_scanner_could_not_read_gets_the_refusal_tone(kiosk: Kiosk) -> None:
    """Garbage on the wire (ScannerInputRejected): the customer hears and reads it did not count."""
    scanner = kiosk.lab.scanner
    assert scanner is not None
    scanner.write_raw(b"\xff\xfe\x01\r")
    kiosk.wait_for(lambda: played(kiosk)["refused"] == 1, what="the refusal tone")
    assert played(kiosk)["accepted"] == 0
    unreadable = "This barcode could not be read. Please scan it again."
    kiosk.wait_for(lambda: kiosk.app.session.message == unreadable, what="the message")


def test_a_scan_on_a_locked_kiosk_gets_the_refusal_tone(kiosk: Kiosk) -> None:
    """The fleet locked the kiosk: the scan is refused in words and in sound."""
    kiosk.services.app.bus.post(KioskLockChanged(True, "cmd-1"))
    kiosk.wait_for_screen("locked")
    kiosk.scan(COFFEE)
    kiosk.wait_for(lambda: kiosk.app.session.message == CLOSED, what="the closed message")
    assert played(kiosk) == {"accepted": 0, "refused": 1}


def test_the_configured_volume_is_the_sounds_volume(tmp_path: Path) -> None:
    """scan_sound_volume = 0.2 is what SDL's mixer is told for both tones."""
    with open_kiosk(tmp_path, screen={"scan_sound_volume": 0.2}) as kiosk:
        tones = kiosk.app.presenters.scan_sounds.tones
        assert tones.sound("accepted").volume == pytest.approx(0.2)
        assert tones.sound("refused").volume == pytest.approx(0.2)
        scan_and_wait(kiosk, COFFEE, 1)
        assert played(kiosk) == {"accepted": 1, "refused": 0}


def test_volume_zero_turns_the_sounds_off(tmp_path: Path) -> None:
    """A staffed till set to 0: nothing is loaded and a scan, taken or refused, is silent."""
    with open_kiosk(tmp_path, screen={"scan_sound_volume": 0}) as kiosk:
        sounds = kiosk.app.presenters.scan_sounds
        scan_and_wait(kiosk, COFFEE, 1)
        kiosk.scan(UNKNOWN)
        kiosk.wait_for(lambda: kiosk.app.session.message == NOT_FOUND, what="the message")
        assert played(kiosk) == {"accepted": 0, "refused": 0}
        assert not sounds.tones.loaded
        assert sounds.tones.sound("accepted") is None


def test_the_two_tones_differ_and_stay_small() -> None:
    """The refusal is longer and lower than the beep; both are a few kilobytes of WAV."""
    accepted, refused = TONES["accepted"], TONES["refused"]
    assert max(f for f, _ in refused.parts) < min(f for f, _ in accepted.parts)
    lengths = {}
    for answer, tone in TONES.items():
        data = tone.wav()
        assert len(data) < 20_000
        with wave.open(BytesIO(data)) as wav:
            lengths[answer] = wav.getnframes() / wav.getframerate()
    assert lengths["accepted"] < 0.1
    assert lengths["refused"] > 0.3


def test_a_folder_the_tones_cannot_be_written_to_leaves_scans_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache cannot be made: one warning, then play() answers nothing and never raises."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="appliance.screens.scan_sounds"):
        tones = Tones(0.5, cache=blocker / "sounds")
        assert not tones.loaded
        assert [tones.play("accepted"), tones.play("refused")] == ["", ""]
    assert len(caplog.records) == 1
    assert "cannot write the tones" in caplog.text


NO_DEVICE = """
import json, logging, sys
from pathlib import Path
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from appliance.screens.scan_sounds import Tones
tones = Tones(0.5, cache=Path(sys.argv[1]))
print(json.dumps({"loaded": tones.loaded, "plays": [tones.play("accepted") for _ in range(3)]}))
"""


def test_without_an_audio_device_the_tones_are_silent_and_harmless(tmp_path: Path) -> None:
    """An SDL audio driver that finds no device (a process of its own: SDL opens audio once):
    the tones do not load, one warning says so, and playing them does nothing."""
    env = {
        **os.environ,
        "SDL_AUDIODRIVER": "no-such-driver",
        "KIVY_AUDIO": "sdl2",
        "KIVY_NO_ARGS": "1",
        "KIVY_NO_CONSOLELOG": "1",
        "KIVY_HOME": str(tmp_path / "kivy"),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", NO_DEVICE, str(tmp_path / "sounds")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "loaded": False,
        "plays": ["", "", ""],
    }
    assert done.stderr.count("scan sounds off: no audio output") == 1
    assert sorted(p.name.split("-")[1] for p in (tmp_path / "sounds").glob("*.wav")) == [
        "accepted",
        "refused",
    ]
