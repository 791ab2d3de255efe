"""One ZVT exchange against the emulated terminal over a real TCP socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from appliance.drivers.sim.zvt_terminal import Step, ZvtEmulator
from appliance.drivers.zvt import commands
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.messages import StatusInformation
from appliance.drivers.zvt.result_codes import MSG_CURRENCY
from appliance.drivers.zvt.session import ACK, ZvtSession
from appliance.drivers.zvt.tcp_link import TcpLink
from appliance.errors import DeviceError, ZvtLinkError

EUR = 978
ABORT = commands.abort()


@pytest.fixture
def emulator(no_leaked_threads: None) -> Iterator[ZvtEmulator]:
    emu = ZvtEmulator()
    yield emu
    emu.close()


def connect(emu: ZvtEmulator, *, t4: float = 10.0, text_blocks: bool = True) -> ZvtSession:
    link = TcpLink.connect("127.0.0.1", emu.serve_tcp(), timeout=2.0)
    session = ZvtSession(link, t4=t4)
    tlv = commands.permitted_commands((0x06, 0xD3)) if text_blocks else None
    config = commands.config_byte(True)
    exchange = session.run(commands.registration("000000", config, EUR, tlv=tlv))
    assert exchange.completion is not None
    return session


@pytest.fixture
def session(emulator: ZvtEmulator) -> Iterator[ZvtSession]:
    opened = connect(emulator)
    yield opened
    opened.link.close()


def test_an_approval_is_recorded_before_the_terminal_has_the_ack(
    emulator: ZvtEmulator, session: ZvtSession
) -> None:
    seen: list[list[Apdu]] = []

    def record(status: StatusInformation) -> None:
        assert status.result_code == 0
        seen.append(emulator.received)

    exchange = session.run(commands.authorization(1250, EUR), record=record)
    assert exchange.completion is not None and exchange.ended
    assert exchange.status is not None and exchange.status.amount == 1250
    [before] = seen
    after = emulator.received
    # What the ECR sent next, after record() returned, was the Status-Information's ack.
    assert after[len(before)] == ACK
    assert emulator.book[-1].state == "approved"


def test_a_decline_ends_with_an_abort_carrying_its_code(
    emulator: ZvtEmulator, session: ZvtSession
) -> None:
    emulator.script(Step("decline", result_code=0x37))
    exchange = session.run(commands.authorization(500, EUR))
    assert exchange.abort_code == 0x37
    assert exchange.status is not None and exchange.status.result_code == 0x37
    assert exchange.completion is None


def test_a_customer_abort_ends_with_6c(emulator: ZvtEmulator, session: ZvtSession) -> None:
    emulator.script(Step("customer_abort"))
    assert session.run(commands.authorization(500, EUR)).abort_code == 0x6C


def cancel_soon(session: ZvtSession, delay: float = 0.15) -> threading.Timer:
    timer = threading.Timer(delay, session.cancel)
    timer.start()
    return timer


def test_an_abort_the_terminal_accepts_ends_the_payment(
    emulator: ZvtEmulator, session: ZvtSession
) -> None:
    emulator.script(Step(intermediate=20, pause=0.05, abort="accept"))
    timer = cancel_soon(session)
    exchange = session.run(commands.authorization(500, EUR))
    timer.join()
    assert exchange.abort_code == 0x6C
    assert ABORT in emulator.received
    assert all(booked.state != "approved" for booked in emulator.book)


def test_an_abort_the_terminal_refuses_lets_the_payment_finish(
    emulator: ZvtEmulator, session: ZvtSession
) -> None:
    emulator.script(Step(intermediate=10, pause=0.05, abort="refuse"))
    timer = cancel_soon(session)
    exchange = session.run(commands.authorization(500, EUR))
    timer.join()
    assert ABORT in emulator.received
    assert exchange.completion is not None
    assert exchange.status is not None and exchange.status.result_code == 0


def test_intermediate_statuses_restart_t4(emulator: ZvtEmulator) -> None:
    session = connect(emulator, t4=0.5)
    try:
        emulator.script(Step(intermediate=8, pause=0.2))  # 1.6 s in all, 0.2 s apart
        started = time.monotonic()
        exchange = session.run(commands.authorization(500, EUR))
        assert time.monotonic() - started > 1.0
        assert exchange.completion is not None
    finally:
        session.link.close()


def test_a_silent_terminal_runs_out_t4(emulator: ZvtEmulator) -> None:
    session = connect(emulator, t4=0.4)
    emulator.script(Step("silent"))
    exchange = session.run(commands.authorization(500, EUR))
    assert "T4" in exchange.lost
    assert exchange.status is None


def test_receipts_go_to_the_sink_as_one_text_block(session: ZvtSession) -> None:
    printed: list[tuple[str, ...]] = []
    exchange = session.run(
        commands.authorization(1250, EUR), print_lines=lambda lines: printed.append(lines) or True
    )
    assert len(printed) == 1
    assert exchange.receipt_lines == printed[0]
    assert any("12,50" in line for line in exchange.receipt_lines)


def test_without_tag_26_receipts_come_line_by_line(emulator: ZvtEmulator) -> None:
    session = connect(emulator, text_blocks=False)
    try:
        printed: list[tuple[str, ...]] = []
        exchange = session.run(
            commands.authorization(1250, EUR), print_lines=lambda ls: printed.append(ls) or True
        )
        assert len(printed) > 1 and all(len(lines) == 1 for lines in printed)
        assert exchange.receipt_lines == tuple(line for [line] in printed)
    finally:
        session.link.close()


def test_a_receipt_the_ecr_cannot_print_is_answered_negatively(
    emulator: ZvtEmulator, session: ZvtSession
) -> None:
    exchange = session.run(commands.authorization(1250, EUR), print_lines=lambda lines: False)
    assert emulator.printer_faults >= 1
    assert exchange.completion is not None  # the payment stands; the lines are kept
    assert exchange.receipt_lines


def test_an_answer_that_cannot_be_recorded_is_never_acknowledged(
    emulator: ZvtEmulator, session: ZvtSession
) -> None:
    sent_before: list[int] = []

    def broken(status: StatusInformation) -> None:
        sent_before.append(len(emulator.received))
        raise OSError("disk full")

    exchange = session.run(commands.authorization(1250, EUR), record=broken)
    assert "could not be recorded: disk full" in exchange.lost
    assert exchange.completion is None  # kept for recovery, never taken as done
    assert emulator.wait_idle(5.0)
    assert len(emulator.received) == sent_before[0]  # no ack, nothing at all, after it


@pytest.mark.parametrize("drop", ["before_status", "at_status"])
def test_a_link_dropped_before_the_ack_leaves_the_answer_unfinished(
    emulator: ZvtEmulator, session: ZvtSession, drop: str
) -> None:
    emulator.script(Step(drop=drop))  # type: ignore[arg-type]
    recorded: list[StatusInformation] = []

    def slow_journal(status: StatusInformation) -> None:
        time.sleep(0.05)  # a journal write: the PT's close arrives meanwhile
        recorded.append(status)

    exchange = session.run(commands.authorization(1250, EUR), record=slow_journal)
    assert exchange.lost and exchange.completion is None
    assert len(recorded) == (1 if drop == "at_status" else 0)
    # What came is kept for recovery (its receipt number), acknowledged or not.
    assert (exchange.status is not None) == (drop == "at_status")


def test_a_link_dropped_after_the_ack_keeps_the_acknowledged_answer(
    emulator: ZvtEmulator, session: ZvtSession
) -> None:
    emulator.script(Step(drop="after_ack"))
    exchange = session.run(commands.authorization(1250, EUR))
    assert exchange.lost
    assert exchange.status is not None and exchange.status.result_code == 0


def test_a_refused_command_is_a_device_error_saying_why(emulator: ZvtEmulator) -> None:
    link = TcpLink.connect("127.0.0.1", emulator.serve_tcp(), timeout=2.0)
    try:
        session = ZvtSession(link)
        with pytest.raises(DeviceError, match=MSG_CURRENCY.rstrip(".")):
            session.run(commands.registration("000000", 0xBA, 756))  # CHF, the PT takes EUR
    finally:
        link.close()


def test_a_link_closed_before_80_00_is_a_device_error(no_leaked_threads: None) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:

        def take_and_hang_up() -> None:
            peer, _ = server.accept()
            with peer:
                peer.recv(100)  # the command arrives; the peer hangs up without 80 00 00

        thread = threading.Thread(target=take_and_hang_up)
        thread.start()
        link = TcpLink.connect("127.0.0.1", server.getsockname()[1], timeout=2.0)
        try:
            with pytest.raises(ZvtLinkError, match="closed by the peer"):
                ZvtSession(link, t3=2.0).run(commands.authorization(100, EUR))
        finally:
            link.close()
            thread.join()


def test_a_minutes_byte_in_an_intermediate_status_sets_t4(no_leaked_threads: None) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        ecr = TcpLink.connect("127.0.0.1", server.getsockname()[1], timeout=2.0)
        pt = TcpLink(server.accept()[0])

    def terminal() -> None:
        assert pt.receive(2.0).command == (0x06, 0x01)
        pt.send(ACK)
        pt.send(Apdu(0x04, 0xFF, bytes((0x0E, 1))))  # "please wait", one more minute
        assert pt.receive(2.0) == ACK
        time.sleep(0.6)  # longer than the ECR's own T4, shorter than the minute
        pt.send(Apdu(0x06, 0x0F))
        assert pt.receive(2.0) == ACK

    thread = threading.Thread(target=terminal)
    thread.start()
    try:
        exchange = ZvtSession(ecr, t4=0.3).run(commands.authorization(100, EUR))
        assert exchange.completion is not None
    finally:
        thread.join()
        ecr.close()
        pt.close()
