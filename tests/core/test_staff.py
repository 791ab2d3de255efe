"""Staff PINs as salted slow hashes, badge keys, and who may give a discount."""

from __future__ import annotations

import hashlib

import pytest

from appliance.core.staff import (
    PIN_MAX_DIGITS,
    SCHEME,
    StaffError,
    StaffMember,
    badge_key,
    check_pin,
    hash_pin,
    may_discount,
    verify_pin,
)

CASHIER = StaffMember("S1", "Alex", "cashier")
SUPERVISOR = StaffMember("S2", "Sam", "supervisor")
FIXED_SALT = bytes(range(16))


@pytest.fixture(scope="module")
def stored() -> str:
    """One hash of PIN 1357, shared: each scrypt costs tens of milliseconds."""
    return hash_pin("1357")


def test_the_same_pin_hashes_differently_each_time(stored: str) -> None:
    again = hash_pin("1357")
    assert again != stored, "no salt: equal PINs would show as equal hashes"
    assert "1357" not in stored
    assert stored.startswith(f"{SCHEME}$")
    assert len(stored.split("$")) == 6


def test_a_given_salt_gives_a_repeatable_hash() -> None:
    assert hash_pin("2468", salt=FIXED_SALT) == hash_pin("2468", salt=FIXED_SALT)


def test_the_right_pin_verifies_and_a_wrong_one_does_not(stored: str) -> None:
    assert verify_pin("1357", stored)
    assert not verify_pin("1358", stored)
    assert not verify_pin("13570", stored)


@pytest.mark.parametrize(
    "damage",
    [
        lambda h: "",
        lambda h: "garbage",
        lambda h: h.replace(SCHEME, "md5", 1),  # another scheme
        lambda h: "$".join(h.split("$")[:-1]),  # a field missing
        lambda h: h[:-8] + "!!!!!!!!",  # the digest is not base64
        lambda h: h.replace("$16384$", "$abc$", 1),  # the cost is not a number
        lambda h: h.replace("$16384$", "$3$", 1),  # scrypt refuses n that is not a power of 2
    ],
    ids=["empty", "garbage", "scheme", "fields", "digest", "cost", "bad-n"],
)
def test_a_damaged_hash_never_matches(stored: str, damage: object) -> None:
    broken = damage(stored)  # type: ignore[operator]
    assert not verify_pin("1357", broken)


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        ("123", "4 to 12 digits"),
        ("1" + "2" * PIN_MAX_DIGITS, "4 to 12 digits"),
        ("12a4", "4 to 12 digits"),
        ("12 34", "4 to 12 digits"),
        ("١٢٣٤", "4 to 12 digits"),  # Arabic-Indic digits: str.isdigit() alone would pass them
        ("7777", "one repeated digit"),
        ("", "4 to 12 digits"),
    ],
)
def test_bad_pins_are_refused_before_hashing(pin: str, why: str) -> None:
    with pytest.raises(StaffError, match=why):
        check_pin(pin)
    with pytest.raises(StaffError, match=why):
        hash_pin(pin)


def test_badge_key_normalises_case_and_spaces_and_hides_the_uid() -> None:
    key = badge_key("04c0ffee000001")
    assert key == badge_key(" 04C0FFEE000001 ")
    assert key == hashlib.sha256(b"04C0FFEE000001").hexdigest()
    assert "04C0FFEE000001" not in key.upper()
    assert badge_key("04C0FFEE000002") != key


@pytest.mark.parametrize("uid", ["", "   ", "04:C0:FF", "04C0FFEG", "badge-1", "０４"])
def test_badge_key_refuses_what_is_not_hex(uid: str) -> None:
    with pytest.raises(StaffError, match="hexadecimal"):
        badge_key(uid)


def test_a_cashier_may_discount_up_to_the_limit_and_a_supervisor_any_amount() -> None:
    assert may_discount(CASHIER, 0, cashier_limit=10)
    assert may_discount(CASHIER, 10, cashier_limit=10)
    assert not may_discount(CASHIER, 11, cashier_limit=10)
    assert not may_discount(CASHIER, 1, cashier_limit=0)
    assert may_discount(SUPERVISOR, 100, cashier_limit=10)
    assert SUPERVISOR.is_supervisor and not CASHIER.is_supervisor
