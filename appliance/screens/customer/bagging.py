"""The pause when the bagging area shows what nothing scanned explains: staff clear it."""

from __future__ import annotations

from appliance.screens.customer.staff_pin import StaffPinEntry
from appliance.screens.widgets import AppScreen

__all__ = ["BaggingScreen", "StaffPinEntry"]  # the kv rule builds a StaffPinEntry


class BaggingScreen(AppScreen):
    """Says what happened and that help is coming; staff vouch, then choose what to do."""
