"""The ZVT terminal emulator, driven by a raw ECR: exact bytes in, exact bytes out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest
import serial

from appliance.drivers.sim.zvt_terminal import Booked, Step, ZvtEmulator
from appliance.drivers.zvt.apdu import Apdu, apdu_size
from appliance.drivers.zvt.bmp import decode_bmps
from appliance.drivers.zvt.serial_frame import frame
from appliance.drivers.zvt.serial_link import SerialLink
from appliance.drivers.zvt.status_info import parse_status_information

WAIT = 10.0  # only bounds a hang: every read returns as soon as the bytes are there
NOW = datetime(2026, 12, 6, 14, 30, 15)

ACK = "80 00 00"
STATUS_ENQUIRY = "05 01 03 000000"
# The message of the serial CRC check vector (PA00P016): software version "2.14.15", status 00.
STATUS_COMPLETION = "06 0F 0B F0F0F7 322E31342E3135 00"
# Registration: password 000000, config 0E (ECR prints payment and admin receipts, wants
# intermediate statuses), currency 0978 (EUR).
REGISTRATION = "06 00 06 000000 0E 0978"
REGISTRATION_COMPLETION = "06 0F 0A 19 00 29 52500038 49 0978"
PAY_12_50 = "06 01 0A 04 000000001250 49 0978"
INSERT_CARD = "04 FF 01 0A"
COMPLETION = "06 0F 00"
# The Status-Information of the first payment, 12.50 EUR, on NOW, girocard.
APPROVED_12_50 = (
    "04 0F 69"
    " 27 00"  # result: approved
    " 04 000000001250"  # amount
    " 0B 000001"  # trace number
    " 0C 143015 0D 1206"  # time, date
    " 0E 2812 17 0001 19 70"  # expiry, card sequence number, payment type (PIN/EMV)
    " 22 F0F8 672559EEEEEE1234"  # masked PAN: first 6, last 4
    " 29 52500038"  # terminal id
    " 2A 343535363030303132333435363738"  # VU number "455600012345678"
    " 3B 303030303031 0000"  # authorisation attribute "000001"
    " 49 0978 87 0001 88 000001"  # currency, receipt number, turnover number
    " 8A 05 8B F0F9 6769726F63617264 00 8C 05"  # card type, name "girocard", type id
    " AA 261206"  # long date
    " 06 04 1F11 01 01"  # TLV: online flag 01
)


def wire(text: str) -> bytes:
    """Hex with spaces anywhere, as bytes."""
    return bytes.fromhex(text)


class Ecr:
    """A raw till: one TCP connection that sends exact bytes and reads whole APDUs."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)

    def send(self, text: str) -> None:
        """Send the bytes written as hex."""
        self.sock.sendall(wire(text))

    def read(self) -> bytes:
        """The next whole APDU, or b"" when the terminal closed the connection."""
        data = b""
        while (size := apdu_size(data)) is None or len(data) < size:
            wanted = size if size is not None else 5 if len(data) >= 3 else 3
            chunk = self.sock.recv(wanted - len(data))
            if not chunk:
                assert not data, f"closed mid-APDU after {data.hex(' ')}"
                return b""
            data += chunk
        return data

    def expect(self, text: str, *, ack: bool = False) -> None:
        """The next APDU is exactly `text`; `ack` answers it 80 00 00."""
        assert self.read().hex(" ") == wire(text).hex(" ")
        if ack:
            self.send(ACK)

    def take(self, *, ack: bool = True) -> Apdu:
        """The next APDU, acknowledged unless told."""
        data = self.read()
        assert data, "the terminal closed the connection"
        if ack:
            self.send(ACK)
        return Apdu(data[0], data[1], data[3:] if data[2] != 0xFF else data[5:])

    def until(self, *commands: tuple[int, int]) -> list[Apdu]:
        """Acknowledge everything up to and including the first of `commands`."""
        seen = [self.take()]
        while seen[-1].command not in commands:
            seen.append(self.take())
        return seen

    def register(self, registration: str = REGISTRATION) -> None:
        """Register, and acknowledge the Completion."""
        self.send(registration)
        self.expect(ACK)
        self.take()

    def closed_by_terminal(self) -> bool:
        """True once the terminal ended the connection (within WAIT)."""
        return self.read() == b""

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


@pytest.fixture
def emulator(no_leaked_threads: None) -> Iterator[ZvtEmulator]:
    """An emulated terminal on a free port, its clock at NOW, T3 short."""
    with ZvtEmulator(clock=lambda: NOW, t3=0.5) as terminal:
        yield terminal


@pytest.fixture
def ecr(emulator: ZvtEmulator) -> Iterator[Ecr]:
    """A raw till connected to the emulator and registered."""
    till = Ecr(emulator.serve_tcp())
    till.register()
    yield till
    till.close()


def test_status_enquiry_answers_the_crc_check_vectors_completion(emulator: ZvtEmulator) -> None:
    till = Ecr(emulator.serve_tcp())
    till.send(STATUS_ENQUIRY)
    till.expect(ACK)
    till.expect(STATUS_COMPLETION, ack=True)
    assert emulator.wait_idle(WAIT)
    assert [apdu.encode().hex() for apdu in emulator.received] == [
        wire(STATUS_ENQUIRY).hex(),
        wire(ACK).hex(),
    ]
    till.close()


def test_registration_completes_with_status_terminal_id_and_currency(
    emulator: ZvtEmulator,
) -> None:
    till = Ecr(emulator.serve_tcp())
    till.send(REGISTRATION)
    till.expect(ACK)
    till.expect(REGISTRATION_COMPLETION, ack=True)
    till.close()


def test_registration_with_a_wrong_password_is_refused(emulator: ZvtEmulator) -> None:
    till = Ecr(emulator.serve_tcp())
    till.send("06 00 06 123456 0E 0978")
    till.expect("84 83 00")
    till.close()


def test_an_approved_payment_is_answered_byte_for_byte(emulator: ZvtEmulator, ecr: Ecr) -> None:
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect(APPROVED_12_50, ack=True)
    lines = ecr.until((0x06, 0x0F))
    assert lines[-1] == Apdu(0x06, 0x0F)
    assert {line.command for line in lines[:-1]} == {(0x06, 0xD1)}
    assert [line.data[0] for line in lines[:-1]] == [0x00] * (len(lines) - 2) + [0xC0]
    assert lines[0].data[1:] == b"Kartenzahlung"
    assert emulator.wait_idle(WAIT)
    assert emulator.book == [Booked("payment", 1250, 1, 1, "approved", False)]


def test_an_authorization_without_currency_is_approved(ecr: Ecr) -> None:
    ecr.send("06 01 07 04 00 00 00 00 12 50")
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    status = ecr.take()
    assert status.command == (0x04, 0x0F)
    assert decode_bmps(status.data)[:2] == [(0x27, b"\x00"), (0x04, wire("000000001250"))]
    assert ecr.until((0x06, 0x0F))[-1] == Apdu(0x06, 0x0F)


def test_intermediate_statuses_come_as_scripted_and_only_when_registered_for(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    emulator.script(Step(intermediate=3, receipts=False))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    for status in ("0A", "01", "04"):  # insert card, watch the PIN pad, waiting for the host
        ecr.expect(f"04 FF 01 {status}", ack=True)
    assert ecr.take().command == (0x04, 0x0F)
    ecr.expect(COMPLETION, ack=True)
    ecr.register("06 00 06 000000 06 0978")  # no 08: no intermediate statuses
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    assert ecr.take().command == (0x04, 0x0F)


def test_a_decline_ends_with_abort_and_its_code_never_a_completion(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    emulator.script(Step("decline", result_code=0x05))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    status = ecr.take()
    assert decode_bmps(status.data)[0] == (0x27, b"\x05")
    assert (0x06, b"\x04\x1f\x11\x01\x01") not in decode_bmps(status.data)  # no online flag
    ecr.expect("06 1E 01 05", ack=True)
    ecr.send(STATUS_ENQUIRY)  # nothing else was pending: the next answer is the enquiry's
    ecr.expect(ACK)
    assert emulator.wait_idle(WAIT)
    assert emulator.book == [Booked("payment", 1250, 1, 1, "declined", False)]


def test_a_customer_abort_ends_with_6c_and_books_nothing(emulator: ZvtEmulator, ecr: Ecr) -> None:
    emulator.script(Step("customer_abort"))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect("06 1E 01 6C", ack=True)
    assert emulator.wait_idle(WAIT)
    assert emulator.book == []


def test_an_ecr_abort_during_the_payment_is_accepted(emulator: ZvtEmulator, ecr: Ecr) -> None:
    emulator.script(Step(pause=WAIT))  # the customer takes long: the till gives up
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.send("06 B0 00")
    ecr.expect(ACK)
    ecr.expect("06 1E 01 6C", ack=True)
    assert emulator.wait_idle(WAIT)
    assert emulator.book == []


def test_an_ecr_abort_refused_lets_the_payment_go_on(emulator: ZvtEmulator, ecr: Ecr) -> None:
    emulator.script(Step(pause=1.0, abort="refuse", receipts=False))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.send("06 B0 00")
    ecr.expect("84 83 00")
    assert decode_bmps(ecr.take().data)[0] == (0x27, b"\x00")
    ecr.expect(COMPLETION, ack=True)
    assert emulator.wait_idle(WAIT)
    assert [booked.state for booked in emulator.book] == ["approved"]


def test_an_abort_outside_a_payment_is_not_possible(ecr: Ecr) -> None:
    ecr.send("06 B0 00")
    ecr.expect("84 83 00")


def test_a_silent_terminal_sends_nothing_until_the_ecr_aborts(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    emulator.script(Step("silent"))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.sock.settimeout(0.3)  # the ECR's T4, shortened: nothing comes
    with pytest.raises(TimeoutError):
        ecr.read()
    ecr.sock.settimeout(WAIT)
    ecr.send("06 B0 00")
    ecr.expect(ACK)
    ecr.expect("06 1E 01 6C", ack=True)


def test_a_terminal_that_prints_itself_sends_no_print_lines(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    ecr.register("06 00 06 000000 08 0978")  # intermediate statuses, no ECR printing
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect(APPROVED_12_50, ack=True)
    ecr.expect(COMPLETION, ack=True)


@pytest.mark.parametrize(
    ("card", "pan"),
    [
        ("Visa", "476173 EEEEEE 0010"),
        ("Maestro", "679999 EEEEEEEE E0 01 8F"),  # 19 digits: an F pads the last byte
    ],
)
def test_the_card_number_keeps_only_its_first_six_and_last_four_digits(
    emulator: ZvtEmulator, ecr: Ecr, card: str, pan: str
) -> None:
    emulator.script(Step(card=card, receipts=False))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    fields = dict(decode_bmps(ecr.take().data))
    assert fields[0x22] == wire(pan)  # E: a masked digit
    assert fields[0x8B] == card.encode() + b"\x00"


def test_a_wrong_currency_is_refused_with_the_terminals_currency(ecr: Ecr) -> None:
    ecr.send("06 01 0A 04 000000001250 49 0756")  # CHF at a EUR terminal
    ecr.expect("84 1E 03 6F 0978")


def test_an_unknown_bmp_is_answered_function_not_possible(ecr: Ecr) -> None:
    ecr.send("06 01 03 9F 01 02")
    ecr.expect("84 83 00")
    ecr.send("07 01 00")  # an unknown command too
    ecr.expect("84 83 00")


def test_an_offline_approval_says_so_in_the_online_flag(emulator: ZvtEmulator, ecr: Ecr) -> None:
    emulator.script(Step("approve_offline", receipts=False))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    status = ecr.take()
    fields = dict(decode_bmps(status.data))
    assert fields[0x06] == wire("1F11 01 00")  # online flag 00: approved offline
    assert fields[0x3B] == bytes(8)  # no authorisation attribute without the host
    assert parse_status_information(status.data).offline  # the adapter reads it so
    ecr.expect(COMPLETION, ack=True)
    assert emulator.wait_idle(WAIT)
    assert emulator.book == [Booked("payment", 1250, 1, 1, "approved", True)]


def test_repeat_receipt_after_a_drop_at_the_status_gives_the_booked_approval(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    emulator.script(Step(drop="at_status"))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect(APPROVED_12_50)  # the terminal loses power before the ack
    assert ecr.closed_by_terminal()
    assert emulator.book == [Booked("payment", 1250, 1, 1, "approved", False)]
    till = Ecr(ecr.port)  # the till restarts; the terminal kept its book
    till.send("06 20 03 000000")
    till.expect(ACK)
    till.expect(APPROVED_12_50, ack=True)  # the registration survived: receipt lines follow
    assert till.until((0x06, 0x0F))[-1] == Apdu(0x06, 0x0F)
    till.close()


def test_a_drop_after_the_ack_keeps_the_approval_and_sends_no_completion(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    emulator.script(Step(drop="after_ack"))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect(APPROVED_12_50, ack=True)
    assert ecr.closed_by_terminal()
    assert [booked.state for booked in emulator.book] == ["approved"]


def test_a_drop_before_the_status_books_nothing(emulator: ZvtEmulator, ecr: Ecr) -> None:
    emulator.script(Step(drop="before_status"))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    assert ecr.closed_by_terminal()
    assert emulator.book == []


def test_repeat_receipt_with_an_empty_book_aborts(ecr: Ecr) -> None:
    ecr.send("06 20 03 000000")
    ecr.expect(ACK)
    ecr.expect("06 1E 01 83", ack=True)


def test_a_booked_payment_is_reversed_once_and_a_second_reversal_refused(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    emulator.script(Step(receipts=False), Step(receipts=False), Step(receipts=False))
    ecr.send(PAY_12_50)
    ecr.until((0x06, 0x0F))
    ecr.send("06 30 06 000000 87 0001")
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    fields = dict(decode_bmps(ecr.take().data))
    assert fields[0x27] == b"\x00"
    assert (fields[0x04], fields[0x87]) == (wire("000000001250"), wire("0002"))
    ecr.expect(COMPLETION, ack=True)
    ecr.send("06 30 06 000000 87 0001")
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    assert decode_bmps(ecr.take().data)[0] == (0x27, b"\xb4")  # already reversed
    ecr.expect("06 1E 01 B4", ack=True)
    assert emulator.wait_idle(WAIT)
    assert [(b.kind, b.state) for b in emulator.book] == [
        ("payment", "reversed"),
        ("reversal", "approved"),
        ("reversal", "declined"),
    ]


def test_an_unknown_receipt_cannot_be_reversed(ecr: Ecr) -> None:
    ecr.send("06 30 06 000000 87 0042")
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    assert decode_bmps(ecr.take().data)[0] == (0x27, b"\xb5")
    ecr.expect("06 1E 01 B5", ack=True)


def test_end_of_day_totals_the_day_and_closes_it_for_reversal(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    emulator.script(*[Step(receipts=False)] * 3)
    ecr.send(PAY_12_50)
    ecr.until((0x06, 0x0F))
    ecr.send("06 31 0A 000000 04 000000000250")  # a refund of 2.50
    ecr.until((0x06, 0x0F))
    assert [(b.kind, b.amount, b.state) for b in emulator.book] == [
        ("payment", 1250, "approved"),
        ("refund", 250, "approved"),
    ]
    ecr.send("06 50 03 000000")
    ecr.expect(ACK)
    ecr.expect("04 FF 01 0E", ack=True)
    ecr.expect(
        "04 0F 58 27 00 04 000000001000 0B 000003 0C 143015 0D 1206 29 52500038 49 0978"
        " 87 0003"  # the End-of-Day's own receipt number
        " 60 F0F5F3 0001 0002"  # individual totals: receipts 1 to 2, then per card group:
        " 02 000000001000"  # girocard: 2, net 10.00
        + " 00 000000000000"
        * 6,  # JCB, Eurocard, Amex, VISA, Diners, the rest: none
        ack=True,
    )
    lines = ecr.until((0x06, 0x0F))
    assert b"Anzahl 2" in [line.data[1:] for line in lines]
    ecr.send("06 30 06 000000 87 0001")
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    assert decode_bmps(ecr.take().data)[0] == (0x27, b"\xb5")  # a closed day's payment
    ecr.expect("06 1E 01 B5", ack=True)


def test_a_refused_print_line_is_a_printer_fault_and_ends_the_receipt(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect(APPROVED_12_50, ack=True)
    assert ecr.take(ack=False).command == (0x06, 0xD1)
    ecr.send("84 CC 00")  # printer not ready
    ecr.expect(COMPLETION, ack=True)
    assert emulator.wait_idle(WAIT)
    assert emulator.printer_faults == 1
    assert [booked.state for booked in emulator.book] == ["approved"]


def test_a_text_block_comes_when_tag_26_and_the_config_byte_allow_it(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    # Config 8E, then TLV 06: tag 26 lists 06 D3 (tag 0A) as a command the ECR takes.
    ecr.register("06 00 0E 000000 8E 0978 06 06 26 04 0A 02 06 D3")
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect(APPROVED_12_50, ack=True)
    block = ecr.take()
    assert block.command == (0x06, 0xD3)
    assert block.data.startswith(wire("06 81")) and wire("1F07 01 02 25 81") in block.data
    assert wire("07 0D") + b"Kartenzahlung" in block.data
    ecr.expect(COMPLETION, ack=True)


def test_log_off_resets_the_config_byte(ecr: Ecr) -> None:
    ecr.send("06 02 00")
    ecr.expect(ACK)
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    assert ecr.take().command == (0x04, 0x0F)  # 86 has no 08: no intermediate status


def test_diagnosis_answers_a_status_and_a_completion(ecr: Ecr) -> None:
    ecr.send("06 70 03 000000")
    ecr.expect(ACK)
    ecr.expect("04 FF 01 0E", ack=True)
    ecr.expect(COMPLETION, ack=True)


def test_an_ecr_that_never_acknowledges_loses_the_session_after_t3(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD)  # not acknowledged
    assert ecr.closed_by_terminal()
    assert emulator.book == []
    till = Ecr(ecr.port)  # the next connection is served
    till.send(STATUS_ENQUIRY)
    till.expect(ACK)
    till.close()


def test_a_status_information_not_acknowledged_is_reversed_by_the_terminal(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect(APPROVED_12_50)  # the till crashes before its ack
    assert ecr.closed_by_terminal()
    assert [(b.kind, b.state) for b in emulator.book] == [
        ("payment", "reversed"),
        ("reversal", "approved"),
    ]


def test_a_new_connection_replaces_an_idle_one(emulator: ZvtEmulator, ecr: Ecr) -> None:
    till = Ecr(ecr.port)  # the till rebooted without closing its old connection
    assert ecr.closed_by_terminal()
    till.send(STATUS_ENQUIRY)
    till.expect(ACK)
    till.expect(STATUS_COMPLETION, ack=True)
    till.close()


def test_a_new_connection_during_a_payment_is_turned_away(emulator: ZvtEmulator, ecr: Ecr) -> None:
    emulator.script(Step(intermediate=2, pause=WAIT))
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    intruder = Ecr(ecr.port)
    assert intruder.closed_by_terminal()
    intruder.close()
    ecr.send("06 B0 00")  # the payment went on all along: the till can still cancel it
    ecr.expect(ACK)
    ecr.expect("06 1E 01 6C", ack=True)


def test_a_status_information_refused_by_the_ecr_is_reversed_and_aborted(
    emulator: ZvtEmulator, ecr: Ecr
) -> None:
    ecr.send(PAY_12_50)
    ecr.expect(ACK)
    ecr.expect(INSERT_CARD, ack=True)
    ecr.expect(APPROVED_12_50)
    ecr.send("84 66 00")  # a vending machine that could not issue the goods
    ecr.expect("06 1E 01 6C", ack=True)
    assert emulator.wait_idle(WAIT)
    assert [(b.kind, b.state) for b in emulator.book] == [
        ("payment", "reversed"),
        ("reversal", "approved"),
    ]


def test_garbage_ends_a_session_and_the_next_connection_is_served(
    emulator: ZvtEmulator,
) -> None:
    port = emulator.serve_tcp()
    till = Ecr(port)
    till.send("DE AD 02 BE EF")  # a whole APDU of no known command
    till.expect("84 83 00")
    till.send("06 01 07 04 AB CD EF 00 00 00")  # an amount that is not BCD
    till.expect("84 9A 00")
    till.send("06 00 0A 000000 8E 0978 06 02 26 7F")  # a TLV cut short
    till.expect("84 83 00")
    till.send("06 01 FF 10")  # half a header, then gone
    till.close()
    again = Ecr(port)
    again.send(STATUS_ENQUIRY)
    again.expect(ACK)
    again.expect(STATUS_COMPLETION, ack=True)
    again.close()


def test_the_standalone_emulator_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance.drivers.sim.zvt_terminal", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("tcp 127.0.0.1:"), line
        till = Ecr(int(line.rsplit(":", 1)[1]))
        till.send(STATUS_ENQUIRY)
        till.expect(ACK)
        till.expect(STATUS_COMPLETION, ack=True)
        till.close()
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(WAIT) == 0
    finally:
        process.kill()
        process.wait(WAIT)


def test_the_pty_speaks_framed_zvt_byte_for_byte(emulator: ZvtEmulator) -> None:
    path = emulator.serve_pty()
    with serial.Serial(path, timeout=WAIT) as line:
        line.write(frame(wire(STATUS_ENQUIRY)))
        assert line.read(1) == b"\x06"  # the frame's ACK
        assert line.read(9) == frame(wire(ACK))
        line.write(b"\x06")
        # The serial CRC check vector frame, exactly.
        assert line.read(20).hex(" ") == wire(
            "10 02 06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00 10 03 B1 11"
        ).hex(" ")
        line.write(b"\x06" + frame(wire(ACK)))
        assert line.read(1) == b"\x06"
    assert emulator.wait_idle(WAIT)


def test_a_payment_through_the_pty_with_the_serial_link(emulator: ZvtEmulator) -> None:
    path = emulator.serve_pty()
    with SerialLink.open_port(path) as till:
        till.send(Apdu(0x06, 0x00, wire(REGISTRATION)[3:]))
        assert till.receive(WAIT) == Apdu(0x80, 0x00)
        assert till.receive(WAIT) == Apdu(0x06, 0x0F, wire(REGISTRATION_COMPLETION)[3:])
        till.send(Apdu(0x80, 0x00))
        till.send(Apdu(0x06, 0x01, wire(PAY_12_50)[3:]))
        seen = [till.receive(WAIT)]  # 80 00 00: never acknowledged itself
        while seen[-1].command != (0x06, 0x0F):
            seen.append(till.receive(WAIT))
            till.send(Apdu(0x80, 0x00))
    assert seen[:3] == [
        Apdu(0x80, 0x00),
        Apdu(0x04, 0xFF, b"\x0a"),
        Apdu(0x04, 0x0F, wire(APPROVED_12_50)[3:]),
    ]
    assert emulator.wait_idle(WAIT)
    assert emulator.book == [Booked("payment", 1250, 1, 1, "approved", False)]
