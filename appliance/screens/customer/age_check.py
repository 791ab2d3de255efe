"""The pause before paying for age-restricted items: a member of staff checks the ID."""

from __future__ import annotations

from appliance.screens.customer.staff_pin import StaffPinEntry
from appliance.screens.widgets import AppScreen

__all__ = ["AgeCheckScreen", "StaffPinEntry"]  # the kv rule builds a StaffPinEntry


class AgeCheckScreen(AppScreen):
    """Explains the wait; staff approve with a badge or a PIN on the keypad."""
