"""Paying: the methods on offer, the card terminal's progress, and what to do when it fails."""

from __future__ import annotations

from typing import Any

from appliance.screens.customer.panes import Pane, PaneSwitcher
from appliance.screens.customer.staff_pin import StaffPinEntry
from appliance.screens.widgets import AppScreen

__all__ = ["Pane", "PaneSwitcher", "PaymentScreen", "StaffPinEntry"]  # used by the kv rules


class PaymentScreen(AppScreen):
    """One pane per state of `app.payment`; the total stays at the top."""

    def on_kv_post(self, base_widget: Any) -> None:
        self.ids.panes.collect()
