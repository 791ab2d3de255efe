"""Refunds: find the sale by its receipt, choose what comes back, pay it back."""

from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from appliance.screens.i18n import tr
from appliance.screens.presenter_set import running_presenters
from appliance.screens.staff.approval import StaffApproval
from appliance.screens.staff.refund_presenter import RefundTo
from appliance.screens.widgets import AppScreen


class RefundRow(RecycleDataViewBehavior, BoxLayout):
    """One line of the sale: what was sold and refunded, and how many come back now."""

    line_no = NumericProperty(0)
    name = StringProperty("")
    detail = StringProperty("")
    amount = StringProperty("")
    chosen = StringProperty("0")
    can_more = BooleanProperty(False)
    can_less = BooleanProperty(False)


class RefundScreen(AppScreen):
    """Receipt lookup first; then the sale's lines and the refund."""

    def on_pre_enter(self, *_args: Any) -> None:
        running_presenters().refund.start()
        self.ids.number.value = ""

    def refund(self, to: RefundTo) -> None:
        """Refund in cash or to the card; a large refund asks a supervisor first."""
        presenter = running_presenters().refund
        if not presenter.needs_approval():
            presenter.commit(to)
            return
        StaffApproval(
            reason=tr._("A refund of {amount} needs a supervisor.").format(
                amount=presenter.total_text
            ),
            on_approved=lambda member: presenter.commit(to, approver=member),
        ).open()
