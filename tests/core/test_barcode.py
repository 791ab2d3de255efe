"""Tests for barcode validation, normalisation and variable-measure decoding."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.barcode import (
    GtinKind,
    ScannedCode,
    VariableMeasure,
    VariableMeasureRule,
    gtin_check_digit,
    is_barcode_like,
    normalize_gtin,
    parse_barcode,
)
from appliance.errors import BarcodeError

# GS1 General Specifications 7.9.3 weighting-factor tables, written out by hand so the tests do
# not share the module's arithmetic.
W2_MINUS = (0, 2, 4, 6, 8, 9, 1, 3, 5, 7)
W3 = (0, 3, 6, 9, 2, 5, 8, 1, 4, 7)
W5_PLUS = (0, 5, 1, 6, 2, 7, 3, 8, 4, 9)
W5_MINUS = (0, 5, 9, 4, 8, 3, 7, 2, 6, 1)

PRICE_20 = VariableMeasureRule(prefix="20", item_digits=5, measure="price")
WEIGHT_21 = VariableMeasureRule(prefix="21", item_digits=5, measure="weight")
PRICE_22_PCD4 = VariableMeasureRule(
    prefix="22", item_digits=5, measure="price", price_check_digit=True
)
WEIGHT_23_PCD5 = VariableMeasureRule(
    prefix="23", item_digits=4, measure="weight", price_check_digit=True
)
PRICE_02 = VariableMeasureRule(prefix="02", item_digits=5, measure="price")
RULES = (PRICE_20, WEIGHT_21, PRICE_22_PCD4, WEIGHT_23_PCD5, PRICE_02)

digit_strings = st.text(alphabet="0123456789", min_size=1, max_size=20)


def with_check(body: str) -> str:
    """body followed by its GS1 mod-10 check digit."""
    return body + gtin_check_digit(body)


def reference_price_check_digit(value: str) -> str:
    """Independent GS1 7.9.3 price/weight verifier digit for 4 or 5 digits."""
    d = [int(c) for c in value]
    if len(d) == 4:
        return str((W2_MINUS[d[0]] + W2_MINUS[d[1]] + W3[d[2]] + W5_MINUS[d[3]]) * 3 % 10)
    total = W5_PLUS[d[0]] + W2_MINUS[d[1]] + W5_MINUS[d[2]] + W5_PLUS[d[3]] + W2_MINUS[d[4]]
    return str(W5_MINUS.index(-total % 10))


# --- check digit and normalisation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "digit"),
    [
        ("400638133393", "1"),
        ("9638507", "4"),
        ("03600029145", "2"),
        ("501234567890", "0"),
        ("0", "0"),
    ],
)
def test_gtin_check_digit_known_values(body: str, digit: str) -> None:
    assert gtin_check_digit(body) == digit


@pytest.mark.parametrize("body", ["", "12a4", "١٢٣"])
def test_gtin_check_digit_refuses_non_digits(body: str) -> None:
    with pytest.raises(BarcodeError, match="not numeric"):
        gtin_check_digit(body)


@pytest.mark.parametrize(
    ("code", "normalised"),
    [
        ("96385074", "00000096385074"),
        ("036000291452", "00036000291452"),
        ("4006381333931", "04006381333931"),
        ("10012345000017", "10012345000017"),
        (" 4006381333931\n", "04006381333931"),
    ],
)
def test_normalize_gtin(code: str, normalised: str) -> None:
    assert normalize_gtin(code) == normalised


def test_normalize_gtin_errors() -> None:
    with pytest.raises(
        BarcodeError, match=r"^barcode 12345 has 5 digits; expected 8, 12, 13 or 14$"
    ):
        normalize_gtin("12345")
    with pytest.raises(BarcodeError, match=r"bad check digit \(expected 1\)"):
        normalize_gtin("4006381333932")
    with pytest.raises(BarcodeError, match="not numeric"):
        normalize_gtin("4OO6381333931")
    with pytest.raises(BarcodeError, match="empty"):
        normalize_gtin("  ")


# --- parsing ordinary codes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "key"),
    [
        ("4006381333931", "ean13", "04006381333931"),
        ("5012345678900", "ean13", "05012345678900"),
        ("96385074", "ean8", "00000096385074"),
        ("036000291452", "upca", "00036000291452"),
        ("0036000291452", "ean13", "00036000291452"),
        ("00036000291452", "ean13", "00036000291452"),
    ],
)
def test_parse_known_codes(text: str, kind: GtinKind, key: str) -> None:
    scanned = parse_barcode(text)
    assert scanned == ScannedCode(raw=text, kind=kind, lookup_key=key)


def test_parse_strips_surrounding_whitespace() -> None:
    scanned = parse_barcode("\t 4006381333931\r\n")
    assert scanned.raw == "4006381333931"
    assert scanned.lookup_key == "04006381333931"


def test_upca_and_its_ean13_form_share_a_key() -> None:
    assert parse_barcode("036000291452").lookup_key == parse_barcode("0036000291452").lookup_key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "barcode is empty"),
        ("   \n", "barcode is empty"),
        ("12AB", "barcode 12AB is not numeric"),
        (" 12AB ", "barcode 12AB is not numeric"),
        ("4006-381333931", "barcode 4006-381333931 is not numeric"),
        ("40063813 33931", "barcode 40063813 33931 is not numeric"),
        ("١٢٣", "barcode ١٢٣ is not numeric"),
        ("４００６３８１３３３９３１", "barcode ４００６３８１３３３９３１ is not numeric"),
        ("+4006381333931", "barcode +4006381333931 is not numeric"),
        ("12345", "barcode 12345 has 5 digits; expected 8, 12 or 13"),
        ("1", "barcode 1 has 1 digits; expected 8, 12 or 13"),
        ("123456789", "barcode 123456789 has 9 digits; expected 8, 12 or 13"),
        ("123456789012345", "barcode 123456789012345 has 15 digits; expected 8, 12 or 13"),
        ("4006381333932", "barcode 4006381333932 has a bad check digit (expected 1)"),
        ("96385075", "barcode 96385075 has a bad check digit (expected 4)"),
        ("036000291453", "barcode 036000291453 has a bad check digit (expected 2)"),
        ("00036000291453", "barcode 00036000291453 has a bad check digit (expected 2)"),
        (
            "10012345000017",
            "barcode 10012345000017 is a case code (GTIN-14 with indicator 1), not a retail item",
        ),
    ],
)
def test_parse_refuses_bad_input_with_a_plain_message(text: str, message: str) -> None:
    with pytest.raises(BarcodeError) as caught:
        parse_barcode(text)
    assert str(caught.value) == message


def test_long_garbage_is_cut_short_in_the_message() -> None:
    with pytest.raises(BarcodeError) as caught:
        parse_barcode("x" * 1000)
    assert len(str(caught.value)) < 80
    assert str(caught.value).endswith("… is not numeric")


@given(body=st.text(alphabet="0123456789", min_size=7, max_size=7))
def test_any_ean8_body_with_its_check_digit_parses(body: str) -> None:
    scanned = parse_barcode(with_check(body))
    assert scanned.kind == "ean8"
    assert scanned.lookup_key == with_check(body).zfill(14)


@given(body=st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_any_upca_body_with_its_check_digit_parses(body: str) -> None:
    scanned = parse_barcode(with_check(body))
    assert scanned.kind == "upca"
    assert scanned.lookup_key == "00" + with_check(body)


@given(body=st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_any_ean13_body_with_its_check_digit_parses(body: str) -> None:
    scanned = parse_barcode(with_check(body))
    assert scanned.kind == "ean13"
    assert scanned.variable is None
    assert scanned.lookup_key == "0" + with_check(body)


@given(
    body=st.sampled_from([7, 11, 12]).flatmap(
        lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
    ),
    data=st.data(),
)
def test_any_single_digit_change_is_detected(body: str, data: st.DataObject) -> None:
    code = with_check(body)
    position = data.draw(st.integers(min_value=0, max_value=len(code) - 1))
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != code[position]]))
    altered = code[:position] + replacement + code[position + 1 :]
    with pytest.raises(BarcodeError, match="bad check digit"):
        parse_barcode(altered)


@given(body=st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_upca_and_ean13_forms_give_equal_keys(body: str) -> None:
    upca = with_check(body)
    assert parse_barcode(upca).lookup_key == parse_barcode("0" + upca).lookup_key
    assert parse_barcode(upca).lookup_key == parse_barcode("00" + upca).lookup_key


@given(text=st.text())
def test_parse_raises_only_barcode_error_for_any_text(text: str) -> None:
    # Any other exception type escapes and fails the test.
    with contextlib.suppress(BarcodeError):
        parse_barcode(text, RULES)


@given(text=st.text(alphabet=st.characters(categories=["Nd", "No", "Zs", "Cc"])))
def test_parse_raises_only_barcode_error_for_digit_like_text(text: str) -> None:
    try:
        scanned = parse_barcode(text, RULES)
    except BarcodeError:
        return
    assert scanned.raw.isascii()


@given(text=digit_strings)
def test_parse_raises_only_barcode_error_for_any_digits(text: str) -> None:
    try:
        scanned = parse_barcode(text, RULES)
    except BarcodeError:
        return
    assert len(scanned.lookup_key) == 14
    assert parse_barcode(scanned.lookup_key[1:]).lookup_key == scanned.lookup_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4006381333931", True),
        ("96385074", True),
        ("036000291452", True),
        ("10012345000017", True),
        (" 96385074\n", True),
        ("4006381333932", True),
        ("12345", False),
        ("123456789", False),
        ("12AB5678", False),
        ("", False),
        ("١٢٣٤٥٦٧٨", False),
    ],
)
def test_is_barcode_like(text: str, expected: bool) -> None:
    assert is_barcode_like(text) is expected


@given(text=st.text())
def test_is_barcode_like_agrees_with_parse_on_shape(text: str) -> None:
    if not is_barcode_like(text):
        with pytest.raises(BarcodeError):
            parse_barcode(text)


# --- variable measure --------------------------------------------------------------------------


def test_price_without_check_digit() -> None:
    scanned = parse_barcode("2012345012998", RULES)
    assert scanned.kind == "ean13"
    assert scanned.variable == VariableMeasure(measure="price", value=1299)
    assert scanned.lookup_key == "0" + with_check("201234500000")


def test_weight_without_check_digit() -> None:
    code = with_check("21543210" + "1250")
    scanned = parse_barcode(code, RULES)
    assert scanned.variable == VariableMeasure(measure="weight", value=1250)
    assert scanned.lookup_key == "0" + with_check("215432100000")


def test_price_with_four_digit_price_check_digit() -> None:
    # GS1 General Specifications 7.9.3 worked example: 2875 has verifier 9.
    code = with_check("22" + "12345" + "9" + "2875")
    assert code == "2212345928750"
    scanned = parse_barcode(code, RULES)
    assert scanned.variable == VariableMeasure(measure="price", value=2875)
    assert scanned.lookup_key == "0" + with_check("221234500000")


def test_weight_with_five_digit_price_check_digit() -> None:
    # GS1 General Specifications 7.9.3 worked example: 14685 has verifier 6.
    code = with_check("23" + "1234" + "6" + "14685")
    scanned = parse_barcode(code, RULES)
    assert scanned.variable == VariableMeasure(measure="weight", value=14685)
    assert scanned.lookup_key == "0" + with_check("231234000000")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("22" + "12345" + "0" + "2875", "9"),
        ("23" + "1234" + "0" + "14685", "6"),
    ],
)
def test_bad_price_check_digit_is_refused(body: str, expected: str) -> None:
    code = with_check(body)
    with pytest.raises(BarcodeError) as caught:
        parse_barcode(code, RULES)
    assert str(caught.value) == f"barcode {code} has a bad price check digit (expected {expected})"


def test_bad_overall_check_digit_is_reported_before_the_price_check_digit() -> None:
    code = with_check("22" + "12345" + "9" + "2875")
    broken = code[:-1] + str((int(code[-1]) + 1) % 10)
    with pytest.raises(BarcodeError, match=r"has a bad check digit"):
        parse_barcode(broken, RULES)


@given(
    item=st.text(alphabet="0123456789", min_size=5, max_size=5),
    value=st.text(alphabet="0123456789", min_size=4, max_size=4),
    wrong=st.sampled_from("0123456789"),
)
def test_four_digit_price_check_digit_matches_gs1_tables(item: str, value: str, wrong: str) -> None:
    right = reference_price_check_digit(value)
    scanned = parse_barcode(with_check("22" + item + right + value), RULES)
    assert scanned.variable == VariableMeasure(measure="price", value=int(value))
    if wrong != right:
        with pytest.raises(BarcodeError, match=rf"bad price check digit \(expected {right}\)"):
            parse_barcode(with_check("22" + item + wrong + value), RULES)


@given(
    item=st.text(alphabet="0123456789", min_size=4, max_size=4),
    value=st.text(alphabet="0123456789", min_size=5, max_size=5),
    wrong=st.sampled_from("0123456789"),
)
def test_five_digit_price_check_digit_matches_gs1_tables(item: str, value: str, wrong: str) -> None:
    right = reference_price_check_digit(value)
    scanned = parse_barcode(with_check("23" + item + right + value), RULES)
    assert scanned.variable == VariableMeasure(measure="weight", value=int(value))
    if wrong != right:
        with pytest.raises(BarcodeError, match=rf"bad price check digit \(expected {right}\)"):
            parse_barcode(with_check("23" + item + wrong + value), RULES)


@given(
    rule=st.sampled_from(RULES[:4]),
    item=st.text(alphabet="0123456789", min_size=5, max_size=5),
    values=st.lists(st.integers(min_value=0, max_value=9999), min_size=2, max_size=2, unique=True),
)
def test_same_item_with_different_values_shares_one_key(
    rule: VariableMeasureRule, item: str, values: list[int]
) -> None:
    item = item[: rule.item_digits]
    codes = []
    for value in values:
        digits = str(value).zfill(rule.value_digits)
        verifier = reference_price_check_digit(digits) if rule.price_check_digit else ""
        codes.append(with_check(rule.prefix + item + verifier + digits))
    first, second = (parse_barcode(code, RULES) for code in codes)
    assert first.lookup_key == second.lookup_key
    assert first.variable is not None
    assert second.variable is not None
    assert [first.variable.value, second.variable.value] == values
    assert first.raw != second.raw


def test_different_items_get_different_keys() -> None:
    a = parse_barcode(with_check("20" + "11111" + "01299"), RULES)
    b = parse_barcode(with_check("20" + "22222" + "01299"), RULES)
    assert a.lookup_key != b.lookup_key


def test_upca_form_of_prefix_02_is_decoded_like_its_ean13_form() -> None:
    ean13 = with_check("02" + "12345" + "00499")
    upca = ean13[1:]
    from_upca = parse_barcode(upca, RULES)
    from_ean13 = parse_barcode(ean13, RULES)
    assert from_upca.kind == "upca"
    assert from_upca.variable == from_ean13.variable == VariableMeasure("price", 499)
    assert from_upca.lookup_key == from_ean13.lookup_key == "0" + with_check("021234500000")


def test_prefix_without_a_rule_is_an_ordinary_ean13() -> None:
    code = with_check("25" + "12345" + "01299")
    scanned = parse_barcode(code, RULES)
    assert scanned == ScannedCode(raw=code, kind="ean13", lookup_key="0" + code)


def test_without_rules_value_digits_are_not_interpreted() -> None:
    code = with_check("20" + "12345" + "01299")
    scanned = parse_barcode(code)
    assert scanned.variable is None
    assert scanned.lookup_key == "0" + code


def test_ean8_starting_with_2_is_never_variable_measure() -> None:
    code = with_check("2012345")
    assert parse_barcode(code, RULES).variable is None


def test_first_matching_rule_wins() -> None:
    code = with_check("20" + "12345" + "01299")
    weight = VariableMeasureRule(prefix="20", item_digits=5, measure="weight")
    assert parse_barcode(code, (weight, PRICE_20)).variable == VariableMeasure("weight", 1299)


# --- rule validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["01", "03", "19", "30", "2", "020", "2a", "", "٢٠"])
def test_rule_refuses_a_non_variable_prefix(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix must be '02' or '20' to '29'"):
        VariableMeasureRule(prefix=prefix, item_digits=5, measure="price")


@pytest.mark.parametrize(
    ("item_digits", "price_check_digit", "value_digits"),
    [(8, False, 2), (3, False, 7), (7, True, 2), (1, False, 9)],
)
def test_rule_refuses_value_fields_outside_three_to_six_digits(
    item_digits: int, price_check_digit: bool, value_digits: int
) -> None:
    with pytest.raises(ValueError, match=f"leaves {value_digits} value digits; expected 3 to 6"):
        VariableMeasureRule("20", item_digits, "price", price_check_digit)


@pytest.mark.parametrize(("item_digits", "value_digits"), [(6, 3), (3, 6)])
def test_rule_refuses_a_price_check_digit_over_other_than_four_or_five_digits(
    item_digits: int, value_digits: int
) -> None:
    with pytest.raises(ValueError, match=f"needs 4 or 5 value digits.*leaves {value_digits}$"):
        VariableMeasureRule("20", item_digits, "price", price_check_digit=True)


@pytest.mark.parametrize("item_digits", [0, -1])
def test_rule_refuses_a_non_positive_item_length(item_digits: int) -> None:
    with pytest.raises(ValueError, match="item_digits must be at least 1"):
        VariableMeasureRule("20", item_digits, "price")


def test_rule_refuses_an_unknown_measure() -> None:
    with pytest.raises(ValueError, match="measure must be 'price' or 'weight'"):
        VariableMeasureRule("20", 5, "volume")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("item_digits", "price_check_digit", "value_digits"),
    [(4, False, 6), (5, False, 5), (7, False, 3), (4, True, 5), (5, True, 4)],
)
def test_rule_accepts_layouts_that_fill_thirteen_digits(
    item_digits: int, price_check_digit: bool, value_digits: int
) -> None:
    rule = VariableMeasureRule("02", item_digits, "weight", price_check_digit)
    assert rule.value_digits == value_digits


def test_values_are_frozen() -> None:
    scanned = parse_barcode("4006381333931")
    with pytest.raises(dataclasses.FrozenInstanceError):
        scanned.lookup_key = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRICE_20.prefix = "21"  # type: ignore[misc]
