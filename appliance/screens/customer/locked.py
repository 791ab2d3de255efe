"""Shown while the fleet has closed this checkout; scans are refused with a message."""

from __future__ import annotations

from appliance.screens.widgets import AppScreen


class LockedScreen(AppScreen):
    """This checkout is closed: the customer is sent to another one."""
