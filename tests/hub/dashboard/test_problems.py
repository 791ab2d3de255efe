"""What the dashboard lists as wrong with a device, read from its last telemetry."""

from __future__ import annotations

from appliance.mqtt.payloads import DeviceHealthReport, StoredValueReport
from hub.dashboard.views import CARDS_LATE_S, problems
from tests.hub.api.test_devices_api import telemetry


def held(debits: int, voids: int, waited_s: float | None) -> StoredValueReport:
    """Stored-value debits and voids a device holds, the oldest `waited_s` old."""
    return StoredValueReport(
        debits=debits,
        debit_amount=500 * debits,
        voids=voids,
        void_amount=300 * voids,
        currency="EUR",
        oldest_age_s=waited_s,
    )


def test_card_debits_held_back_past_a_quarter_of_an_hour_are_a_problem() -> None:
    late = telemetry("kiosk-1", quarantined_sales=0, stored_value=held(2, 1, 1_800.0))
    assert problems(late) == (
        "3 card debit(s) or give-back(s) not settled with the hub for 30 min",
    )


def test_card_debits_on_their_way_or_none_at_all_are_not() -> None:
    for report in (
        held(2, 0, CARDS_LATE_S),  # a device back after an outage sends them as it reports
        held(0, 0, None),
        None,
    ):
        assert problems(telemetry("kiosk-1", quarantined_sales=0, stored_value=report)) == ()


def test_each_problem_is_one_phrase_in_the_order_of_the_report() -> None:
    printer = DeviceHealthReport(device="printer", kind="printer", state="paper_out")
    report = telemetry(
        "kiosk-1", devices=[printer], quarantined_sales=2, stored_value=held(1, 0, 3_600.0)
    )
    assert problems(report) == (
        "printer printer: paper_out",
        "2 sale(s) quarantined",
        "1 card debit(s) or give-back(s) not settled with the hub for 60 min",
    )
