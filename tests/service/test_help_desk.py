"""The help desk in an assembled appliance: calls opened and cleared from what the kiosk sees."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from appliance.core.card_payment import CardAnswered, CardRecovered
from appliance.core.devices import DeviceHealth, DeviceHealthChanged
from appliance.core.events import Event
from appliance.core.help_calls import HelpCallChanged, LightState
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.core.tender import Tender
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.service.help_desk import HelpDesk
from appliance.settings import simulated_settings

COFFEE = "4006381333931"
WINE = "8000320010149"  # 18+


class Light:
    """An attendant light that remembers what it showed."""

    def __init__(self) -> None:
        self.shown: list[LightState] = []

    def show(self, state: LightState) -> None:
        self.shown.append(state)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Appliance]:
    app = Appliance.open(simulated_settings(tmp_path))
    seed_demo_catalog(app.catalog, app.settings.store)
    app.lookup.refresh()
    yield app
    app.close()


@pytest.fixture
def desk(app: Appliance) -> HelpDesk:
    assert app.help_desk is not None
    return app.help_desk


def post(app: Appliance, event: Event) -> list[HelpCallChanged]:
    changes: list[HelpCallChanged] = []
    app.bus.subscribe(HelpCallChanged, changes.append)
    app.bus.post(event)
    app.bus.drain()
    return changes


def drain(app: Appliance) -> None:
    app.bus.drain()


def test_an_age_restricted_item_at_a_kiosk_calls_and_approval_clears(
    app: Appliance, desk: HelpDesk
) -> None:
    app.checkout.scan(WINE)
    drain(app)
    (call,) = desk.active
    assert (call.reason, call.urgency, call.state) == ("age_check", "help", "open")
    app.checkout.approve_age("staff-1")
    drain(app)
    assert desk.active == ()


def test_taking_the_restricted_item_off_clears_the_call_by_the_customer(
    app: Appliance, desk: HelpDesk
) -> None:
    cart = app.checkout.scan(WINE)
    drain(app)
    changes: list[HelpCallChanged] = []
    app.bus.subscribe(HelpCallChanged, changes.append)
    app.checkout.remove(cart.lines[0].line_id)
    drain(app)
    assert [(c.call.state, c.call.by) for c in changes] == [("cleared", "customer")]


def test_paper_out_is_urgent_in_a_sale_and_flashes_the_light(
    app: Appliance, desk: HelpDesk
) -> None:
    light = Light()
    desk.use_light(light)
    paper_out = DeviceHealth("receipt", "printer", "degraded", "paper out", "sim:9100")
    (opened,) = post(app, DeviceHealthChanged(paper_out))
    assert (opened.call.reason, opened.call.urgency) == ("paper_out", "help")
    assert light.shown[-1] == "steady"
    app.checkout.scan(COFFEE)
    drain(app)
    assert desk.active[0].urgency == "urgent" and light.shown[-1] == "flashing"
    ok = DeviceHealth("receipt", "printer", "ok", "", "sim:9100")
    (cleared,) = post(app, DeviceHealthChanged(ok))
    assert (cleared.call.state, cleared.call.by) == ("cleared", "kiosk")
    assert light.shown[-1] == "off"


def test_a_payment_in_doubt_is_answered_by_a_badge_and_cleared_by_the_sale(
    app: Appliance, desk: HelpDesk
) -> None:
    app.checkout.scan(COFFEE)
    desk.call()  # the customer pressed the help button too
    request = PaymentRequest(199, "EUR", "sale-1/1")
    post(app, CardAnswered(request, PaymentResult("unknown", "sale-1/1")))
    assert {c.reason: c.urgency for c in desk.active} == {
        "customer": "help",
        "payment_in_doubt": "urgent",
    }
    changes = desk.staff_arrived("Ana")
    assert sorted((c.reason, c.state, c.by) for c in changes) == [
        ("customer", "cleared", "Ana"),
        ("payment_in_doubt", "answered", "Ana"),
    ]
    total = app.checkout.totals().total
    app.checkout.pay([Tender("card", total, reference="sale-1/1")])
    drain(app)
    assert desk.active == ()


def test_recovery_that_settles_the_payment_clears_the_call(app: Appliance, desk: HelpDesk) -> None:
    post(app, CardRecovered("sale-2/1", "needs_staff", "terminal silent"))
    assert [c.reason for c in desk.active] == ["payment_in_doubt"]
    assert desk.active[0].urgency == "help"  # found at start, no sale open
    (cleared,) = post(app, CardRecovered("sale-2/1", "not_charged", ""))
    assert (cleared.call.state, cleared.call.by) == ("cleared", "kiosk")


def test_a_staffed_till_makes_no_call_for_an_age_check(tmp_path: Path) -> None:
    settings = simulated_settings(tmp_path)
    staffed = msgspec.structs.replace(
        settings, screen=msgspec.structs.replace(settings.screen, mode="staff")
    )
    app = Appliance.open(staffed)
    try:
        assert app.help_desk is not None
        seed_demo_catalog(app.catalog, app.settings.store)
        app.lookup.refresh()
        app.checkout.require_shift(None)  # the shift rule is not what is tested here
        app.checkout.scan(WINE)
        app.bus.drain()
        assert app.checkout.cart.pending_age_checks
        assert app.help_desk.active == ()
    finally:
        app.close()
