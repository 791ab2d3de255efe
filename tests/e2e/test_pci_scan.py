"""PCI DSS: after a run of card payments through the real stack, no full card number is kept.

The appliance runs in-process as `appliance run --headless --simulate` does, with its hub
link to a real mosquitto: the ZvtTerminal adapter pays over TCP against the ZVT emulator
(approved, declined, offline, a reversal and a refund), sales and telemetry go up to a
hub. The emulated terminal misbehaves on purpose: it sends each card number in clear in
BMP 22, where a terminal should mask it, and uses Luhn-valid test cards. Then the SQLite
file (and its -wal), every table, every log record (caplog and a DEBUG log file), every
MQTT payload and every printed receipt are scanned (tests/pci.py): none may hold a run of
13-19 digits passing the Luhn check. A second set of tests plants card numbers in each of
those places and sees the scanner find them, so a clean scan means something.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from appliance.core.card_refund import CardPayBack, CardRefunded, OriginalPayment
from appliance.core.events import SaleCommitted
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.core.sale import draft_refund, refund_total
from appliance.drivers.sim import zvt_bank
from appliance.drivers.sim.control import control_socket_path, send
from appliance.drivers.sim.zvt_script import Step
from appliance.service.lifecycle import Running, running
from appliance.service.logs import STDERR_FORMAT
from appliance.settings import Settings, parse_settings
from appliance.store.database import open_database
from appliance.store.migrations import migrate
from appliance.store.payment_attempts import PaymentAttempts
from tests.broker import MosquittoBroker
from tests.mqtt.fake_hub import FakeHub
from tests.pci import (
    luhn_valid,
    report,
    scan_bytes,
    scan_file,
    scan_log_records,
    scan_payloads,
    scan_sqlite,
    scan_text,
)
from tests.presenting import Presenter

DEVICE = "pci-kiosk"
COFFEE, WATER, CHOCOLATE = "4006381333931", "5000112548129", "7613289024044"
WAIT_SECONDS = 20.0
PAY_SECONDS = 60.0
PLANTED = "4111111111111111"  # the classic Visa test number: Luhn-valid
# Every card number the emulated terminal knows, looked for even where digits touch it.
KNOWN = tuple(card.pan for card in zvt_bank.CARDS.values())


def wait_until(done: Callable[[], object], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Poll `done()`; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Recorder:
    """Every message published on the broker (topic, payload), as a second subscriber sees it."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._lock = threading.Lock()
        self._messages: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="pci-recorder", protocol=mqtt.MQTTv5
        )
        self._client.on_connect = lambda client, *_: client.subscribe("#", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "the recorder did not subscribe"

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append((message.topic, bytes(message.payload)))

    @property
    def messages(self) -> list[tuple[str, bytes]]:
        """What arrived so far."""
        with self._lock:
            return list(self._messages)

    def close(self) -> None:
        """Disconnect and stop paho's thread."""
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto on a free loopback port."""
    started = MosquittoBroker(tmp_path / "broker")
    started.start()
    try:
        yield started
    finally:
        started.stop()


def settings_for(state: Path, broker: MosquittoBroker) -> Settings:
    """The simulated store, DEBUG logging, with a hub on the broker (plain MQTT, loopback)."""
    return parse_settings(
        {
            "device": {"id": DEVICE, "receipt_prefix": "PCI"},
            "database": {"path": str(state / "appliance.db")},
            "logging": {"level": "DEBUG"},
            "hub": {"host": broker.host, "port": broker.port, "telemetry_seconds": 5},
        }
    )


def full_pan(pan: str) -> bytes:
    """BMP 22 as a terminal that does not mask would send it: every digit in clear."""
    return bytes.fromhex(pan + "F" * (len(pan) % 2))


class Run:
    """The running appliance, driven over its control socket as `appliance sim` does."""

    def __init__(self, services: Running) -> None:
        self.services = services
        self.app = services.app
        self.sock = control_socket_path(self.app.settings.database.path)
        lab = self.app.lab
        assert lab is not None and lab.terminal is not None
        self.emulator = lab.terminal
        self.printer = lab.printer
        self.hand = Presenter()

    def ask(self, cmd: str, timeout: float = PAY_SECONDS, **fields: str) -> dict[str, Any]:
        """One control request."""
        return send(self.sock, {"cmd": cmd, **fields}, timeout=timeout)

    def scan(self, code: str) -> None:
        """Scan through the pty scanner and wait for the line in the cart."""
        self.hand.ready(code)  # the same item again: presented after the hold gap
        lines = len(self.app.checkout.cart.lines)
        assert self.ask("scan", code=code) == {"ok": True}
        wait_until(lambda: len(self.app.checkout.cart.lines) > lines, f"{code} in the cart")
        self.hand.taken(code)

    def card_offered(self) -> bool:
        """Whether the card gate offers card now."""
        gate = self.app.card_gate
        return gate is not None and gate.availability.offered

    def pay_card(self, step: Step) -> dict[str, Any]:
        """The terminal plays `step` for the cart's card payment; the control answer."""
        wait_until(self.card_offered, "card offered")
        self.emulator.script(step)
        return self.ask("pay", method="card")

    def pay_back(self, receipt: str, *, first_line_only: bool = False) -> CardRefunded:
        """Refund a card sale as the staff refund screen does: the terminal first, then the
        refund document. The whole sale the same day is a reversal; a part is a refund."""
        sale = self.app.ledger.by_receipt(receipt)
        assert sale is not None
        card = next(t for t in sale.tenders if t.kind == "card")
        journal = self.app.stores.payments
        attempt = journal.get(card.reference)
        assert attempt is not None
        original = OriginalPayment(
            attempt.reference, attempt.amount, attempt.receipt_number, date.today()
        )
        terminal = self.services.devices.terminal
        assert terminal is not None
        answers: list[CardRefunded] = []
        self.app.bus.subscribe(CardRefunded, answers.append)
        chosen = {line.line_no: line.quantity for line in sale.lines}
        if first_line_only:
            chosen = {sale.lines[0].line_no: sale.lines[0].quantity}
        already = self.app.ledger.refunded_quantities(sale.id)
        amount = -refund_total(sale, chosen, already_refunded=already)  # a refund's is negative
        pay_back = CardPayBack(terminal, journal, self.app.bus, device_id=DEVICE)
        worker = threading.Thread(
            target=pay_back.run,
            args=(original, amount, sale.currency, date.today()),
            name="card-refund",
        )
        worker.start()
        worker.join(PAY_SECONDS)
        wait_until(lambda: bool(answers), "the terminal's answer to the pay-back")
        answer = answers[-1]
        assert answer.result is not None and answer.result.outcome == "approved", answer
        draft = draft_refund(
            sale,
            chosen,
            [answer.tender()],
            already_refunded=already,
            device_id=DEVICE,
            now=datetime.now(UTC),
            staff="staff-1",
        )
        refund = self.app.ledger.commit(draft)
        self.app.bus.post(SaleCommitted.of(refund))
        return answer


def _main_loop(services: Running, stop: threading.Event) -> None:
    while not stop.is_set():
        services.app.bus.wait(0.05)
        services.app.bus.drain()


def leaky_bmp22(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulated terminal sends card numbers in clear (the adapter must mask them)."""
    monkeypatch.setattr(zvt_bank, "masked_pan", full_pan)


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """Every log record at DEBUG also written to a file, as a service's stderr would be."""
    path = tmp_path / "appliance.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(STDERR_FORMAT))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


@dataclass(frozen=True)
class Uplink:
    """The broker, a hub that stores and acknowledges uploads, and a recorder of everything."""

    broker: MosquittoBroker
    hub: FakeHub
    recorder: Recorder


@pytest.fixture
def uplink(broker: MosquittoBroker) -> Iterator[Uplink]:
    """A hub and a recorder on the broker."""
    hub = FakeHub(broker.host, broker.port)
    hub.start()
    try:
        recorder = Recorder(broker)
        try:
            yield Uplink(broker, hub, recorder)
        finally:
            recorder.close()
    finally:
        hub.stop()


def journal_rows(db_path: Path) -> list[tuple[str, str, bool, str]]:
    """(kind, state, offline, card mask) of every attempt in the payment journal."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return [
            (str(kind), str(state), bool(offline), str(mask))
            for kind, state, offline, mask in db.execute(
                "SELECT kind, state, offline, card_mask FROM payment_journal"
            )
        ]
    finally:
        db.close()


def test_a_full_run_of_card_payments_leaves_no_card_number_anywhere(
    tmp_path: Path,
    uplink: Uplink,
    log_file: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaky_bmp22(monkeypatch)
    caplog.set_level(logging.DEBUG)
    hub, recorder = uplink.hub, uplink.recorder
    settings = settings_for(tmp_path / "state", uplink.broker)
    db_path = Path(settings.database.path)
    with running(settings, simulate=True) as services:
        stop = threading.Event()
        loop = threading.Thread(target=_main_loop, args=(services, stop), name="test-loop")
        loop.start()
        try:
            run = Run(services)
            wait_until(lambda: hub.statuses, "the appliance online at the hub")
            documents = drive(run)
            wait_until(lambda: len(hub.sequences(DEVICE)) >= documents, "the documents uploaded")
            wait_until(lambda: hub.health, "telemetry at the hub")
            assert run.printer is not None
            printed = ["\n".join(job.lines) for job in run.printer.jobs]
            # While it runs: the write-ahead log holds every page written since the last
            # checkpoint, old versions of rows included (a clean close folds it away).
            assert db_path.with_name("appliance.db-wal").exists()
            findings = scan_file(db_path, KNOWN)
        finally:
            stop.set()
            loop.join(10)

    # The run did what it should, so the scan below looked at real card data.
    rows = journal_rows(db_path)
    kinds = {(kind, state, offline) for kind, state, offline, _mask in rows}
    assert ("payment", "declined", False) in kinds
    assert ("payment", "settled", True) in kinds  # the offline approval, sold
    assert {("reversal", "settled", False), ("refund", "settled", False)} <= kinds
    masks = {mask for *_rest, mask in rows if mask}
    assert "476173******0010" in masks, masks  # the Visa, sent in clear, masked by the adapter
    assert all(sum(ch.isdigit() for ch in mask) <= 10 for mask in masks), masks
    assert any(b'"offline_cards":{' in payload for _, payload in recorder.messages)
    assert printed, "no receipt printed"
    assert len(caplog.records) > 100 and log_file.stat().st_size > 10_000  # it did log

    findings += scan_file(db_path, KNOWN)  # what the close left in the database file
    findings += scan_sqlite(db_path, KNOWN)
    findings += scan_log_records(caplog.records, KNOWN)
    findings += scan_file(log_file, KNOWN)
    findings += scan_payloads(recorder.messages, KNOWN)
    for index, text in enumerate(printed):
        findings += scan_text(text, f"printed receipt #{index}", KNOWN)
    assert not findings, report(findings)


def drive(run: Run) -> int:
    """Approved, declined, offline, a reversal and a refund; how many documents were stored."""
    documents = 0
    run.scan(COFFEE)
    approved = run.pay_card(Step("approve", card="Visa", pause=0.02))
    assert "receipt" in approved, approved
    documents += 1

    run.scan(WATER)
    declined = run.pay_card(Step("decline", card="Mastercard", pause=0.02))
    assert declined["ok"] is False, declined
    assert "receipt" in run.ask("pay", method="cash")  # the cart, paid another way
    documents += 1

    run.scan(CHOCOLATE)
    run.scan(WATER)
    offline = run.pay_card(Step("approve_offline", card="American Express", pause=0.02))
    assert "receipt" in offline, offline
    documents += 1

    run.scan(COFFEE)
    run.scan(CHOCOLATE)
    maestro = run.pay_card(Step("approve", card="Maestro", pause=0.02))
    assert "receipt" in maestro, maestro
    documents += 1

    # The whole Visa sale back the same day: a reversal of its receipt number.
    run.emulator.script(Step("approve", card="Visa", pause=0.02))
    run.pay_back(approved["receipt"])
    documents += 1
    # One line of the Maestro sale back: a refund the card is presented for.
    run.emulator.script(Step("approve", card="Maestro", pause=0.02))
    run.pay_back(maestro["receipt"], first_line_only=True)
    documents += 1

    # The terminal's End-of-Day submits the offline approval.
    assert run.ask("end-of-day")["count"] >= 1
    return documents


# -- the scanner finds what is there -------------------------------------------------------


def test_luhn_tells_card_numbers_from_other_digits() -> None:
    assert luhn_valid(PLANTED)
    assert luhn_valid("374245455400126")  # Amex, 15 digits
    assert luhn_valid("6799998900000060018")  # Maestro, 19 digits
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("6725590000001234")
    assert not luhn_valid("4111-1111")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (f"card {PLANTED} approved", [PLANTED]),
        (f"card={PLANTED};", [PLANTED]),
        ("card 4111 1111 1111 1111 approved", [PLANTED]),
        ("card 4111-1111-1111-1111 approved", [PLANTED]),
        ("amex 3742 454554 00126", ["374245455400126"]),
        ("maestro 6799998900000060018.", ["6799998900000060018"]),
        ("masked 411111******1111 and **** 1111", []),
        ("not Luhn 4111111111111112", []),
        ("too long 41111111111111110000000", []),  # 23 digits: not one card number
        ("too short 411111111111", []),
        ("a receipt 2026-12-06 05:24:36, 4 items, 12.50", []),
        ("a fraction 2026-12-06T05:30:12.4111111111111111", []),
        ("leading zero 0411111111111116 (no card starts with 0)", []),
        # SQLite's glued columns: a hex id, a receipt number, a masked card's first 6.
        ("pci-kiosk-49ffb18315d649210005476173******0010Visa", []),
    ],
)
def test_the_scanner_finds_card_numbers_in_text(text: str, found: list[str]) -> None:
    assert [f.digits for f in scan_text(text, "test")] == found


def test_a_known_card_number_is_found_wherever_it_touches_and_in_packed_bcd() -> None:
    glued = f"Visa{PLANTED}2026-12-06"
    assert scan_text(glued, "row") == []  # touching letters: not standing alone
    assert [f.digits for f in scan_text(glued, "row", known=(PLANTED,))] == [PLANTED]
    amex = "374245455400126"
    bmp22 = b"\x04\x0f\x22\xf8" + bytes.fromhex(amex + "F") + b"\x29"  # ZVT's LLVAR, F padded
    assert [f.digits for f in scan_bytes(bmp22, "apdu", known=(amex,))] == [amex]
    assert scan_bytes(bmp22, "apdu", known=(PLANTED,)) == []


def test_a_planted_card_number_is_found_in_a_log_record_and_a_log_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_file = tmp_path / "planted.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    logger = logging.getLogger("appliance.planted")
    logger.addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG):
            logger.info("terminal answered for card %s", PLANTED)
            logger.debug("nothing here: **** 1111")
            try:
                raise ValueError("bad card 4111 1111 1111 1111")
            except ValueError:
                logger.exception("payment failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    findings = scan_log_records(caplog.records)
    assert {f.digits for f in findings} == {PLANTED}
    # The message of one record, and the other's traceback (its text and its source line).
    assert len({f.where for f in findings}) == 2
    assert findings[0].where.startswith("log appliance.planted:")
    assert PLANTED not in report(findings)  # the report masks what it found
    assert "411111******1111" in report(findings)
    in_file = scan_file(log_file)
    assert len(in_file) >= 2 and {f.digits for f in in_file} == {PLANTED}


def test_a_planted_card_number_is_found_in_a_database_row_and_its_file(tmp_path: Path) -> None:
    path = tmp_path / "appliance.db"
    db = open_database(path)
    migrate(db)
    journal = PaymentAttempts(db)
    clean = tmp_path / "clean.db"
    request = PaymentRequest(1_000, "EUR", "kiosk-1-a1")
    journal.begin(request, None)
    journal.answered(
        request,
        PaymentResult("approved", "kiosk-1-a1", masked_card="411111******1111"),
    )
    assert scan_sqlite(path) == []
    assert scan_file(path) == []
    # A terminal message that carries the number in clear, and one stored as an integer.
    request = PaymentRequest(2_000, "EUR", "kiosk-1-a2")
    journal.begin(request, None)
    journal.answered(
        request, PaymentResult("declined", "kiosk-1-a2", message=f"card {PLANTED} refused")
    )
    db.execute_sql("CREATE TABLE planted (pan INTEGER)")
    db.execute_sql("INSERT INTO planted VALUES (?)", (int(PLANTED),))
    rows = scan_sqlite(path)
    assert {(f.where.split(" ")[0], f.digits) for f in rows} == {
        ("payment_journal.message", PLANTED),
        ("planted.pan", PLANTED),
    }
    # In the file's bytes: the text in the write-ahead log (the integer is binary there).
    in_files = scan_file(path)
    assert in_files and all(f.digits == PLANTED for f in in_files)
    assert any(f.where.startswith("appliance.db-wal") for f in in_files)
    db.close()
    assert not clean.exists()


def test_a_planted_card_number_is_found_in_an_mqtt_payload() -> None:
    sales = b'{"tenders":[{"card_mask":"**** 1111","note":"' + PLANTED.encode() + b'"}]}'
    payloads = [("pos/v1/d/k/up/health", b'{"v":1,"device":"k"}'), ("pos/v1/d/k/up/sales", sales)]
    findings = scan_payloads(payloads)
    where = f"mqtt #1 pos/v1/d/k/up/sales @{sales.index(PLANTED.encode())}"
    assert [(f.where, f.digits) for f in findings] == [(where, PLANTED)]


def test_the_leaky_terminal_really_sends_the_number_in_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The full run's terminal puts the whole card number on the wire, so its scan proves
    the adapter masks it (and is not clean only because the emulator masked it first)."""
    leaky_bmp22(monkeypatch)
    card = zvt_bank.CARDS["Visa"]
    entry = zvt_bank.Entry(
        booked=_booked(), result_code=0, when=datetime.now(UTC), card="Visa", day=1, turnover=1
    )
    wire = zvt_bank.status_information(entry, terminal_id="52500038", currency=978)
    assert bytes.fromhex(card.pan) in wire
    assert luhn_valid(card.pan)


def _booked() -> zvt_bank.Booked:
    """A payment the emulator booked."""
    return zvt_bank.Booked("payment", 499, 1, 1, "booked", False)  # type: ignore[arg-type]
