"""The store's calls for help, answered from the staff till or tablet where the role allows."""

from __future__ import annotations

from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.recycleview.views import RecycleDataViewBehavior

from appliance.screens.widgets import AppScreen


class HelpCallRow(RecycleDataViewBehavior, BoxLayout):
    """One call: the kiosk and why, what it saw and when, the approval's state, the actions."""

    call_id = StringProperty("")
    title = StringProperty("")
    detail = StringProperty("")
    status = StringProperty("")
    urgent = BooleanProperty(False)
    action0 = StringProperty("")
    action1 = StringProperty("")
    action2 = StringProperty("")
    label0 = StringProperty("")
    label1 = StringProperty("")
    label2 = StringProperty("")


class HelpCallsScreen(AppScreen):
    """The open calls of the store's kiosks, urgent first, then oldest first."""
