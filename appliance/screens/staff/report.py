"""An X or Z report on screen, with Print a copy."""

from __future__ import annotations

from typing import Any

from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from appliance.screens.widgets import AppScreen


class ReportLine(RecycleDataViewBehavior, BoxLayout):
    """A figure of the report, or a section's heading."""

    label = StringProperty("")
    value = StringProperty("")
    heading = BooleanProperty(False)
    state = StringProperty("ok")


class ReportScreen(AppScreen):
    """The report's figures in a list; Print a copy and Back beside it."""

    def on_pre_enter(self, *_args: Any) -> None:
        self.ids.lines.scroll_y = 1  # a new report starts from its top
