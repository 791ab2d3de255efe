"""Scanning: the cart with quantities, the running total, and the way to pay."""

from __future__ import annotations

from appliance.screens.widgets import AppScreen


class ShopScreen(AppScreen):
    """The cart while the customer scans."""
