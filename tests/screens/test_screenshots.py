"""Every registered screen at every layout: a screenshot, real pixels, nothing clipped.

Screens come from the registry, so a screen added later is covered without a change here.
Screenshots go to tests/artifacts/<layout>-<screen>.png (and -staff / -contrast variants).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.mark import ParameterSet
from kivy.clock import Clock
from kivy.core.window import Window

from appliance.core.staff import StaffMember
from appliance.core.tender import Tender
from appliance.drivers.sim.lab import TERMINAL_STEPS
from appliance.screens.registry import SCREENS
from appliance.screens.staff import STAFF_SCREENS
from tests.screens.harness import LAYOUTS, Kiosk, open_kiosk
from tests.screens.layout_checks import capture, check_screen, pixels_of

# Three demo products with barcodes: a cart that fills a list without scrolling.
CART = ("4006381333931", "5000112548129", "7613289024044")
SUPERVISOR = StaffMember("S-2", "Sam Supervisor", "supervisor")
# Customer screens a staffed till shows as well (same screen, staff mode around it).
SHARED_WITH_STAFF = frozenset({"payment", "receipt"})
# Screens shown before anything is in the cart (or anyone logged in).
EMPTY_CART = frozenset({"welcome", "staff_login", "locked"})
LOGGED_OUT = frozenset({"staff_login"})
# High contrast with large text on the 7" screen, where large text is tightest.
THEME_LAYOUTS = ("pi7",)
GERMAN_LAYOUT = "pi7"
# Screens shown a second time in a state reached by touching them: screen -> states.
STATES = {"browse": ("keyboard",)}
# Real layout bugs found here, each a reported defect of that screen: shot id -> reason.
KNOWN_BUGS: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Shot:
    """One screen, at one layout, in one mode, in the normal or the accessible theme."""

    layout: str
    mode: str
    screen: str
    accessible: bool = False
    state: str = ""  # "" as the screen comes up, or one of STATES
    language: str = "en"

    @property
    def id(self) -> str:
        """How the test and its screenshot are named."""
        name = f"{self.layout}-{self.screen}" + (f"-{self.state}" if self.state else "")
        if self.mode == "staff" and self.screen not in STAFF_SCREENS:
            name += "-staff"
        name += "-contrast" if self.accessible else ""
        return name + ("" if self.language == "en" else f"-{self.language}")


def modes_of(screen: str) -> tuple[str, ...]:
    """The modes a screen is shown in."""
    if screen in STAFF_SCREENS:
        return ("staff",)
    return ("kiosk", "staff") if screen in SHARED_WITH_STAFF else ("kiosk",)


def all_shots() -> list[Shot]:
    """Grouped by mode and theme, so each app starts once and is resized between shots."""
    shots = []
    for mode in ("kiosk", "staff"):
        screens = [screen for screen in SCREENS if mode in modes_of(screen)]
        for layout in LAYOUTS:
            for screen in screens:
                for state in ("", *STATES.get(screen, ())):
                    shots.append(Shot(layout, mode, screen, state=state))
        # German is longer than English: every screen in German where space is tightest.
        shots += [Shot(GERMAN_LAYOUT, mode, screen, language="de") for screen in screens]
        for layout in THEME_LAYOUTS:
            for screen in screens:
                for state in ("", *STATES.get(screen, ())):
                    shots.append(Shot(layout, mode, screen, True, state))
    return shots


def params() -> list[ParameterSet]:
    """The shots as pytest parameters; known bugs are strict xfails with their reason."""
    found = []
    for shot in all_shots():
        marks = []
        if shot.id in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[shot.id]))
        found.append(pytest.param(shot, id=shot.id, marks=marks))
    return found


class Kiosks:
    """One app per mode and theme on the shared window, resized between shots.

    Resizing a running app is what a tablet turned on its side does, so it is fair game.
    The accessible theme comes from the configuration, as a kiosk would be set up.
    """

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._key: tuple[str, bool] | None = None
        self._stack = ExitStack()
        self._kiosk: Kiosk | None = None

    def get(self, shot: Shot) -> Kiosk:
        """The app for the shot's mode and theme, at its layout."""
        key = (shot.mode, shot.accessible)
        if key != self._key or self._kiosk is None:
            self.close()
            width, height = LAYOUTS[shot.layout]
            screen = {
                "mode": shot.mode,
                "width": width,
                "height": height,
                "high_contrast": shot.accessible,
                "large_text": shot.accessible,
                # No "Are you still there?" while the shots run: every screen is shown as it is.
                "idle_seconds": 3600,
            }
            self._kiosk = self._stack.enter_context(
                open_kiosk(self._tmp.mktemp(shot.mode), screen=screen)
            )
            self._key = key
        kiosk = self._kiosk
        if tuple(Window.size) != LAYOUTS[shot.layout]:
            kiosk.resize(shot.layout)
        return kiosk

    def close(self) -> None:
        """Stop the app on show."""
        self._stack.close()
        self._stack = ExitStack()
        self._kiosk = None
        self._key = None


@pytest.fixture(scope="module")
def kiosks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosks]:
    """The apps the shots run in, one at a time; frames back to back, not paced at 60 Hz."""
    apps = Kiosks(tmp_path_factory)
    paced = Clock._max_fps  # Kivy has no public switch; pacing only makes the shots slower
    Clock._max_fps = 0
    try:
        yield apps
    finally:
        apps.close()
        Clock._max_fps = paced


def prepare(kiosk: Kiosk, shot: Shot) -> None:
    """The least state that makes the screen meaningful, through public methods only."""
    session = kiosk.app.session
    session.reset()
    if session.staff is not None and shot.screen in LOGGED_OUT:
        session.logout()
    if shot.mode == "staff" and shot.screen not in LOGGED_OUT:
        shifts = kiosk.services.app.stores.shifts
        if shifts.current() is None:  # a staffed till sells only in an open shift
            shifts.open(SUPERVISOR.staff_id, {})
        kiosk.app.shift.refresh()
        session.login(SUPERVISOR)
    session.set_language(shot.language)
    if shot.screen in EMPTY_CART:
        return
    for code in CART:
        assert kiosk.app.cart.scan(code), f"demo product {code} not in the cart"
    if shot.screen == "receipt":
        checkout = kiosk.services.app.checkout
        total = checkout.totals().total
        sale = checkout.pay([Tender.cash(total, total)], staff=session.staff_id)
        session.finished(sale.id)


def open_keyboard_and_type(kiosk: Kiosk) -> None:
    """Touch Keyboard, then C, H, O: the on-screen keyboard up and a search running."""
    kiosk.tap_text("Keyboard")
    for letter in "CHO":
        kiosk.tap_text(letter)
    kiosk.wait_for(lambda: kiosk.find_text("CHO"), what="the typed search")


def show(kiosk: Kiosk, shot: Shot) -> Path:
    """Show the screen, let it settle, save its screenshot."""
    prepare(kiosk, shot)
    kiosk.app.session.go(shot.screen)
    kiosk.wait_for_screen(shot.screen)
    if shot.state == "keyboard":
        open_keyboard_and_type(kiosk)
    kiosk.pump(3)  # RecycleView rows and texture sizes settle over a few frames
    path = capture(kiosk, shot.id)
    deck = kiosk.app.deck
    assert deck is not None and deck.current == shot.screen, (
        f"{shot.id}: the screen moved on to {deck.current if deck else None!r} by itself"
    )
    return path


def assert_drawn_cleanly(shot: Shot, path: Path) -> None:
    """Not blank, nothing off the window or cut, targets big enough; failures name all three."""
    pixels = pixels_of(path)
    problems = []
    if pixels.blank:
        problems.append(f"blank: {pixels.colours} colours, {pixels.dominant_share:.1%} one colour")
    findings = check_screen()
    narrow_keys = [f for f in findings if f.kind == "narrow-key"]
    if narrow_keys:
        # Keyboard keys narrower than 48 dp are the keyboard's design; reported, not failed.
        warnings.warn(
            f"{shot.id}: {len(narrow_keys)} keyboard keys under 48 dp wide, e.g. {narrow_keys[0]}",
            stacklevel=1,
        )
    problems += [str(f) for f in findings if f.kind != "narrow-key"]
    where = f"screen {shot.screen!r} at {shot.layout} {LAYOUTS[shot.layout]} in {shot.mode} mode"
    theme = " with high contrast and large text" if shot.accessible else ""
    language = "" if shot.language == "en" else f" in {shot.language}"
    assert not problems, f"{where}{theme}{language} ({path.name}):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("shot", params())
def test_screen_renders_without_clipping(kiosks: Kiosks, shot: Shot) -> None:
    """Real pixels; every text inside the window and its box; every button >= 48 dp."""
    kiosk = kiosks.get(shot)
    assert_drawn_cleanly(shot, show(kiosk, shot))


def test_payment_while_the_terminal_works(kiosks: Kiosks, tmp_path: Path) -> None:
    """The state a customer watches longest: the terminal has the payment (it stays silent)."""
    kiosks.close()  # one app on the window at a time
    with open_kiosk(tmp_path, screen={"idle_seconds": 3600}) as kiosk:
        emulator = kiosk.services.app.lab.terminal if kiosk.services.app.lab else None
        assert emulator is not None
        emulator.script(TERMINAL_STEPS["timeout"])  # no answer until it is cancelled
        prepare(kiosk, Shot("pi7", "kiosk", "payment"))
        kiosk.app.session.go("payment")
        kiosk.wait_for_screen("payment")
        kiosk.app.payment.pay_card()  # what the Card button does
        kiosk.wait_for(lambda: kiosk.app.payment.state == "waiting", what="the terminal")
        for layout in ("pi7", "tablet", "portrait"):
            kiosk.resize(layout)
            shot = Shot(layout, "kiosk", "payment", state="waiting")
            path = capture(kiosk, shot.id)
            assert kiosk.app.deck is not None and kiosk.app.deck.current == "payment"
            assert_drawn_cleanly(shot, path)
