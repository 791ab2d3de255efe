"""Thank you: the QR receipt if chosen; back to the start after a while or on a touch."""

from __future__ import annotations

from typing import Any

from appliance.screens.presenter_set import running_presenters
from appliance.screens.widgets import AppScreen


class ThanksScreen(AppScreen):
    """Any touch ends it at once; otherwise the receipt presenter's timer does."""

    def on_touch_down(self, touch: Any) -> bool:
        super().on_touch_down(touch)
        running_presenters().receipt.done()
        return True
