"""The store's calls for help on a staff till or tablet, and answering them from here.

Each open call of the store's kiosks is a row: the kiosk, why, what it saw, how long ago,
and the actions the call allows from a distance to the role signed in
(appliance.core.remote_approval). The member of staff signed in on the till is the one who
approves. No action is offered while the hub link is down or the kiosk offline: then staff
walk over, as they always could. The outcome of each approval comes back through the hub
and shows on its row; the kiosk usually closes the call before that outcome arrives, so the
row stays while the approval is under way and a minute after it is done or failed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty

from appliance.core.remote_approval import RemoteAction, actions_for, refusal
from appliance.errors import RemoteApprovalError
from appliance.mqtt.payloads import HelpCall
from appliance.screens.i18n import Translator
from appliance.screens.presenters.context import ScreenContext
from appliance.screens.presenters.lifecycle import when_app_stops, while_app_runs
from appliance.service.staff_help import Approval, StaffHelp, StaffHelpChanged

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # ages and unanswered approvals move on at this resolution
MAX_ACTIONS = 3  # the buttons a row has room for


def reason_text(tr: Translator, reason: str) -> str:
    """Why a kiosk calls, in words."""
    texts = {
        "age_check": tr._("Age check"),
        "bagging": tr._("Bagging area"),
        "customer": tr._("A customer asks for help"),
        "payment_in_doubt": tr._("Card payment in doubt"),
        "paper_out": tr._("Receipt paper out"),
    }
    return texts.get(reason, reason)


def action_text(tr: Translator, action: str) -> str:
    """An action's button label."""
    texts = {
        "approve": tr._("Approve the age check"),
        "clear": tr._("Clear the alert"),
        "skip_item": tr._("Skip bagging for this item"),
        "skip_sale": tr._("Skip bagging for this sale"),
    }
    return texts.get(action, action)


def step_text(tr: Translator, approval: Approval) -> str:
    """Where an approval stands, in words."""
    if approval.step in ("asking", "sent"):
        return tr._("Sent to the kiosk, waiting for it…")
    if approval.step == "succeeded":
        return tr._("Done at the kiosk.")
    if approval.step == "timed_out":
        return tr._("The kiosk did not answer: please walk over to it.")
    if approval.step == "refused":
        return tr._("Refused: {reason}").format(reason=approval.reason)
    return tr._("The kiosk could not do it: {reason}").format(reason=approval.reason)


class HelpCallsPresenter(EventDispatcher):
    """The calls as rows, whether approvals can be sent, and the actions' intents."""

    rows = ListProperty()  # see _row
    count = NumericProperty(0)  # calls not cleared, for the till's button
    online = BooleanProperty(False)
    notice = StringProperty("")  # why nothing can be answered from here, or ""

    def __init__(self, ctx: ScreenContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ctx = ctx
        hub = ctx.services.hub
        self._help: StaffHelp | None = hub.staff_help if hub is not None else None
        ctx.session.bind(language=lambda *_a: self.refresh(), staff=lambda *_a: self.refresh())
        if self._help is None:
            self.refresh()
            return  # no hub link, or not a staff till: the screen says to walk over
        ctx.bus.subscribe(StaffHelpChanged, while_app_runs(lambda _event: self.refresh()))
        timer = Clock.schedule_interval(self._tick, TICK_SECONDS)
        when_app_stops(timer.cancel)
        self.refresh()

    def act(self, call_id: str, action: RemoteAction) -> bool:
        """Answer a call from here as the member of staff signed in; False when refused."""
        tr, session, desk = self._ctx.tr, self._ctx.session, self._help
        member = session.staff
        call = next((c for c in desk.calls if c.id == call_id), None) if desk else None
        if desk is None or member is None or call is None:
            return False
        if refusal(call.reason, action, member.role):
            log.info("%s (%s) may not %s remotely", member.staff_id, member.role, action)
            session.say(
                tr._("Only a supervisor may do this from here. Walk over to the kiosk."),
                "warning",
            )
            return False
        try:
            desk.ask(call, action, member)
        except RemoteApprovalError as err:
            log.info("approval not sent: %s", err)
            session.say(tr._("Not sent: please walk over to the kiosk."), "warning")
            return False
        self.refresh()
        return True

    def refresh(self) -> None:
        """Show the calls again (the board, the link, an approval or the language changed)."""
        tr, desk = self._ctx.tr, self._help
        self.online = desk is not None and desk.online
        if desk is None:
            self.notice = tr._("This till has no hub link: walk over to the kiosks that call.")
        elif not desk.online:
            self.notice = tr._("No connection to the hub: walk over to the kiosks that call.")
        else:
            self.notice = ""
        calls = desk.calls if desk is not None else ()
        self.count = len(calls)
        gone = desk.after_their_call() if desk is not None else ()
        self.rows = [self._row(call) for call in calls] + [self._closed_call_row(a) for a in gone]

    def _row(self, call: HelpCall) -> dict[str, Any]:
        tr, desk = self._ctx.tr, self._help
        assert desk is not None
        approval = desk.approval_for(call.id)
        usable = self.online and desk.kiosk_online(call.device)
        member = self._ctx.session.staff
        # Only what the member signed in may do from here: a button that could only be
        # refused would send staff the wrong way (a supervisor at the kiosk can still skip).
        actions = [
            action
            for action in actions_for(call.reason)
            if usable and member is not None and not refusal(call.reason, action, member.role)
        ]
        if approval is not None and not approval.final:
            actions = []  # one at a time: the first is still on its way
        if not desk.kiosk_online(call.device):
            status = tr._("The kiosk is offline: please walk over to it.")
        elif not actions_for(call.reason):
            status = tr._("Please walk over to the kiosk.")
        else:
            status = step_text(tr, approval) if approval is not None else ""
        row: dict[str, Any] = {
            "call_id": call.id,
            "title": tr._("{kiosk}: {reason}").format(
                kiosk=call.device, reason=reason_text(tr, call.reason)
            ),
            "detail": self._detail(call),
            "status": status,
            "urgent": call.urgency == "urgent",
        }
        for slot in range(MAX_ACTIONS):
            action = actions[slot] if slot < len(actions) else ""
            row[f"action{slot}"] = action
            row[f"label{slot}"] = action_text(tr, action) if action else ""
        return row

    def _closed_call_row(self, approval: Approval) -> dict[str, Any]:
        """An approval from here whose call the kiosk has closed: its outcome, no actions."""
        tr = self._ctx.tr
        row: dict[str, Any] = {
            "call_id": approval.call,
            "title": tr._("{kiosk}: {reason}").format(
                kiosk=approval.kiosk, reason=reason_text(tr, approval.call_reason)
            ),
            "detail": tr._("The call is closed."),
            "status": step_text(tr, approval),
            "urgent": False,
        }
        for slot in range(MAX_ACTIONS):
            row[f"action{slot}"] = row[f"label{slot}"] = ""
        return row

    def _detail(self, call: HelpCall) -> str:
        tr = self._ctx.tr
        try:
            opened = datetime.fromisoformat(call.opened_at)
        except ValueError:
            return call.detail
        minutes = max(0, int((datetime.now(UTC) - opened).total_seconds() // 60))
        age = tr.n_("{count} minute ago", "{count} minutes ago", minutes).format(count=minutes)
        return f"{call.detail} ({age})" if call.detail else age

    def _tick(self, _dt: float) -> None:
        if self._help is not None:
            self._help.tick()
        self.refresh()
