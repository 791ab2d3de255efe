"""The kiosk's side of remote approval: an `approve_help` fleet command, run like a badge.

The hub turns a staff device's approval into a signed `approve_help` command (args: the
call, its reason, the action, the member of staff and their role, the staff device `via`,
the staff device's request). CommandHandler checks it like any command and runs `action`
on its worker thread, which only hands it to the main loop (the cart and the desks are
the main loop's) and leaves the job IN_PROGRESS; the main loop applies it through the same
paths as staff at the kiosk and answers SUCCEEDED, or FAILED with the reason:

- the call must still be the kiosk's active call of that reason (the customer may have
  put the bag right, or taken the bottle off, while the approval travelled);
- the role must be allowed (appliance.core.remote_approval: the kiosk checks it again,
  since it trusts only what the fleet key signed);
- age_check: the cart's waiting lines are approved by the member of staff, the sale
  records who, in which role, from which device; bagging: the desk's staff action.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from appliance.core.bagging import StaffAction
from appliance.core.events import Event, EventBus
from appliance.core.remote_approval import approval_note, refusal
from appliance.core.staff import Role, StaffMember
from appliance.errors import ApplianceError, RemoteApprovalError
from appliance.mqtt.commands import Deferred
from appliance.mqtt.payloads import CommandUpdate, JobState
from appliance.service.assembly import Appliance

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemoteApprovalArrived(Event):
    """An `approve_help` command passed its checks; the main loop applies it."""

    command_id: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RemotelyAnswered(Event):
    """A call was answered from a staff device; the kiosk's screens follow it."""

    reason: str
    action: str
    name: str  # the member of staff, as the customer may be told
    via: str  # the staff device


class KioskApprovals:
    """Applies `approve_help` commands; `action` runs on the command worker, the rest on
    the main loop. `publish_update` must be thread-safe (FleetControl's publisher is)."""

    def __init__(self, app: Appliance, publish_update: Callable[[CommandUpdate], None]) -> None:
        self._app = app
        self._bus: EventBus = app.bus
        self._publish_update = publish_update
        app.bus.subscribe(RemoteApprovalArrived, self._arrived)

    def action(self, args: dict[str, Any]) -> str:
        """The command worker's action: hand over to the main loop; it answers later."""
        self._bus.post(RemoteApprovalArrived(str(args.get("command_id", "")), dict(args)))
        return Deferred("handed to the checkout")

    def apply(self, args: dict[str, Any]) -> str:
        """Apply one approval on the main loop; what was done, or RemoteApprovalError."""
        reason, action = _text(args, "reason"), _text(args, "action")
        member = StaffMember(
            _text(args, "staff_id"), _text(args, "staff_name"), cast(Role, _text(args, "role"))
        )
        via = _text(args, "via")
        if problem := refusal(reason, action, member.role):
            raise RemoteApprovalError(problem)
        desk = self._app.help_desk
        call = next((c for c in desk.active if c.reason == reason), None) if desk else None
        if desk is None or call is None or call.id != _text(args, "call"):
            raise RemoteApprovalError("the call is no longer open")
        note = approval_note(member.name, member.staff_id, member.role, via)
        if reason == "age_check":
            done = self._approve_age(member, note)
        else:
            done = self._bagging(cast(StaffAction, action), member, via)
        log.warning("call for help %s (%s): %s by %s", call.id, reason, action, note)
        self._bus.post(RemotelyAnswered(reason, action, member.name, via))
        return done

    def _approve_age(self, member: StaffMember, note: str) -> str:
        checkout = self._app.checkout
        waiting = len(checkout.cart.pending_age_checks)
        if not waiting:
            raise RemoteApprovalError("no item waits for an age check")
        checkout.approve_age(member.staff_id, note=note)
        if self._app.help_desk is not None:  # before the cart's change would clear it as "S1"
            self._app.help_desk.clear("age_check", note)
        return f"age check approved for {waiting} line(s)"

    def _bagging(self, action: StaffAction, member: StaffMember, via: str) -> str:
        desk = self._app.bagging
        if desk is None or not desk.status.alert:
            raise RemoteApprovalError("the bagging area needs no staff now")
        state = desk.status.state
        desk.staff(action, member, via=via)
        return f"bagging {state.replace('_', ' ')}: {action.replace('_', ' ')}"

    def _arrived(self, event: RemoteApprovalArrived) -> None:
        try:
            done = self.apply(event.args)
        except ApplianceError as err:
            log.warning("approval %s not applied: %s", event.command_id, err)
            self._answer(event.command_id, "FAILED", str(err))
            return
        self._answer(event.command_id, "SUCCEEDED", done)

    def _answer(self, command_id: str, state: JobState, reason: str) -> None:
        try:
            self._publish_update(CommandUpdate(id=command_id, state=state, reason=reason))
        except Exception:
            # The hub's job stays IN_PROGRESS until it expires; the approval itself stands.
            log.exception("could not publish %s for command %s", state, command_id)


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key, "")
    if not isinstance(value, str):
        raise RemoteApprovalError(f"args.{key} is not text")
    return value
