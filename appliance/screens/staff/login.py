"""Staff login: PIN on a keypad, or a badge on the reader."""

from __future__ import annotations

from appliance.screens.presenter_set import running_presenters
from appliance.screens.widgets import AppScreen


class StaffLoginScreen(AppScreen):
    """Who is at the till; the only screen of a staffed till until someone logs in."""

    def on_pre_enter(self, *_args: object) -> None:
        running_presenters().staff_login.start()
        self.ids.pin.value = ""
