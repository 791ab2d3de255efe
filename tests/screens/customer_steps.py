"""Steps the customer-flow tests share: demo codes, card taps, PIN entry, finding rows."""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from appliance.core.barcode import gtin_check_digit
from appliance.drivers.sim.lab import NFC
from appliance.drivers.sim.printer import SimPrinter
from appliance.screens.widgets import CartRow, Keypad
from tests.screens.harness import Kiosk

COFFEE = "4006381333931"
CHOCOLATE = "7613289024044"
WINE = "800032001014" + gtin_check_digit("800032001014")
COFFEE_NAME = "Ground coffee 250 g"
CHOCOLATE_NAME = "Dark chocolate 100 g"
WINE_NAME = "Red wine 0.75 l"

W = TypeVar("W")


def shown(kiosk: Kiosk, cls: type[W]) -> list[W]:
    """The visible widgets of a class on the current screen and its overlays."""
    return [w for w in kiosk.widgets() if isinstance(w, cls) and kiosk.visible(w)]


def scan_and_wait(kiosk: Kiosk, code: str, lines: int) -> None:
    """Scan a code and wait until the cart has `lines` lines."""
    kiosk.scan(code)
    kiosk.wait_for(lambda: len(kiosk.app.cart.rows) == lines, what=f"{lines} cart lines")


def cart_row(kiosk: Kiosk, name: str) -> CartRow:
    """The cart row showing `name`."""
    row: CartRow = kiosk.wait_for(
        lambda: next((row for row in shown(kiosk, CartRow) if row.name == name), None),
        what=f"the cart row of {name}",
    )
    return row


def tap_in(kiosk: Kiosk, parent: Any, text: str) -> None:
    """Tap the visible button showing `text` inside `parent`."""
    found = [w for w in parent.walk(restrict=True) if getattr(w, "text", None) == text]
    found = [w for w in found if kiosk.visible(w)]
    assert found, f"no visible {text!r} in {type(parent).__name__}"
    kiosk.tap(found[0])


def type_pin(kiosk: Kiosk, pin: str) -> None:
    """Type a PIN on the visible keypad and touch OK."""
    keypads = shown(kiosk, Keypad)
    assert len(keypads) == 1, f"expected one keypad on {kiosk.screen!r}, found {len(keypads)}"
    for digit in pin:
        tap_in(kiosk, keypads[0], digit)
    tap_in(kiosk, keypads[0], "OK")


def printer(kiosk: Kiosk) -> SimPrinter:
    """The simulated receipt printer."""
    sim = kiosk.lab.printer
    assert sim is not None
    return sim


def tap_card(kiosk: Kiosk, uid: str) -> None:
    """Hold a card to the simulated NFC reader, pumping frames until the reader read it."""
    kiosk.wait_for(
        lambda: (
            kiosk.lab.nfc_tag is not None
            and any(h.device == NFC and h.state == "ok" for h in kiosk.services.devices.health())
        ),
        timeout=20,
        what="the NFC reader",
    )
    tag = kiosk.lab.nfc_tag
    assert tag is not None
    read: list[bool] = []
    # tap() blocks until the reader has read the card; the reader posts to the bus we pump.
    tapper = threading.Thread(target=lambda: read.append(tag.tap(uid)), daemon=True)
    tapper.start()
    kiosk.wait_for(lambda: not tapper.is_alive(), timeout=15, what=f"card {uid} read")
    assert read == [True], f"the reader did not read card {uid}"
    kiosk.pump(3)
