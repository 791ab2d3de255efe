"""Voiding a sale of this shift: choose it from the list, a supervisor approves."""

from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from appliance.screens.i18n import tr
from appliance.screens.presenter_set import running_presenters
from appliance.screens.staff.approval import StaffApproval
from appliance.screens.widgets import AppScreen


class SaleRow(RecycleDataViewBehavior, BoxLayout):
    """A sale of the shift: its receipt, when and how it was paid, its total; touch to choose."""

    sale_id = StringProperty("")
    receipt = StringProperty("")
    detail = StringProperty("")
    amount = StringProperty("")
    note = StringProperty("")
    selected = BooleanProperty(False)

    def on_touch_down(self, touch: Any) -> bool:
        if not self.collide_point(*touch.pos):
            return False
        running_presenters().void.select(self.sale_id)
        return True


class VoidScreen(AppScreen):
    """The shift's sales on the left; the chosen one and Void sale on the right."""

    def void(self) -> None:
        """Void the chosen sale; a supervisor approves unless one is logged in."""
        presenter = running_presenters().void
        if not presenter.needs_approval():
            presenter.void()
            return
        StaffApproval(
            reason=tr._("Voiding {sale} needs a supervisor.").format(sale=presenter.chosen_text),
            on_approved=lambda member: presenter.void(approver=member),
        ).open()
