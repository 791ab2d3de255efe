"""The staff till's "Calls for help" screen in the real app: rows, actions by role, outcomes.

The staff till runs offscreen with its real hub link to a real mosquitto; the hub is
played on the wire (tests/mqtt/fake_hub.py: its retained online state, then HelpBoard and
HelpApprovalAnswer messages sent by the test), so every state of a row can be shown. The
real hub and kiosk in this flow are proven in test_remote_approval.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.mqtt import topics
from appliance.mqtt.payloads import (
    HelpApproval,
    HelpApprovalAnswer,
    HelpBoard,
    HelpCall,
    decode,
    encode,
)
from appliance.screens.i18n import tr
from appliance.service.demo import DEMO_SUPERVISOR_BADGE
from appliance.settings import parse_settings
from appliance.store.staff import StaffDirectory
from tests.broker import MosquittoBroker
from tests.hub.test_server import DeviceClient
from tests.mqtt.fake_hub import FakeHub
from tests.screens.harness import Kiosk, open_kiosk
from tests.screens.test_staff_flows import log_in_cashier

TABLET = "till-1"


class StoreOnTheWire:
    """The hub's side, played by the test: the board it sends and the answers."""

    def __init__(self, broker: MosquittoBroker, hub: FakeHub) -> None:
        self.hub = hub
        self.asked = DeviceClient(broker, "observer", [topics.help_approval_up(TABLET)])
        self.sent_at = datetime.now(UTC)

    def board(self, *calls: HelpCall, offline: tuple[str, ...] = ()) -> None:
        """A newer board for the staff till."""
        self.sent_at += timedelta(seconds=1)
        board = HelpBoard(
            store="berlin", at=self.sent_at.isoformat(), calls=list(calls), offline=[*offline]
        )
        self.hub.publish_raw(topics.help_board(TABLET), encode(board))

    def approval(self) -> HelpApproval:
        """The next approval the staff till asked, off the wire."""
        message = self.asked.next(topics.help_approval_up(TABLET))
        return decode(message.payload, HelpApproval)

    def answer(self, request: str, state: str, reason: str = "") -> None:
        """The hub's answer to an approval."""
        answer = HelpApprovalAnswer(id=request, state=state, reason=reason)  # type: ignore[arg-type]
        self.hub.publish_raw(topics.help_approval_answer(TABLET), encode(answer))


def open_call(kiosk: str, call_id: str, reason: str, detail: str = "") -> HelpCall:
    """A kiosk's call, opened two minutes ago."""
    opened = datetime.now(UTC) - timedelta(minutes=2)
    return HelpCall(
        device=kiosk,
        id=call_id,
        reason=reason,  # type: ignore[arg-type]
        urgency="urgent" if reason == "bagging" else "help",
        state="open",
        opened_at=opened.isoformat(),
        detail=detail,
    )


@contextmanager
def staff_till(tmp_path: Path) -> Iterator[tuple[Kiosk, StoreOnTheWire]]:
    """A staff till (tablet, 1280x800) with a hub link, and the hub's side on the wire."""
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    hub = FakeHub(broker.host, broker.port)
    try:
        hub.start()
        settings = parse_settings(
            {
                "device": {"id": TABLET, "receipt_prefix": "T1"},
                "database": {"path": str(tmp_path / "state" / "appliance.db")},
                "store": {"name": "Demo Store", "currency": "EUR", "locale": "de_DE"},
                "screen": {"mode": "staff", "width": 1280, "height": 800},
                "hub": {"host": broker.host, "port": broker.port},
            },
            source="test",
        )
        with open_kiosk(tmp_path, settings=settings) as till:
            link = till.services.hub
            assert link is not None
            till.wait_for(lambda: till.app.help_calls.online, what="the staff till online")
            wire = StoreOnTheWire(broker, hub)
            try:
                yield till, wire
            finally:
                wire.asked.client.disconnect()
                wire.asked.client.loop_stop()
    finally:
        hub.stop()
        broker.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Kiosk, StoreOnTheWire]]:
    """A staff till with a hub link, and the hub's side on the wire."""
    with staff_till(tmp_path) as till_and_wire:
        yield till_and_wire


def row_texts(till: Kiosk) -> list[dict[str, str]]:
    """The rows' title, status and action buttons, as the presenter gives them to the view."""
    return [
        {
            "title": row["title"],
            "status": row["status"],
            "actions": " | ".join(row[f"label{n}"] for n in range(3) if row[f"label{n}"]),
        }
        for row in till.app.help_calls.rows
    ]


def test_the_store_calls_are_listed_with_the_actions_the_role_may_take_and_their_outcome(
    store: tuple[Kiosk, StoreOnTheWire],
) -> None:
    till, wire = store
    log_in_cashier(till)
    wire.board(
        open_call("kiosk-1", "call-1", "bagging", "835 g on the scale, 135 g expected"),
        open_call("kiosk-2", "call-2", "customer"),
    )
    till.wait_for(lambda: till.app.help_calls.count == 2, what="both calls on the till")
    till.tap_text(tr._("Help ({count})").format(count=2))
    till.wait_for_screen("help_calls")

    clear, skip_item = tr._("Clear the alert"), tr._("Skip bagging for this item")
    skip_sale = tr._("Skip bagging for this sale")
    walk_over = tr._("Please walk over to the kiosk.")
    assert row_texts(till) == [
        {
            "title": "kiosk-1: " + tr._("Bagging area"),
            "status": "",
            "actions": f"{clear} | {skip_item}",
        },
        {
            "title": "kiosk-2: " + tr._("A customer asks for help"),
            "status": walk_over,
            "actions": "",
        },
    ]
    till.find_text(clear)  # on show, and usable
    till.find_text(walk_over)

    # A supervisor may also skip the check for the rest of the sale from here.
    supervisor = StaffDirectory(till.services.app.db).by_badge(DEMO_SUPERVISOR_BADGE)
    assert supervisor is not None
    till.app.session.login(supervisor)
    till.wait_for(lambda: skip_sale in row_texts(till)[0]["actions"], what="skip sale offered")
    till.tap_text(clear)

    asked = wire.approval()
    assert (asked.call, asked.kiosk, asked.action) == ("call-1", "kiosk-1", "clear")
    assert (asked.staff_id, asked.staff_name, asked.role) == (
        supervisor.staff_id,
        "Sam",
        "supervisor",
    )
    waiting = tr._("Sent to the kiosk, waiting for it…")
    till.wait_for(lambda: row_texts(till)[0]["status"] == waiting, what="the approval waiting")
    assert row_texts(till)[0]["actions"] == ""  # one at a time: the first is on its way

    wire.answer(asked.id, "refused", "the call is no longer open")

    refused = tr._("Refused: {reason}").format(reason="the call is no longer open")
    till.wait_for(lambda: row_texts(till)[0]["status"] == refused, what="the refusal shown")
    till.find_text(refused)
    assert row_texts(till)[0]["actions"] == f"{clear} | {skip_item} | {skip_sale}"
    till.screenshot("staff-help-calls")  # the README's docs/screenshots/tablet-help-calls.png


def test_without_the_hub_or_with_the_kiosk_offline_staff_are_told_to_walk_over(
    store: tuple[Kiosk, StoreOnTheWire],
) -> None:
    till, wire = store
    log_in_cashier(till)
    wire.board(open_call("kiosk-1", "call-1", "age_check"), offline=("kiosk-1",))
    till.wait_for(lambda: till.app.help_calls.count == 1, what="the call on the till")
    till.app.session.go("help_calls")
    till.wait_for_screen("help_calls")

    kiosk_offline = tr._("The kiosk is offline: please walk over to it.")
    assert row_texts(till)[0]["status"] == kiosk_offline
    assert row_texts(till)[0]["actions"] == ""
    assert not till.app.help_calls.act("call-1", "approve")  # as a stale tap would
    till.find_text(tr._("Not sent: please walk over to the kiosk."))

    wire.board(open_call("kiosk-1", "call-1", "age_check"))  # the kiosk is back
    approve = tr._("Approve the age check")
    till.wait_for(lambda: row_texts(till)[0]["actions"] == approve, what="approve offered")

    wire.hub.set_online(False)  # the hub goes away: nothing can be asked from here

    no_hub = tr._("No connection to the hub: walk over to the kiosks that call.")
    till.wait_for(lambda: till.app.help_calls.notice == no_hub, what="the notice")
    till.find_text(no_hub)
    assert row_texts(till)[0]["actions"] == ""
    assert wire.asked.messages.empty()  # nothing was ever asked


def test_a_call_the_kiosk_closed_keeps_its_row_until_the_outcome_shows(
    store: tuple[Kiosk, StoreOnTheWire],
) -> None:
    till, wire = store
    log_in_cashier(till)
    wire.board(open_call("kiosk-1", "call-1", "age_check"))
    till.wait_for(lambda: till.app.help_calls.count == 1, what="the call on the till")
    till.app.session.go("help_calls")
    till.wait_for_screen("help_calls")
    till.tap_text(tr._("Approve the age check"))
    asked = wire.approval()
    wire.answer(asked.id, "sent")

    # The kiosk applies it and closes the call: the board says so before the outcome comes.
    wire.board()
    waiting = tr._("Sent to the kiosk, waiting for it…")
    closed = tr._("The call is closed.")
    till.wait_for(lambda: till.app.help_calls.count == 0, what="the call gone from the board")
    title = "kiosk-1: " + tr._("Age check")
    assert row_texts(till) == [{"title": title, "status": waiting, "actions": ""}]
    till.find_text(closed)

    wire.answer(asked.id, "succeeded", "age check approved")
    done = tr._("Done at the kiosk.")
    till.wait_for(lambda: row_texts(till)[0]["status"] == done, what="the outcome shown")
    till.find_text(done)


def test_a_till_stopping_with_its_hub_link_up_logs_no_failing_handler(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="appliance.core.events")
    with staff_till(tmp_path) as (till, wire):
        log_in_cashier(till)
        wire.board(open_call("kiosk-1", "call-1", "age_check"))
        till.wait_for(lambda: till.app.help_calls.count == 1, what="the call on the till")
        till.app.session.go("help_calls")  # its rules are built with the screen, when shown
        till.wait_for_screen("help_calls")
        assert till.app.help_calls.act("call-1", "approve")  # under way as the till stops

    # The link goes down after the app has stopped: the calls' screen must not redraw then.
    assert [r.getMessage() for r in caplog.records if "failed on" in r.getMessage()] == []
