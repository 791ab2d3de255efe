"""The [till] section: notes and coins, cash rounding, sign-off and the kiosk's shift hours."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.errors import ConfigError
from appliance.settings import parse_settings


def settings_with(till: dict[str, Any], currency: str = "EUR") -> Any:
    """Settings with this [till] table and store currency."""
    return parse_settings(
        {"device": {"id": "till-1"}, "store": {"currency": currency}, "till": till}
    )


def test_defaults_follow_the_store_currency() -> None:
    eur = settings_with({}).till
    assert eur.denominations[0] == 50000 and eur.denominations[-1] == 1
    assert (eur.cash_rounding, eur.rounding_increment, eur.signoff_threshold) == (0, 0, 500)
    assert eur.kiosk_schedule is None
    chf = settings_with({}, "CHF").till
    assert chf.denominations[-1] == 5
    assert chf.rounding_increment == 5


def test_a_currency_not_listed_gets_one_two_five_steps() -> None:
    sek = settings_with({}, "SEK").till
    assert sek.denominations[:3] == (50000, 20000, 10000)
    assert sek.denominations[-1] == 1


def test_explicit_values_win() -> None:
    till = settings_with(
        {
            "denominations": [2000, 1000, 500, 100],
            "cash_rounding": 0,
            "signoff_threshold": 0,
            "kiosk_shift_open": "07:30",
            "kiosk_shift_close": "22:00",
        },
        "CHF",
    ).till
    assert till.denominations == (2000, 1000, 500, 100)
    assert till.rounding_increment == 0
    assert till.kiosk_schedule == ("07:30", "22:00")


@pytest.mark.parametrize(
    ("till", "key", "expected"),
    [
        ({"denominations": [100, 500]}, "till.denominations", "largest first"),
        ({"denominations": [500, 500]}, "till.denominations", "once"),
        ({"denominations": [500, 0]}, "till.denominations", ">"),
        ({"cash_rounding": -5}, "till.cash_rounding", ">= 0"),
        ({"cash_rounding": 2, "denominations": [10, 5]}, "till.cash_rounding", "smallest coin"),
        ({"signoff_threshold": -1}, "till.signoff_threshold", ">= 0"),
        (
            {"kiosk_shift_open": "7:30", "kiosk_shift_close": "22:00"},
            "till.kiosk_shift_open",
            "07:30",
        ),
        ({"kiosk_shift_open": "07:30"}, "till.kiosk_shift_open", "together"),
        (
            {"kiosk_shift_open": "07:30", "kiosk_shift_close": "07:30"},
            "till.kiosk_shift_close",
            "differ",
        ),
        ({"float": 100}, "till.float", "unknown key"),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(
    till: dict[str, Any], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_with(till)
    message = str(caught.value)
    assert key in message
    assert expected in message
