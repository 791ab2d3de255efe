"""Opening a shift: count the float note by note and coin by coin, then open."""

from __future__ import annotations

from typing import Any

from appliance.screens.presenter_set import running_presenters
from appliance.screens.registry import load_kv_beside
from appliance.screens.widgets import AppScreen


class ShiftOpenScreen(AppScreen):
    """The count on the left, the keypad, the total and Open shift on the right."""

    def __init__(self, **kwargs: Any) -> None:
        load_kv_beside("appliance.screens.staff.count_rows")  # its rows' rules, before its list
        super().__init__(**kwargs)

    def on_pre_enter(self, *_args: Any) -> None:
        running_presenters().shift_open.start()
