"""An `approve_help` command at the kiosk: applied on the main loop like a badge, or refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.core.help_calls import HelpCallChanged
from appliance.core.tender import Tender
from appliance.mqtt.commands import Deferred
from appliance.mqtt.payloads import CommandUpdate
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.service.kiosk_approvals import KioskApprovals, RemotelyAnswered
from appliance.settings import simulated_settings

WINE = "8000320010149"  # 18+


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Appliance]:
    app = Appliance.open(simulated_settings(tmp_path))
    seed_demo_catalog(app.catalog, app.settings.store)
    app.lookup.refresh()
    yield app
    app.close()


def args_for(call: str, action: str = "approve", role: str = "cashier") -> dict[str, Any]:
    return {
        "call": call,
        "reason": "age_check",
        "action": action,
        "staff_id": "S1",
        "staff_name": "Alex",
        "role": role,
        "via": "till-1",
        "request": "req-1",
        "command_id": "cmd-1",
    }


def run(app: Appliance, args: dict[str, Any]) -> list[CommandUpdate]:
    """Hand the command over as its worker does, and let the main loop apply it."""
    updates: list[CommandUpdate] = []
    approvals = KioskApprovals(app, updates.append)
    assert isinstance(approvals.action(args), Deferred)  # the job stays IN_PROGRESS
    assert updates == []
    app.bus.drain()
    return updates


def test_an_age_check_approved_remotely_is_recorded_on_the_sale_with_who_and_where(
    app: Appliance,
) -> None:
    assert app.help_desk is not None
    app.checkout.scan(WINE)
    app.bus.drain()
    (call,) = app.help_desk.active
    changes: list[HelpCallChanged] = []
    answered: list[RemotelyAnswered] = []
    app.bus.subscribe(HelpCallChanged, changes.append)
    app.bus.subscribe(RemotelyAnswered, answered.append)

    updates = run(app, args_for(call.id))

    assert [(u.id, u.state, u.reason) for u in updates] == [
        ("cmd-1", "SUCCEEDED", "age check approved for 1 line(s)")
    ]
    assert app.checkout.cart.pending_age_checks == ()
    assert app.help_desk.active == ()
    assert [(c.call.state, c.call.by) for c in changes] == [
        ("cleared", "Alex (S1, cashier) from till-1")
    ]
    assert [(a.reason, a.name, a.via) for a in answered] == [("age_check", "Alex", "till-1")]
    sale = app.checkout.pay([Tender.cash(5000, app.checkout.totals().total)])
    assert sale.approved_by == "Alex (S1, cashier) from till-1"


def test_an_approval_for_a_call_no_longer_open_fails_and_changes_nothing(app: Appliance) -> None:
    app.checkout.scan(WINE)
    app.bus.drain()

    updates = run(app, args_for("an-older-call"))

    assert [(u.state, u.reason) for u in updates] == [("FAILED", "the call is no longer open")]
    assert len(app.checkout.cart.pending_age_checks) == 1


def test_an_action_the_role_may_not_take_remotely_fails_at_the_kiosk_too(app: Appliance) -> None:
    assert app.help_desk is not None
    app.checkout.scan(WINE)
    app.bus.drain()
    (call,) = app.help_desk.active
    wrong = {**args_for(call.id, "skip_sale", "cashier"), "reason": "bagging"}

    updates = run(app, wrong)

    assert [(u.state, u.reason) for u in updates] == [
        ("FAILED", "only a supervisor may skip sale remotely")
    ]
    assert len(app.checkout.cart.pending_age_checks) == 1
