"""Parked carts: which are waiting, and resuming one."""

from __future__ import annotations

from typing import Any

from kivy.properties import StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from appliance.screens.presenter_set import running_presenters
from appliance.screens.widgets import AppScreen


class ParkedRow(RecycleDataViewBehavior, BoxLayout):
    """One parked cart: its name, when, how many lines, the total, and Resume."""

    park_id = StringProperty("")
    label = StringProperty("")
    when = StringProperty("")
    lines = StringProperty("")
    total = StringProperty("")


class ParkedScreen(AppScreen):
    """The carts put aside on this till, oldest first."""

    def on_pre_enter(self, *_args: Any) -> None:
        running_presenters().parked.refresh()
