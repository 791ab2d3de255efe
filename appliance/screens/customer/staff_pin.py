"""The PIN pad a member of staff types on: masked digits, the refusal, and OK."""

from __future__ import annotations

from typing import Any

from kivy.uix.boxlayout import BoxLayout

from appliance.screens.registry import load_kv_beside


class StaffPinEntry(BoxLayout):
    """Dots for the digits typed, why a PIN was refused, and a keypad; forwards to StaffCheck."""

    def __init__(self, **kwargs: Any) -> None:
        load_kv_beside(__name__)  # its rules are needed before the first one is built
        super().__init__(**kwargs)
