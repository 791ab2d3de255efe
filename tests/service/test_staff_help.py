"""The staff device's side of remote approval: the board it keeps, what it asks, how it ends.

StaffHelp gets its messages through a real Dispatcher (bytes in, as paho hands them over)
and publishes through a link that records the bytes; the bus is drained as the main loop
would; time is a clock the test moves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from appliance.core.events import EventBus
from appliance.core.staff import StaffMember
from appliance.errors import RemoteApprovalError
from appliance.mqtt import topics
from appliance.mqtt.dispatch import Dispatcher
from appliance.mqtt.link import HubLinkChanged, PahoHubLink
from appliance.mqtt.payloads import (
    HelpApproval,
    HelpApprovalAnswer,
    HelpBoard,
    HelpCall,
    decode,
    encode,
)
from appliance.service.staff_help import StaffHelp, StaffHelpChanged

TABLET = "till-1"
KIOSK = "kiosk-1"
START = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
CASHIER = StaffMember("S1", "Alex", "cashier")
SUPERVISOR = StaffMember("S2", "Sam", "supervisor")


class ManualClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.moment = START

    def now(self) -> datetime:
        """The current moment (UTC)."""
        return self.moment

    def monotonic(self) -> float:
        """Seconds since the start."""
        return (self.moment - START).total_seconds()

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.moment += timedelta(seconds=seconds)


class RecordingLink:
    """What StaffHelp uses of PahoHubLink: a real Dispatcher, and the bytes it published."""

    def __init__(self, bus: EventBus) -> None:
        self.device_id = TABLET
        self.dispatcher = Dispatcher(TABLET, bus=bus)
        self.published: list[tuple[str, bytes]] = []
        self.connected = True

    def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool = False, expiry_s: int = 0
    ) -> bool:
        """Record the message while connected; False (nothing sent) when not."""
        if not self.connected:
            return False
        self.published.append((topic, payload))
        return True

    def approvals(self) -> list[HelpApproval]:
        """The HelpApprovals published, decoded from their bytes."""
        up = topics.help_approval_up(TABLET)
        return [decode(payload, HelpApproval) for topic, payload in self.published if topic == up]


class Tablet:
    """A StaffHelp on a recording link; every message is drained as the main loop would."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.clock = ManualClock()
        self.link = RecordingLink(self.bus)
        self.changes: list[StaffHelpChanged] = []
        ids = iter(f"req-{n}" for n in range(1, 100))
        self.help = StaffHelp(
            cast(PahoHubLink, self.link), self.bus, clock=self.clock, new_id=lambda: next(ids)
        )
        self.bus.subscribe(StaffHelpChanged, self.changes.append)

    def link_changed(self, *, connected: bool, hub_online: bool) -> None:
        """The link's state, as the link posts it."""
        self.bus.post(HubLinkChanged(connected, hub_online, 1, "", self.clock.now()))
        self.bus.drain()

    def board(self, *calls: HelpCall, at: datetime = START, offline: tuple[str, ...] = ()) -> None:
        """The hub's board arrives on the wire."""
        board = HelpBoard(store="berlin", at=at.isoformat(), calls=list(calls), offline=[*offline])
        assert self.link.dispatcher.dispatch(topics.help_board(TABLET), encode(board))
        self.bus.drain()

    def answer(self, request: str, state: Any, reason: str = "", expires_at: str = "") -> None:
        """The hub answers an approval on the wire."""
        answer = HelpApprovalAnswer(id=request, state=state, reason=reason, expires_at=expires_at)
        topic = topics.help_approval_answer(TABLET)
        assert self.link.dispatcher.dispatch(topic, encode(answer))
        self.bus.drain()


def call(call_id: str = "call-1", reason: Any = "bagging", kiosk: str = KIOSK) -> HelpCall:
    """A kiosk's open call for help."""
    return HelpCall(
        device=kiosk,
        id=call_id,
        reason=reason,
        urgency="urgent" if reason == "bagging" else "help",
        state="open",
        opened_at=START.isoformat(),
        detail="835 g on the scale, 135 g expected",
    )


@pytest.fixture
def tablet() -> Tablet:
    """A staff device online, with one bagging call and one age check on its board."""
    tablet = Tablet()
    tablet.link_changed(connected=True, hub_online=True)
    tablet.board(call("call-1", "bagging"), call("call-2", "age_check"))
    return tablet


def test_the_newest_board_is_kept_and_an_older_one_ignored() -> None:
    tablet = Tablet()
    assert (tablet.help.calls, tablet.help.board) == ((), None)

    tablet.board(call("call-2"), at=START + timedelta(seconds=10))
    tablet.board(call("call-1"), at=START)  # delivered late: the hub read it before

    assert [c.id for c in tablet.help.calls] == ["call-2"]
    assert len(tablet.changes) == 1
    tablet.board(at=START + timedelta(seconds=20), offline=(KIOSK,))
    assert tablet.help.calls == ()
    assert not tablet.help.kiosk_online(KIOSK)
    assert tablet.help.kiosk_online("kiosk-2")
    assert len(tablet.changes) == 2


def test_it_is_online_only_while_connected_and_the_hub_online() -> None:
    tablet = Tablet()
    assert not tablet.help.online

    tablet.link_changed(connected=True, hub_online=False)
    assert not tablet.help.online and tablet.changes == []
    tablet.link_changed(connected=True, hub_online=True)
    assert tablet.help.online and len(tablet.changes) == 1
    tablet.link_changed(connected=False, hub_online=True)
    assert not tablet.help.online and len(tablet.changes) == 2


def test_offline_nothing_is_asked_and_staff_are_told_to_walk_over(tablet: Tablet) -> None:
    tablet.link_changed(connected=False, hub_online=False)

    with pytest.raises(RemoteApprovalError, match=r"^no connection to the hub: walk over"):
        tablet.help.ask(tablet.help.calls[0], "clear", CASHIER)

    assert tablet.link.published == []


def test_a_role_that_may_not_take_the_action_is_refused_before_anything_is_sent(
    tablet: Tablet,
) -> None:
    bagging, age_check = tablet.help.calls

    with pytest.raises(RemoteApprovalError, match=r"^only a supervisor may skip sale remotely$"):
        tablet.help.ask(bagging, "skip_sale", CASHIER)
    with pytest.raises(RemoteApprovalError, match="cannot be answered with clear"):
        tablet.help.ask(age_check, "clear", SUPERVISOR)

    assert tablet.link.published == []
    assert tablet.help.approval_for(bagging.id) is None


def test_a_call_of_an_offline_kiosk_is_walked_over_to(tablet: Tablet) -> None:
    tablet.board(call("call-1"), at=START + timedelta(seconds=1), offline=(KIOSK,))

    with pytest.raises(RemoteApprovalError, match=f"^{KIOSK} is offline: walk over to it$"):
        tablet.help.ask(tablet.help.calls[0], "clear", SUPERVISOR)

    assert tablet.link.published == []


def test_a_link_that_drops_as_it_publishes_asks_nothing(tablet: Tablet) -> None:
    tablet.link.connected = False  # gone before its HubLinkChanged arrived

    with pytest.raises(RemoteApprovalError, match=r"^no connection to the hub"):
        tablet.help.ask(tablet.help.calls[0], "clear", CASHIER)

    assert tablet.help.approvals == ()


def test_an_approval_goes_up_with_who_asks_and_one_at_a_time_per_call(tablet: Tablet) -> None:
    bagging, age_check = tablet.help.calls

    first = tablet.help.ask(bagging, "skip_sale", SUPERVISOR)
    again = tablet.help.ask(bagging, "clear", CASHIER)  # a second tap while it travels
    other = tablet.help.ask(age_check, "approve", CASHIER)  # another call: its own approval

    assert again == first
    assert (first.id, first.step, first.call, first.kiosk) == ("req-1", "asking", "call-1", KIOSK)
    assert first.deadline == START + timedelta(seconds=60)
    assert other.id == "req-2"
    assert tablet.link.approvals() == [
        HelpApproval(
            id="req-1",
            device=TABLET,
            kiosk=KIOSK,
            call="call-1",
            reason="bagging",
            action="skip_sale",
            staff_id="S2",
            staff_name="Sam",
            role="supervisor",
        ),
        HelpApproval(
            id="req-2",
            device=TABLET,
            kiosk=KIOSK,
            call="call-2",
            reason="age_check",
            action="approve",
            staff_id="S1",
            staff_name="Alex",
            role="cashier",
        ),
    ]

    tablet.answer("req-1", "refused", "the call is no longer open")
    retried = tablet.help.ask(bagging, "clear", CASHIER)  # the first ended: a new one goes
    assert retried.id == "req-3"
    assert tablet.help.approval_for(bagging.id) == retried
    assert len(tablet.link.approvals()) == 3


def test_the_hubs_answers_move_an_approval_to_its_end_and_nothing_moves_it_after(
    tablet: Tablet,
) -> None:
    asked = tablet.help.ask(tablet.help.calls[0], "clear", CASHIER)
    expires = START + timedelta(seconds=30)

    tablet.answer(asked.id, "sent", expires_at=expires.isoformat())
    sent = tablet.help.approval_for("call-1")
    assert sent is not None and (sent.step, sent.deadline) == ("sent", expires)
    tablet.answer(asked.id, "succeeded", "bagging unexpected item: clear")
    tablet.answer(asked.id, "failed", "too late")  # a late duplicate changes nothing
    tablet.answer("req-unknown", "succeeded")  # not asked from here

    [done] = tablet.help.approvals
    assert (done.step, done.reason, done.final) == (
        "succeeded",
        "bagging unexpected item: clear",
        True,
    )


def test_an_approval_the_kiosk_could_not_apply_ends_failed_with_its_reason(
    tablet: Tablet,
) -> None:
    asked = tablet.help.ask(tablet.help.calls[1], "approve", CASHIER)

    tablet.answer(asked.id, "sent")
    tablet.answer(asked.id, "failed", "no item waits for an age check")

    failed = tablet.help.approval_for("call-2")
    assert failed is not None
    assert (failed.step, failed.reason) == ("failed", "no item waits for an age check")


def test_an_unanswered_approval_times_out_and_staff_walk_over(tablet: Tablet) -> None:
    asked = tablet.help.ask(tablet.help.calls[0], "clear", CASHIER)

    tablet.clock.advance(59)
    tablet.help.tick()
    assert tablet.help.approvals[0].step == "asking"
    tablet.clock.advance(1)
    tablet.help.tick()
    tablet.bus.drain()

    [timed_out] = tablet.help.approvals
    assert (timed_out.id, timed_out.step) == (asked.id, "timed_out")
    assert timed_out.reason == "the kiosk did not answer in time: walk over to it"
    tablet.answer(asked.id, "succeeded")  # too late to count: staff were sent over
    assert tablet.help.approvals[0].step == "timed_out"


def test_a_sent_approval_times_out_at_the_commands_expiry(tablet: Tablet) -> None:
    asked = tablet.help.ask(tablet.help.calls[0], "clear", CASHIER)
    tablet.answer(asked.id, "sent", expires_at=(START + timedelta(seconds=20)).isoformat())

    tablet.clock.advance(19)
    tablet.help.tick()
    assert tablet.help.approvals[0].step == "sent"
    tablet.clock.advance(1)
    tablet.help.tick()

    assert tablet.help.approvals[0].step == "timed_out"


def test_an_approval_whose_call_the_kiosk_closed_stays_in_view_a_minute_after_its_end(
    tablet: Tablet,
) -> None:
    bagging, age_check = tablet.help.calls
    asked = tablet.help.ask(bagging, "clear", CASHIER)
    tablet.answer(asked.id, "sent")
    assert tablet.help.after_their_call() == ()  # its call is still on the board: its row shows it

    # The kiosk clears the call as it applies the approval; the board says so first.
    tablet.board(age_check, at=START + timedelta(seconds=1))
    [under_way] = tablet.help.after_their_call()
    assert (under_way.id, under_way.step, under_way.call_reason) == (asked.id, "sent", "bagging")
    tablet.clock.advance(120)  # under way, it stays however long it takes
    tablet.answer(asked.id, "succeeded", "bagging unexpected item: clear")
    [done] = tablet.help.after_their_call()
    assert (done.step, done.ended_at) == ("succeeded", tablet.clock.now())

    tablet.clock.advance(60)
    assert tablet.help.after_their_call() == (done,)
    tablet.clock.advance(1)
    assert tablet.help.after_their_call() == ()
    assert tablet.help.approvals == (done,)  # still known, only no longer shown


def test_only_the_latest_approval_of_a_closed_call_is_shown(tablet: Tablet) -> None:
    bagging, age_check = tablet.help.calls
    first = tablet.help.ask(bagging, "clear", CASHIER)
    tablet.answer(first.id, "failed", "the scale did not settle")
    second = tablet.help.ask(bagging, "skip_item", CASHIER)
    tablet.board(age_check, at=START + timedelta(seconds=1))

    assert [a.id for a in tablet.help.after_their_call()] == [second.id]


def test_a_closed_calls_approval_that_timed_out_or_was_refused_is_not_shown(
    tablet: Tablet,
) -> None:
    bagging, age_check = tablet.help.calls
    refused = tablet.help.ask(bagging, "clear", CASHIER)
    timed_out = tablet.help.ask(age_check, "approve", CASHIER)
    tablet.answer(refused.id, "refused", "the call is no longer open")
    tablet.clock.advance(60)
    tablet.help.tick()  # the age check's approval: no answer in time

    tablet.board(at=START + timedelta(seconds=1))  # both calls closed

    # "Walk over" and a refusal say nothing useful once the call is gone.
    assert tablet.help.after_their_call() == ()
    assert {a.id: a.step for a in tablet.help.approvals} == {
        refused.id: "refused",
        timed_out.id: "timed_out",
    }
