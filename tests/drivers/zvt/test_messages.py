"""Parsing what a ZVT terminal sends: real shapes field by field, and garbage only as ZvtError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.drivers.zvt.apdu import Apdu, decode_apdu
from appliance.drivers.zvt.bmp import encode_bmp
from appliance.drivers.zvt.commands import Command
from appliance.drivers.zvt.fields import encode_bcd, encode_llvar
from appliance.drivers.zvt.messages import (
    Abort,
    Completion,
    IntermediateStatus,
    NegativeAck,
    PositiveAck,
    PrintLine,
    PrintTextBlock,
    StatusInformation,
    mask_pan,
    parse,
)
from appliance.drivers.zvt.result_codes import MSG_CURRENCY, MSG_DECLINED, message_for
from appliance.drivers.zvt.tlv import encode_tlv
from appliance.errors import ZvtError

AUTH = Command.AUTHORIZATION


def status_information(*fields: tuple[int, bytes]) -> Apdu:
    return Apdu(0x04, 0x0F, b"".join(encode_bmp(bmp, value) for bmp, value in fields))


# An approved girocard payment's Status-Information, in a real terminal's order.
APPROVED = status_information(
    (0x27, b"\x00"),
    (0x04, encode_bcd(1250, 6)),
    (0x0B, encode_bcd(123, 3)),
    (0x0C, bytes.fromhex("14 30 05")),
    (0x0D, bytes.fromhex("12 06")),
    (0x0E, bytes.fromhex("28 12")),
    (0x17, encode_bcd(1, 2)),
    (0x19, b"\x60"),
    (0x22, bytes.fromhex("67 25 59 EE EE EE 12 34")),
    (0x29, encode_bcd(52500038, 4)),
    (0x2A, b"123456789012345"),
    (0x3B, b"A1B2C3\x00\x00"),
    (0x49, encode_bcd(978, 2)),
    (0x87, encode_bcd(17, 2)),
    (0x88, encode_bcd(42, 3)),
    (0x8A, b"\x05"),
    (0x8B, b"girocard\x00"),
    (0x8C, b"\x05"),
    (0xAA, bytes.fromhex("26 12 06")),
    (0x06, encode_tlv(0x1F11, b"\x01") + encode_tlv(0x1F10, b"\x00")),
)


def test_a_real_status_information_is_read_field_by_field() -> None:
    info = parse(APPROVED, AUTH)
    assert info == StatusInformation(
        result_code=0,
        amount=1250,
        trace_number=123,
        time="143005",
        date="1206",
        masked_pan="672559******1234",
        card_name="girocard",
        card_type=5,
        card_type_id=5,
        terminal_id="52500038",
        receipt_number=17,
        turnover_number=42,
        auth_code="A1B2C3",
        vu_number="123456789012345",
        currency=978,
        payment_type=0x60,
        online=True,
    )
    assert not info.offline


def test_the_online_flag_zero_marks_an_offline_approval() -> None:
    info = parse(status_information((0x27, b"\x00"), (0x06, encode_tlv(0x1F11, b"\x00"))), AUTH)
    assert isinstance(info, StatusInformation)
    assert info.offline


def test_a_card_number_sent_with_too_many_digits_is_masked_to_6_and_4() -> None:
    assert mask_pan(bytes.fromhex("67 25 59 12 34 56 12 34")) == "672559******1234"
    # 19 digits, padded with F: the F goes, the middle nine are masked.
    assert mask_pan(bytes.fromhex("67 25 59 12 34 56 78 91 23 4F")) == "672559*********1234"
    assert mask_pan(bytes.fromhex("EE EE EE EE EE EE 12 34")) == "************1234"


def test_a_card_number_with_a_stray_nibble_is_refused() -> None:
    with pytest.raises(ZvtError, match="BMP 22"):
        parse(status_information((0x22, bytes.fromhex("67 A5"))), AUTH)


def test_an_unknown_bmp_is_named_never_skipped() -> None:
    apdu = Apdu(0x04, 0x0F, bytes.fromhex("27 00 99 01 02"))
    with pytest.raises(ZvtError, match="unknown BMP 99 at byte 2"):
        parse(apdu, AUTH)


def test_end_of_day_totals_add_up_the_card_groups() -> None:
    groups = [(2, 1000), (0, 0), (1, 250), (0, 0), (3, 999), (0, 0), (1, 1)]
    totals = encode_bcd(1, 2) + encode_bcd(7, 2)
    totals += b"".join(bytes((count,)) + encode_bcd(amount, 6) for count, amount in groups)
    apdu = status_information((0x27, b"\x00"), (0x04, encode_bcd(2250, 6)))
    apdu = Apdu(0x04, 0x0F, apdu.data + b"\x60" + encode_llvar(totals, 3))
    info = parse(apdu, Command.END_OF_DAY)
    assert isinstance(info, StatusInformation)
    assert info.totals is not None
    assert (info.totals.count, info.totals.amount, info.totals.last_receipt) == (7, 2250, 7)


def test_the_check_vector_completion_is_a_status_enquiry_answer() -> None:
    apdu, rest = decode_apdu(bytes.fromhex("060F0BF0F0F7322E31342E313500"))
    assert rest == b""
    assert parse(apdu, Command.STATUS_ENQUIRY) == Completion(0, "2.14.15")


def test_the_same_completion_answering_an_authorization_is_refused_by_name() -> None:
    apdu, _ = decode_apdu(bytes.fromhex("060F0BF0F0F7322E31342E313500"))
    with pytest.raises(ZvtError, match="answering AUTHORIZATION: unknown BMP F0"):
        parse(apdu, AUTH)


def test_a_completion_with_bmps_gives_terminal_id_and_currency() -> None:
    data = encode_bmp(0x19, b"\x00") + encode_bmp(0x29, encode_bcd(52500038, 4))
    data += encode_bmp(0x49, encode_bcd(978, 2))
    completion = parse(Apdu(0x06, 0x0F, data), Command.REGISTRATION)
    assert completion == Completion(0, "", "52500038", 978)
    assert parse(Apdu(0x06, 0x0F), AUTH) == Completion()


def test_a_wrong_currency_answer_carries_its_result_code() -> None:
    apdu, _ = decode_apdu(bytes.fromhex("84 1E 03 6F 09 78"))
    nak = parse(apdu, Command.REGISTRATION)
    assert nak == NegativeAck(0x1E, bytes.fromhex("6F 09 78"))
    assert isinstance(nak, NegativeAck)
    assert message_for(nak.result_code) == MSG_CURRENCY


def test_acknowledgements() -> None:
    assert parse(Apdu(0x80, 0x00), AUTH) == PositiveAck()
    assert parse(Apdu(0x84, 0x00), AUTH) == PositiveAck()
    nak = parse(Apdu(0x84, 0x83), AUTH)
    assert isinstance(nak, NegativeAck)
    assert nak.result_code == 0x83


def test_a_decline_ends_with_an_abort_and_its_code() -> None:
    apdu, _ = decode_apdu(bytes.fromhex("06 1E 01 05"))
    abort = parse(apdu, AUTH)
    assert abort == Abort(5)
    assert message_for(5) == MSG_DECLINED
    with pytest.raises(ZvtError, match="without a result code"):
        parse(Apdu(0x06, 0x1E), AUTH)


def test_intermediate_status_with_and_without_a_timeout() -> None:
    assert parse(Apdu(0x04, 0xFF, b"\x01"), AUTH) == IntermediateStatus(1)
    assert parse(Apdu(0x04, 0xFF, b"\x0a\x03"), AUTH) == IntermediateStatus(10, 3)
    with_tlv = b"\x0e" + encode_bmp(0x06, encode_tlv(0x24, b""))
    assert parse(Apdu(0x04, 0xFF, with_tlv), AUTH) == IntermediateStatus(14)
    assert parse(Apdu(0x04, 0xFF, b"\x0e\x02" + with_tlv[1:]), AUTH) == IntermediateStatus(14, 2)


def test_print_line_and_text_block() -> None:
    assert parse(Apdu(0x06, 0xD1, b"\x00  Kundenbeleg"), AUTH) == PrintLine(0, "  Kundenbeleg")
    assert parse(Apdu(0x06, 0xD1, b"\xff"), AUTH) == PrintLine(0xFF, "")
    assert PrintLine(0xFF, "").last
    texts = encode_tlv(0x07, b"Kundenbeleg") + encode_tlv(0x07, b"EUR 12,50")
    container = encode_tlv(0x1F07, b"\x02") + encode_tlv(0x25, texts)
    block = parse(Apdu(0x06, 0xD3, encode_bmp(0x06, container)), AUTH)
    assert block == PrintTextBlock(("Kundenbeleg", "EUR 12,50"), receipt_type=2)


def test_a_message_the_pt_never_sends_is_refused() -> None:
    with pytest.raises(ZvtError, match="06 01 answering AUTHORIZATION: not a message"):
        parse(Apdu(0x06, 0x01, b""), AUTH)


@given(
    cls_instr=st.sampled_from(
        [
            (0x04, 0x0F),
            (0x04, 0xFF),
            (0x06, 0x0F),
            (0x06, 0x1E),
            (0x06, 0xD1),
            (0x06, 0xD3),
            (0x80, 0x00),
            (0x84, 0x9C),
            (0x06, 0x01),
        ]
    ),
    data=st.binary(max_size=300),
    answering=st.sampled_from(list(Command)),
)
def test_random_bytes_only_ever_raise_zvt_error(
    cls_instr: tuple[int, int], data: bytes, answering: Command
) -> None:
    with contextlib.suppress(ZvtError):
        parse(Apdu(*cls_instr, data), answering)
