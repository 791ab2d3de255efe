"""The attract screen: pick a language, scan or touch to start."""

from __future__ import annotations

from kivy.app import App
from kivy.metrics import dp
from kivy.properties import StringProperty
from kivy.uix.layout import Layout

from appliance.screens.widgets import AppScreen, TouchButton


class LanguageButton(TouchButton):
    """Switches the screen to one language, named in that language."""

    code = StringProperty("")


class WelcomeScreen(AppScreen):
    """Shown between customers; a scan here starts the sale at once."""

    def add_languages(self, holder: Layout) -> None:
        """One button per configured language."""
        for code in App.get_running_app().session.languages:
            holder.add_widget(LanguageButton(code=code, size_hint_x=None, width=dp(160)))
