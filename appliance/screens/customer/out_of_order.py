"""Shown while the data partition cannot take a sale: the customer is sent to staff."""

from __future__ import annotations

from appliance.screens.widgets import AppScreen


class OutOfOrderScreen(AppScreen):
    """This checkout is out of order; staff read why in the small print."""
