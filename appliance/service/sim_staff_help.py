"""`appliance sim help-calls|approve-help`: a staff device's remote approval from the socket.

What the staff till's "Calls for help" screen does, for a headless staff till, a field
tech's shell or a test: list the store's calls as the hub last sent them, with the actions
a call allows from a distance, and the approvals asked from here with where each stands;
and answer one as a member of staff signed in by PIN, through the device's own StaffHelp
(so the same checks refuse what the screen would refuse).

The PIN is checked on the socket's thread (one scrypt per member: far too slow for the
main loop), as the till's login checks it on a worker. StaffHelp is the main loop's, so
listing and asking are posted to it and the socket thread waits for the answer. Headless,
nothing else ticks StaffHelp: `help-calls` does, so an approval nobody answered in time
is listed as timed_out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from appliance.core.events import Event, EventBus
from appliance.core.remote_approval import REMOTE_ACTIONS, RemoteAction, actions_for
from appliance.core.staff import StaffMember
from appliance.drivers.sim.control import Answer, Command, Request
from appliance.errors import RemoteApprovalError, StaffError
from appliance.service.staff_help import Approval, StaffHelp
from appliance.store.staff import StaffDirectory

log = logging.getLogger(__name__)

# The main loop answers within a frame or two; this only bounds a loop that is stuck.
REPLY_SECONDS = 5.0


@dataclass(frozen=True, slots=True, eq=False)
class StaffHelpRequested(Event):
    """A `sim help-calls|approve-help` request: `intent` runs on the main loop."""

    intent: Callable[[], Answer]
    reply: Future[Answer]


class SimStaffHelp:
    """Socket-thread side of `sim help-calls` and `sim approve-help`; StaffHelp's on the loop."""

    def __init__(self, bus: EventBus, help_: StaffHelp, staff: StaffDirectory) -> None:
        self._bus = bus
        self._help = help_
        self._staff = staff
        bus.subscribe(StaffHelpRequested, self._run)

    def commands(self) -> dict[str, Command]:
        """The control commands this adds."""
        return {
            "help-calls": Command(
                "the store's calls for help as this staff device sees them", self.help_calls
            ),
            "approve-help": Command(
                f"answer a call as staff signed in by PIN: CALL {'|'.join(REMOTE_ACTIONS)}",
                self.approve_help,
            ),
        }

    def help_calls(self, _request: Request) -> Answer:
        """The board, the link and this device's approvals; blocks for the main loop."""
        return self._ask(self._listing)

    def approve_help(self, request: Request) -> Answer:
        """Sign in by PIN here, ask on the main loop; the approval's first step, or why not."""
        call_id = _text(request, "call")
        action = _text(request, "action")
        if action not in REMOTE_ACTIONS:
            raise ValueError(f"action: one of {', '.join(REMOTE_ACTIONS)}, not {action!r}")
        try:
            member = self._staff.by_pin(_text(request, "staff_pin"))
        finally:
            self._staff.close_thread_connection()  # this connection's thread ends soon
        if member is None:
            raise StaffError("no member of staff has this PIN")
        chosen = next(known for known in REMOTE_ACTIONS if known == action)
        return self._ask(lambda: self._approve(call_id, chosen, member))

    # -- the main loop -----------------------------------------------------------------

    def _listing(self) -> Answer:
        help_ = self._help
        help_.tick()
        board = help_.board
        calls = []
        for call in help_.calls:
            usable = help_.online and help_.kiosk_online(call.device)
            approval = help_.approval_for(call.id)
            calls.append(
                {
                    "id": call.id,
                    "kiosk": call.device,
                    "reason": call.reason,
                    "urgency": call.urgency,
                    "detail": call.detail,
                    "opened_at": call.opened_at,
                    "kiosk_online": help_.kiosk_online(call.device),
                    "actions": list(actions_for(call.reason)) if usable else [],
                    "approval": _approval(approval) if approval is not None else None,
                }
            )
        return {
            "online": help_.online,
            "store": board.store if board is not None else "",
            "board_at": board.at if board is not None else "",
            "offline": list(board.offline) if board is not None else [],
            "calls": calls,
            # A call leaves the board once cleared: its approval's end is only found here.
            "approvals": [_approval(approval) for approval in help_.approvals],
        }

    def _approve(self, call_id: str, action: RemoteAction, member: StaffMember) -> Answer:
        call = next((c for c in self._help.calls if c.id == call_id), None)
        if call is None:
            raise RemoteApprovalError(f"no open call {call_id} on this device's board")
        approval = self._help.ask(call, action, member)
        staff = {"staff_id": member.staff_id, "name": member.name, "role": member.role}
        return {"approval": _approval(approval), "staff": staff}

    def _ask(self, intent: Callable[[], Answer]) -> Answer:
        reply: Future[Answer] = Future()
        self._bus.post(StaffHelpRequested(intent, reply))
        return reply.result(timeout=REPLY_SECONDS)

    def _run(self, event: StaffHelpRequested) -> None:
        try:
            event.reply.set_result(event.intent())
        except Exception as err:  # the socket thread waits on the reply: it always gets one
            if not isinstance(err, (RemoteApprovalError, ValueError)):
                log.exception("sim staff help request failed")
            event.reply.set_exception(err)


def _approval(approval: Approval) -> dict[str, Any]:
    """An approval as JSON: which, for what, and where it stands."""
    return {
        "id": approval.id,
        "call": approval.call,
        "kiosk": approval.kiosk,
        "action": approval.action,
        "step": approval.step,
        "reason": approval.reason,
    }


def _text(request: Request, key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected a non-empty string")
    return value
