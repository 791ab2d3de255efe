"""A staff device's side of remote approval: its store's calls, and the approvals it asks.

The hub sends a staff till or tablet the open calls for help of its store's kiosks (a
HelpBoard on its own `down/help-calls`, at each change and at each birth). This keeps the
newest board, says whether the link is up (connected, the hub online), asks the hub to
approve (a HelpApproval on `up/help-approval`) and follows each approval to its end
through the hub's answers:

    asking -> sent -> succeeded | failed | timed_out
           -> refused                        (the hub's checks: role, store, call, kiosk)

Remote approval only works while both ends are online: offline, nothing is asked (staff
walk over, as they always could); an approval the hub sent and the kiosk did not answer
by the command's expiry (or one the hub never answered) ends timed_out, and the screen
says to walk over. Main thread only (the bus's handlers run there); paho's thread only
posts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from appliance.core.clock import Clock, SystemClock
from appliance.core.events import Event, EventBus
from appliance.core.ids import new_document_id
from appliance.core.remote_approval import APPROVAL_SECONDS, RemoteAction, refusal
from appliance.core.staff import StaffMember
from appliance.errors import RemoteApprovalError
from appliance.mqtt import topics
from appliance.mqtt.link import HubLinkChanged, PahoHubLink
from appliance.mqtt.payloads import (
    HelpApproval,
    HelpApprovalAnswer,
    HelpBoard,
    HelpCall,
    encode,
)

log = logging.getLogger(__name__)

ApprovalStep = Literal["asking", "sent", "refused", "succeeded", "failed", "timed_out"]
FINAL: frozenset[ApprovalStep] = frozenset({"refused", "succeeded", "failed", "timed_out"})
# The hub answers at once; an approval it has not answered after the command's whole
# life has met a hub that was gone: as good as expired.
UNANSWERED = timedelta(seconds=APPROVAL_SECONDS)
# An approval whose call left the board stays in view this long after its end, so staff
# see "Done at the kiosk" although the kiosk's clearing of the call usually comes first.
SHOWN_AFTER_ITS_CALL = timedelta(seconds=60)
# Outcomes worth showing once the call is gone: "walk over" or a refusal no longer are.
SHOWN_WITHOUT_ITS_CALL: frozenset[ApprovalStep] = frozenset(
    {"asking", "sent", "succeeded", "failed"}
)
LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class BoardReceived(Event):
    """The hub's board arrived (posted from paho's thread)."""

    board: HelpBoard


@dataclass(frozen=True, slots=True)
class ApprovalAnswerReceived(Event):
    """The hub answered an approval (posted from paho's thread)."""

    answer: HelpApprovalAnswer


@dataclass(frozen=True, slots=True)
class Approval:
    """One approval as staff follow it."""

    id: str
    call: str
    kiosk: str
    action: RemoteAction
    step: ApprovalStep
    reason: str = ""  # the hub's or the kiosk's words: why refused or failed, what was done
    deadline: datetime | None = None  # UTC: past it, unanswered means walk over
    call_reason: str = ""  # why the kiosk called, for a row shown after the call is gone
    ended_at: datetime | None = None  # when it reached its final step

    @property
    def final(self) -> bool:
        """Nothing more will come for it."""
        return self.step in FINAL


@dataclass(frozen=True, slots=True)
class StaffHelpChanged(Event):
    """The board, the link or an approval changed: the staff screen shows it again."""


class StaffHelp:
    """Its store's calls, the link's state and this device's approvals; main thread."""

    def __init__(
        self,
        link: PahoHubLink,
        bus: EventBus,
        *,
        clock: Clock | None = None,
        new_id: Callable[[], str] = new_document_id,
    ) -> None:
        self._link = link
        self._bus = bus
        self._clock = clock or SystemClock()
        self._new_id = new_id
        self._board: HelpBoard | None = None
        self._online = False
        self._approvals: dict[str, Approval] = {}  # by request id
        device = link.device_id
        link.dispatcher.on(topics.help_board(device), lambda b: bus.post(BoardReceived(b)))
        link.dispatcher.on(
            topics.help_approval_answer(device), lambda a: bus.post(ApprovalAnswerReceived(a))
        )
        bus.subscribe(BoardReceived, self._board_received)
        bus.subscribe(ApprovalAnswerReceived, self._answered)
        bus.subscribe(HubLinkChanged, self._link_changed)

    @property
    def online(self) -> bool:
        """Connected and the hub online: approvals may be asked."""
        return self._online

    @property
    def board(self) -> HelpBoard | None:
        """The hub's last board (None before one came): its store, time and offline devices."""
        return self._board

    @property
    def calls(self) -> tuple[HelpCall, ...]:
        """The store's calls not cleared, urgent first (the last board; () before one came)."""
        return tuple(self._board.calls) if self._board is not None else ()

    def kiosk_online(self, kiosk: str) -> bool:
        """Whether the hub last saw `kiosk` online."""
        return self._board is not None and kiosk not in self._board.offline

    @property
    def approvals(self) -> tuple[Approval, ...]:
        """Every approval asked from here in this run, oldest first (a cleared call's too)."""
        return tuple(self._approvals.values())

    def approval_for(self, call_id: str) -> Approval | None:
        """The latest approval asked for a call, if any."""
        found = [a for a in self._approvals.values() if a.call == call_id]
        return found[-1] if found else None

    def after_their_call(self) -> tuple[Approval, ...]:
        """Approvals whose call left the board: under way, or done or failed within a minute."""
        open_calls = {call.id for call in self.calls}
        since = self._clock.now() - SHOWN_AFTER_ITS_CALL
        latest = {a.call: a for a in self._approvals.values()}  # the last one per call
        return tuple(
            a
            for a in latest.values()
            if a.call not in open_calls
            and a.step in SHOWN_WITHOUT_ITS_CALL
            and (a.ended_at is None or a.ended_at >= since)
        )

    def ask(self, call: HelpCall, action: RemoteAction, member: StaffMember) -> Approval:
        """Ask the hub to approve; RemoteApprovalError says why it cannot be asked."""
        if not self._online:
            raise RemoteApprovalError("no connection to the hub: walk over to the kiosk")
        if problem := refusal(call.reason, action, member.role):
            raise RemoteApprovalError(problem)
        if not self.kiosk_online(call.device):
            raise RemoteApprovalError(f"{call.device} is offline: walk over to it")
        pending = self.approval_for(call.id)
        if pending is not None and not pending.final:
            return pending  # one at a time per call: the first is still on its way
        request = HelpApproval(
            id=self._new_id(),
            device=self._link.device_id,
            kiosk=call.device,
            call=call.id,
            reason=call.reason,
            action=action,
            staff_id=member.staff_id,
            staff_name=member.name,
            role=member.role,
        )
        topic = topics.help_approval_up(self._link.device_id)
        if not self._link.publish(topic, encode(request), qos=1):
            raise RemoteApprovalError("no connection to the hub: walk over to the kiosk")
        approval = Approval(
            request.id,
            call.id,
            call.device,
            action,
            "asking",
            deadline=self._clock.now() + UNANSWERED,
            call_reason=call.reason,
        )
        self._approvals[request.id] = approval
        log.info(
            "approval %s asked: %s of call %s at %s by %s (%s)",
            *(request.id, action, call.id, call.device, member.staff_id, member.role),
        )
        self._changed()
        return approval

    def tick(self) -> None:
        """Time passed: an approval unanswered past its deadline is walked over to."""
        now = self._clock.now()
        for approval in list(self._approvals.values()):
            if not approval.final and approval.deadline is not None and now >= approval.deadline:
                log.warning("approval %s: no answer in time", approval.id)
                self._set(
                    replace(
                        approval,
                        step="timed_out",
                        reason="the kiosk did not answer in time: walk over to it",
                        ended_at=now,
                    )
                )

    def _board_received(self, event: BoardReceived) -> None:
        board = event.board
        if self._board is not None and _moment(board.at) < _moment(self._board.at):
            log.debug("help board of %s ignored: older than the one shown", board.at)
            return
        self._board = board
        self._changed()

    def _answered(self, event: ApprovalAnswerReceived) -> None:
        answer = event.answer
        approval = self._approvals.get(answer.id)
        if approval is None or approval.final:
            return
        deadline = approval.deadline
        if answer.state == "sent" and answer.expires_at:
            deadline = _moment(answer.expires_at)
        log.info("approval %s: %s %s", answer.id, answer.state, answer.reason)
        ended = self._clock.now() if answer.state in FINAL else None
        self._set(
            replace(
                approval, step=answer.state, reason=answer.reason, deadline=deadline, ended_at=ended
            )
        )

    def _link_changed(self, event: HubLinkChanged) -> None:
        online = event.connected and event.hub_online
        if online != self._online:
            self._online = online
            self._changed()

    def _set(self, approval: Approval) -> None:
        self._approvals[approval.id] = approval
        self._changed()

    def _changed(self) -> None:
        self._bus.post(StaffHelpChanged())


def _moment(text: str) -> datetime:
    """An ISO time from the hub (UTC when it has no offset); unreadable counts as long ago."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return LONG_AGO
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
