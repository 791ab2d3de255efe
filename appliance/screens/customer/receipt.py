"""The receipt choice after paying: print, QR code, or none."""

from __future__ import annotations

from appliance.screens.widgets import AppScreen


class ReceiptScreen(AppScreen):
    """Print is off (with the reason) while the printer cannot print."""
