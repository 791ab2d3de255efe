"""Closing a shift: count the drawer, see the difference, sign off, close."""

from __future__ import annotations

from typing import Any

from appliance.screens.presenter_set import running_presenters
from appliance.screens.registry import load_kv_beside
from appliance.screens.staff.approval import StaffApproval
from appliance.screens.widgets import AppScreen


class ShiftCloseScreen(AppScreen):
    """The count on the left; expected, counted, difference and Close shift on the right."""

    def __init__(self, **kwargs: Any) -> None:
        load_kv_beside("appliance.screens.staff.count_rows")  # its rows' rules, before its list
        super().__init__(**kwargs)

    def close_shift(self) -> None:
        """Close; a difference over the threshold asks a supervisor first."""
        presenter = running_presenters().shift_close
        if not presenter.needs_signoff():
            presenter.close()
            return
        StaffApproval(
            reason=presenter.signoff_reason(),
            on_approved=lambda member: presenter.close(supervisor=member),
        ).open()
