"""ZVT commands: the bytes of what the ECR sends, and its BMPs read back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.payment import PAYMENT_TYPES
from appliance.drivers.zvt import commands
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.bmp import decode_bmps
from appliance.drivers.zvt.commands import Command
from appliance.drivers.zvt.fields import decode_bcd
from appliance.drivers.zvt.tlv import decode_tlv
from appliance.errors import DeviceError, ZvtError


def wire(apdu: Apdu) -> str:
    return apdu.encode().hex(" ").upper()


def test_registration_is_password_config_byte_and_bare_currency() -> None:
    # The spec's example: password 000000, config BA, EUR (09 78) with no BMP id before it.
    apdu = commands.registration("000000", 0xBA, 978)
    assert wire(apdu) == "06 00 06 00 00 00 BA 09 78"


def test_registration_allowing_text_blocks_lists_06_d3_under_tag_26() -> None:
    tlv = commands.permitted_commands((0x06, 0xD3))
    apdu = commands.registration("123456", commands.config_byte(True), 756, tlv=tlv)
    assert wire(apdu) == "06 00 0E 12 34 56 BE 07 56 06 06 26 04 0A 02 06 D3"


def test_registration_with_a_service_byte_puts_it_behind_bmp_03() -> None:
    apdu = commands.registration("000000", 0x38, 978, service_byte=0x01)
    assert apdu.data.hex(" ").upper() == "00 00 00 38 09 78 03 01"


def test_the_config_byte_says_who_prints() -> None:
    # ECR prints (02 payment, 04 admin, 80 as lines); intermediate status 08; ECR controls 30.
    assert commands.config_byte(True) == 0xBE
    assert commands.config_byte(False) == 0x38


def test_authorization_of_12_50_eur_carries_amount_and_currency() -> None:
    apdu = commands.authorization(1250, 978)
    assert wire(apdu) == "06 01 0A 04 00 00 00 00 12 50 49 09 78"


def test_authorization_with_a_payment_type_adds_bmp_19() -> None:
    apdu = commands.authorization(1, 978, commands.PAYMENT_TYPE_PT_DECIDES)
    assert wire(apdu) == "06 01 0C 04 00 00 00 00 00 01 49 09 78 19 40"


def test_abort_log_off_and_diagnosis_carry_no_data() -> None:
    assert wire(commands.abort()) == "06 B0 00"
    assert wire(commands.log_off()) == "06 02 00"
    assert wire(commands.diagnosis()) == "06 70 00"
    assert wire(commands.diagnosis("000000")) == "06 70 03 00 00 00"


def test_password_only_commands() -> None:
    assert wire(commands.status_enquiry("000000")) == "05 01 03 00 00 00"
    assert wire(commands.end_of_day("123456")) == "06 50 03 12 34 56"
    assert wire(commands.repeat_receipt("000000")) == "06 20 03 00 00 00"


def test_reversal_names_the_receipt_number_in_bmp_87() -> None:
    assert wire(commands.reversal("000000", 42)) == "06 30 06 00 00 00 87 00 42"


def test_refund_carries_password_amount_and_currency() -> None:
    apdu = commands.refund("000000", 500, 978)
    assert wire(apdu) == "06 31 0D 00 00 00 04 00 00 00 00 05 00 49 09 78"


@pytest.mark.parametrize(
    ("build", "why"),
    [
        (lambda: commands.authorization(0, 978), "amount 0"),
        (lambda: commands.authorization(10**12, 978), "amount 1000000000000"),
        (lambda: commands.refund("12345", 100, 978), "six digits"),
        (lambda: commands.status_enquiry("12a456"), "six digits"),
        (lambda: commands.reversal("000000", 10000), "receipt number 10000"),
        (lambda: commands.registration("000000", 0x100, 978), "one byte"),
        (lambda: commands.authorization(1, 1000), "currency code 1000"),
    ],
)
def test_a_value_a_command_cannot_carry_is_refused_before_sending(
    build: Callable[[], Apdu], why: str
) -> None:
    with pytest.raises(ZvtError, match=why):
        build()


def test_currencies_map_to_their_iso_numbers() -> None:
    assert commands.currency_numeric("EUR") == 978
    assert commands.currency_numeric("CHF") == 756
    assert commands.CURRENCY_ALPHA[826] == "GBP"
    with pytest.raises(DeviceError, match="XTS"):
        commands.currency_numeric("XTS")


def test_payment_type_lets_the_pt_decide_only_when_everything_is_allowed() -> None:
    assert commands.payment_type_for(PAYMENT_TYPES) is None
    assert commands.payment_type_for(reversed(PAYMENT_TYPES)) is None
    with pytest.raises(DeviceError, match="cannot refuse contactless, wallet"):
        commands.payment_type_for(("card",))
    with pytest.raises(DeviceError, match="cannot refuse card"):
        commands.payment_type_for(("contactless", "wallet"))


def test_each_builder_names_its_command() -> None:
    assert Command.of(commands.authorization(1, 978)) is Command.AUTHORIZATION
    assert Command.of(commands.status_enquiry("000000")) is Command.STATUS_ENQUIRY
    with pytest.raises(ZvtError, match="04 0F is not an ECR command"):
        Command.of(Apdu(0x04, 0x0F))


def test_tag_26_reads_back_as_the_commands_it_lists() -> None:
    [(tag, content)] = decode_tlv(commands.permitted_commands((0x06, 0xD3), (0x06, 0xD1)))
    assert tag == 0x26
    assert decode_tlv(content) == [(0x0A, b"\x06\xd3"), (0x0A, b"\x06\xd1")]


@given(
    amount=st.integers(1, commands.MAX_AMOUNT),
    currency=st.sampled_from(sorted(commands.CURRENCY_NUMERIC.values())),
    payment_type=st.none() | st.integers(0, 255),
)
def test_an_authorization_reads_back_as_the_values_it_was_built_from(
    amount: int, currency: int, payment_type: int | None
) -> None:
    apdu = commands.authorization(amount, currency, payment_type)
    fields = dict(decode_bmps(apdu.data))
    assert decode_bcd(fields[0x04]) == amount
    assert decode_bcd(fields[0x49]) == currency
    assert fields.get(0x19) == (None if payment_type is None else bytes((payment_type,)))


@given(password=st.integers(0, 999999), receipt=st.integers(0, 9999))
def test_a_reversal_reads_back_as_password_and_receipt(password: int, receipt: int) -> None:
    apdu = commands.reversal(f"{password:06d}", receipt)
    assert decode_bcd(apdu.data[:3]) == password
    assert decode_bmps(apdu.data[3:]) == [(0x87, bytes.fromhex(f"{receipt:04d}"))]


@given(amount=st.integers(1, commands.MAX_AMOUNT))
def test_a_refund_reads_back_as_its_amount(amount: int) -> None:
    apdu = commands.refund("000000", amount, 978)
    assert decode_bcd(dict(decode_bmps(apdu.data[3:]))[0x04]) == amount
