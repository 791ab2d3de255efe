"""The staffed till: the cart, the total, and every staff action around a sale."""

from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout

from appliance.screens.i18n import tr
from appliance.screens.presenter_set import running_presenters
from appliance.screens.staff.approval import StaffApproval
from appliance.screens.staff.dialogs import DiscountDialog, NoSaleDialog, ParkDialog
from appliance.screens.widgets import AppScreen, CartRow


class TillRow(CartRow):
    """A cart line a staff member can touch to choose it (for a void)."""

    selected = BooleanProperty(False)

    def on_touch_down(self, touch: Any) -> bool:
        if not self.collide_point(*touch.pos):
            return False
        if super().on_touch_down(touch):
            return True  # the line's own - and + buttons
        running_presenters().till.select(self.line_id)
        return True


class TillNotice(BoxLayout):
    """A line above the cart, with a button when staff can act on it (`on_action`)."""

    text = StringProperty("")
    action_text = StringProperty("")  # the button's text, "" for no button

    __events__ = ("on_action",)

    def on_action(self) -> None:
        """Default handler: nothing."""


class TillScreen(AppScreen):
    """The cart on the left (or top), the total and the actions beside (or below) it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._park_dialog: ParkDialog | None = None

    def on_pre_enter(self, *_args: Any) -> None:
        presenters = running_presenters()
        presenters.shift.refresh()  # opened or closed elsewhere (a kiosk schedule, the CLI)
        presenters.reprint.refresh_unsure()

    def open_discount(self) -> None:
        """Ask how much off the whole cart."""
        DiscountDialog(self._discount).open()

    def _discount(self, percent: int) -> None:
        till = running_presenters().till
        if not till.needs_approval(percent):
            till.apply_discount(percent)
            return
        StaffApproval(
            reason=tr._("A discount of {percent} % needs a supervisor.").format(percent=percent),
            on_approved=lambda member: till.apply_discount(percent, approver=member),
        ).open()

    def open_no_sale(self) -> None:
        """Ask why the drawer is opened without a sale."""
        NoSaleDialog(running_presenters().till.no_sale).open()

    def open_park(self) -> None:
        """Ask for a name to park the cart under."""
        # Its keyboard is dozens of buttons, slow to build: built once, then reused.
        if self._park_dialog is None:
            self._park_dialog = ParkDialog(running_presenters().till.park)
        self._park_dialog.open()
