"""The bagging-area check: expected rises, forgiving tolerances, alerts, staff and modes."""

from __future__ import annotations

import pytest

from appliance.core.bagging import (
    ALERT_AFTER_SECONDS,
    HELP_AFTER_SECONDS,
    PROMPT_AFTER_SECONDS,
    BaggingCheck,
    BaggingMode,
    BagItem,
    Tolerance,
)

COFFEE = BagItem("COFFEE", "Ground coffee", grams=260)
LOOSE = BagItem("BREAD", "Bread roll")  # no expected weight


def check(mode: BaggingMode = "enforce", tolerance: Tolerance | None = None) -> BaggingCheck:
    """A check that has seen an empty bagging area at t=0."""
    bagging = BaggingCheck(mode, tolerance or Tolerance(grams=20, percent=10))
    bagging.weighed(0, 0.0)
    return bagging


def test_an_item_put_down_within_its_tolerance_is_bagged() -> None:
    """260 g expected, 10 % either way: 240 g settles it and nothing waits."""
    bagging = check()
    assert bagging.added(COFFEE, 1.0).state == "waiting"

    status = bagging.weighed(240, 2.0)

    assert (status.state, status.pending, status.accepted) == ("settled", (), 240)


def test_a_weight_outside_the_tolerance_is_an_unexpected_item_once_it_lasts() -> None:
    """400 g for a 260 g item: not at once (a slow hand), but after the grace time."""
    bagging = check()
    bagging.added(COFFEE, 1.0)

    assert bagging.weighed(400, 2.0).state == "waiting"
    status = bagging.tick(2.0 + ALERT_AFTER_SECONDS)

    assert status.state == "unexpected_item"
    assert status.pauses
    assert status.change == 400


def test_an_in_between_weight_that_settles_right_raises_no_alert() -> None:
    """Two items put down one after the other: 260 g on the way to 520 g is fine."""
    bagging = check()
    bagging.added(COFFEE, 1.0)
    bagging.added(COFFEE, 1.5)

    assert bagging.weighed(260, 2.0).pending == (COFFEE,)
    status = bagging.weighed(520, 3.0)

    assert status.state == "settled"
    assert bagging.tick(10.0).state == "settled"


def test_both_items_put_down_at_once_are_both_bagged() -> None:
    bagging = check()
    bagging.added(COFFEE, 1.0)
    bagging.added(BagItem("TEA", "Tea", grams=100, tolerance=5), 1.2)

    assert bagging.weighed(365, 2.0).state == "settled"


def test_an_item_without_an_expected_weight_takes_any_settled_rise() -> None:
    bagging = check()
    bagging.added(LOOSE, 1.0)

    assert bagging.weighed(10, 2.0).state == "waiting"  # under the noise threshold
    assert bagging.weighed(75, 3.0).state == "settled"


def test_a_product_tolerance_overrides_the_store_default() -> None:
    """5 g either way for this product: 250 g is not its 260 g, though 10 % would allow it."""
    bagging = check()
    bagging.added(BagItem("COFFEE", "Ground coffee", grams=260, tolerance=5), 1.0)

    bagging.weighed(250, 2.0)

    assert bagging.tick(2.0 + ALERT_AFTER_SECONDS).state == "unexpected_item"


def bagged_coffee() -> BaggingCheck:
    """A sale whose coffee is in the bag."""
    bagging = check()
    bagging.added(COFFEE, 1.0)
    bagging.weighed(260, 2.0)
    return bagging


def test_something_put_down_with_nothing_scanned_is_an_unexpected_item() -> None:
    bagging = bagged_coffee()
    bagging.weighed(760, 3.0)

    assert bagging.tick(3.0 + ALERT_AFTER_SECONDS).state == "unexpected_item"


def test_an_unexpected_item_taken_away_again_ends_the_alert_by_itself() -> None:
    bagging = bagged_coffee()
    bagging.weighed(760, 3.0)
    assert bagging.tick(6.0).state == "unexpected_item"

    assert bagging.weighed(263, 7.0).state == "settled"


def test_before_the_first_scan_any_settled_weight_is_accepted() -> None:
    """The last customer's bags taken away, this one's own bag put down: no alert."""
    bagging = check()
    bagging.weighed(45, 1.0)
    assert bagging.tick(10.0).state == "settled"

    bagging.added(COFFEE, 11.0)
    assert bagging.weighed(305, 12.0).state == "settled"


def test_an_item_taken_from_the_bag_is_an_alert_until_put_back() -> None:
    bagging = check()
    bagging.added(COFFEE, 1.0)
    bagging.weighed(260, 2.0)

    bagging.weighed(0, 3.0)
    assert bagging.tick(3.0 + ALERT_AFTER_SECONDS - 0.1).state == "settled"
    assert bagging.tick(3.0 + ALERT_AFTER_SECONDS).state == "item_removed"

    assert bagging.weighed(262, 9.0).state == "settled"


def test_a_voided_item_is_expected_out_of_the_bag() -> None:
    """Bagged, then taken off the cart: its weight leaving the bag is no alert."""
    bagging = check()
    bagging.added(COFFEE, 1.0)
    bagging.weighed(260, 2.0)

    assert bagging.voided(COFFEE, 3.0).state == "waiting"
    status = bagging.weighed(0, 4.0)

    assert (status.state, status.pending) == ("settled", ())


def test_a_voided_item_never_bagged_is_simply_not_expected_any_more() -> None:
    bagging = check()
    bagging.added(COFFEE, 1.0)

    status = bagging.voided(COFFEE, 2.0)

    assert (status.state, status.pending) == ("settled", ())


def test_a_late_item_prompts_the_customer_then_calls_for_help() -> None:
    bagging = check()
    bagging.added(COFFEE, 1.0)

    assert bagging.tick(1.0 + PROMPT_AFTER_SECONDS - 0.1).state == "waiting"
    prompting = bagging.tick(1.0 + PROMPT_AFTER_SECONDS)
    assert prompting.state == "prompting" and prompting.prompts and not prompting.pauses
    assert bagging.tick(1.0 + HELP_AFTER_SECONDS).state == "not_bagged"
    # Bagged at last: the customer goes on by themselves.
    assert bagging.weighed(258, 40.0).state == "settled"


@pytest.mark.parametrize("action", ["clear", "skip_item"])
def test_staff_accept_the_bag_as_it_is(action: str) -> None:
    bagging = check()
    bagging.added(COFFEE, 1.0)
    bagging.weighed(900, 2.0)
    bagging.tick(10.0)

    status = bagging.staff(action, 11.0)  # type: ignore[arg-type]

    assert (status.state, status.accepted, status.pending) == ("settled", 900, ())
    bagging.added(COFFEE, 12.0)  # and the next item is checked again
    assert bagging.weighed(1160, 13.0).state == "settled"


def test_skip_for_the_sale_stops_expecting_until_the_next_sale() -> None:
    bagging = check()
    bagging.added(COFFEE, 1.0)
    bagging.tick(1.0 + HELP_AFTER_SECONDS)

    assert bagging.staff("skip_sale", 40.0).skipping_sale
    assert bagging.added(COFFEE, 41.0).state == "settled"
    assert bagging.weighed(5000, 42.0).state == "settled"

    status = bagging.new_sale(50.0)
    assert not status.skipping_sale and status.accepted == 5000
    assert bagging.weighed(0, 51.0).state == "settled"  # the bags go after a sale: fine
    bagging.added(COFFEE, 52.0)
    bagging.weighed(700, 53.0)
    assert bagging.tick(60.0).state == "unexpected_item"


def test_log_only_decides_the_same_but_never_pauses_or_prompts() -> None:
    bagging = check("log_only")
    bagging.added(COFFEE, 1.0)

    late = bagging.tick(1.0 + PROMPT_AFTER_SECONDS)
    assert late.state == "prompting" and not late.prompts and not late.waiting
    bagging.weighed(2000, 20.0)
    status = bagging.tick(30.0)

    assert status.state == "unexpected_item" and status.alert and not status.pauses


def test_off_checks_nothing() -> None:
    bagging = check("off")
    bagging.added(COFFEE, 1.0)

    assert bagging.weighed(9000, 2.0).state == "settled"
    assert bagging.tick(100.0).state == "settled"


def test_what_lay_there_before_the_kiosk_looked_is_accepted() -> None:
    bagging = BaggingCheck("enforce", Tolerance())

    assert bagging.weighed(1500, 0.0).state == "settled"
    assert bagging.tick(10.0).state == "settled"


def test_the_store_tolerance_is_the_larger_of_grams_and_percent() -> None:
    assert Tolerance(grams=20, percent=10).around(100) == 20
    assert Tolerance(grams=20, percent=10).around(1000) == 100


@pytest.mark.parametrize(("grams", "percent"), [(-1, 10), (10, 101), (10, -5)])
def test_a_bad_tolerance_is_refused_with_its_values(grams: int, percent: int) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        Tolerance(grams=grams, percent=percent)


def test_a_scale_never_heard_from_expects_nothing_and_never_holds_pay() -> None:
    check = BaggingCheck("enforce", Tolerance())
    status = check.added(BagItem("TEA", "Tea", grams=130), now=0.0)
    status = check.tick(now=1000.0)
    assert (status.state, status.waiting, status.pauses, status.pending) == (
        "settled", False, False, ()
    )  # fmt: skip


def test_a_suspended_check_forgets_what_it_waited_for_and_starts_again_from_the_bag() -> None:
    check = BaggingCheck("enforce", Tolerance(), alert_after=0.0)
    check.weighed(0, now=0.0)
    check.added(BagItem("TEA", "Tea", grams=130), now=1.0)
    assert check.weighed(900, now=2.0).state == "unexpected_item"
    status = check.suspend(now=3.0)
    assert (status.state, status.pauses, status.waiting, status.pending) == (
        "suspended", False, False, ()
    )  # fmt: skip
    assert check.added(BagItem("SOAP", "Soap", grams=90), now=4.0).pending == ()
    assert check.weighed(1500, now=5.0).state == "suspended"
    status = check.resume(now=6.0)
    assert (status.state, status.accepted) == ("settled", 1500)  # the bag as it is now
    assert check.added(BagItem("SOAP", "Soap", grams=90), now=7.0).waiting
    assert check.weighed(1590, now=8.0).state == "settled"
