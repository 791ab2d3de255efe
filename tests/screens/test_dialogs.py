"""Dialogs over the screens close at once: the next tap goes to what they uncover."""

from __future__ import annotations

from kivy.core.window import Window
from kivy.uix.modalview import ModalView

from appliance.screens.i18n import tr
from appliance.screens.staff.dialogs import NoSaleDialog
from tests.screens.harness import Kiosk
from tests.screens.test_staff_flows import dialog, log_in_cashier


def test_a_closed_dialog_is_gone_before_the_next_tap(staff_till: Kiosk) -> None:
    """Kivy fades a ModalView out over 0.1 s and it takes every touch until then: a tap on
    the till just after a dialog closed was lost (and a test tapping quickly failed)."""
    log_in_cashier(staff_till)
    staff_till.tap_text(tr._("No sale"))
    no_sale = dialog(NoSaleDialog)
    cancel = next(
        w for w in no_sale.walk(restrict=True) if getattr(w, "text", "") == tr._("Cancel")
    )

    cancel.dispatch("on_release")

    assert no_sale.parent is None, "the closed dialog still covers the till"
    assert not [w for w in Window.children if isinstance(w, ModalView)]
    staff_till.tap_text(tr._("Parked carts"))
    staff_till.wait_for_screen("parked")
