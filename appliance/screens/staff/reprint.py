"""Reprints: type or scan a receipt number, or pick a receipt, a report or an unsure paper."""

from __future__ import annotations

from typing import Any

from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from appliance.screens.widgets import AppScreen


class ReprintRow(RecycleDataViewBehavior, BoxLayout):
    """A paper to print again: what and when, its button, and for an unsure one "It printed"."""

    key = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")
    action = StringProperty("")
    other = StringProperty("")


class ReprintScreen(AppScreen):
    """The number pad on one side; the shift's receipts, the reports or unsure papers beside."""

    def on_pre_enter(self, *_args: Any) -> None:
        self.ids.number.value = ""
