"""StaffApproval: a supervisor approves over the screen by PIN or badge."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kivy.app import App
from kivy.properties import ObjectProperty, StringProperty

from appliance.core.staff import StaffMember
from appliance.screens.presenter_set import running_presenters
from appliance.screens.registry import load_kv_beside
from appliance.screens.staff.approval_presenter import ApprovalRequest
from appliance.screens.widgets import InstantModal


class StaffApproval(InstantModal):
    """Asks for a supervisor's PIN or badge; `on_approved(member)` runs once, then it closes."""

    reason = StringProperty("")
    request = ObjectProperty(None)

    def __init__(
        self, *, reason: str, on_approved: Callable[[StaffMember], object], **kwargs: Any
    ) -> None:
        load_kv_beside(__name__)  # the rules must exist before the first dialog is built
        presenters = running_presenters()
        ctx = App.get_running_app().ctx
        request = ApprovalRequest(ctx, presenters.staff_access, presenters.router, on_approved)
        kwargs.setdefault("auto_dismiss", False)
        super().__init__(reason=reason, request=request, **kwargs)
        request.bind(approved=lambda _r, approved: self.dismiss() if approved else None)

    def on_open(self) -> None:
        self.request.open()

    def on_dismiss(self) -> None:
        self.request.close()
