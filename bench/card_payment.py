"""Card payment: ask_terminal through ZvtTerminal to the ZVT emulator, against a raw socket."""

from __future__ import annotations

import contextlib
import gc
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter_ns

from peewee import SqliteDatabase

from appliance.core.card_payment import CardAnswered, ask_terminal, card_request, card_tender
from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.events import EventBus
from appliance.core.payment import PaymentRequest, PaymentResult
from appliance.core.sale import SaleDraft, draft_sale
from appliance.core.tax import TaxPolicy
from appliance.device_settings import ZvtTerminalSettings
from appliance.drivers.sim.zvt_terminal import Step, ZvtEmulator
from appliance.drivers.zvt.apdu import EXTENDED_LENGTH
from appliance.drivers.zvt.terminal import ZvtTerminal
from appliance.store.catalog import SqliteCatalog
from appliance.store.documents import SalesLedger
from appliance.store.payment_attempts import PaymentAttempts
from bench import fixtures
from bench.databases import open_ours
from bench.result import Row, Target
from bench.sale_data import DEVICE_ID, RECEIPT_PREFIX, build_drafts
from bench.stats import percentile, summary_us
from bench.workdir import filesystem_of, quiet_drivers

NAME = "card_payment"
HOST = "127.0.0.1"
PRODUCTS = 30
START_STOCK = 1_000_000
WARMUP_PER_BLOCK = 3  # per side and block: the adapter connects and registers at its first
TIMEOUT_S = 10.0  # an exchange not over by then is an error, not a slow sample
NS_PER_MS = 1e6
# The customer takes no time and the PT prints nothing: what is left is the wire and what
# each side does with it. One 04 FF ("insert card") as a real PT sends, in both measurements.
STEP = Step("approve", intermediate=1, pause=0.0, receipts=False)
AUTHORIZATION, REGISTRATION = (0x06, 0x01), (0x06, 0x00)
ENDS = (b"\x06\x0f", b"\x06\x1e")  # Completion, Abort: the PT's last message of an exchange
# Full stack against raw: an absolute limit on what the till adds, not a ratio. The raw
# exchange is four round trips on loopback to an emulator (a fraction of a millisecond), so
# a ratio mostly measures the emulator; a real PT takes 1-3 s (card, PIN, host). The till's
# share is the journal's two durable commits (each about one sale commit: 2-8 ms on an SD
# card or a virtual disk) and well under a millisecond of adapter. 20 ms fits both commits
# on a slow card, stays a fifth of the 100 ms at which a person notices a delay, and still
# catches a third commit or a wait on a poll slice (100 ms).
OVERHEAD_LIMIT_MS = 20.0
NOTE = (
    "Ours = core.card_payment.ask_terminal (journal PaymentAttempts.begin pending, then "
    "ZvtTerminal.pay over TCP, the answer journaled by its recorder before the ack, then "
    "CardAnswered posted) with a 3-item cart, on a migrated appliance database (WAL, "
    "synchronous=FULL). Raw = a plain socket (TCP_NODELAY, as TcpLink) sending the 06 01 the "
    "adapter sent (captured from ZvtEmulator.received), answering each PT message with "
    "80 00 00, reading APDUs by their length; no journal. Both against one ZvtEmulator on "
    "127.0.0.1, Step(approve, one 04 FF, pause 0, no receipts); the ECR's bytes of one "
    "exchange are checked equal on both sides. Timed: command sent to the Completion's ack. "
    "Alternating blocks, each side reconnecting (and registering) per block and warming up."
)
JOURNAL_NOTE = (
    "Ours = the journal's writes inside each timed payment above (begin pending, committed "
    "without an fsync, + answered approved, synchronous=FULL), timed around each call. "
    "Baseline = SalesLedger.commit of each timed payment's own 3-item sale, right after it "
    "on the same path (it settles the attempt in its transaction); the same commits in "
    "blocks of their own are in details (sale_commit_alone). Ratio = p50 / p50: the "
    "journal must not cost more than one sale commit."
)
POLICY = TaxPolicy.of(fixtures.TAX_RATES)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many alternating blocks, and timed payments per block for each side."""

    blocks: int
    per_block: int


FULL = Sizes(blocks=4, per_block=50)
QUICK = Sizes(blocks=2, per_block=5)


@dataclass(frozen=True, slots=True)
class Wire:
    """The ECR's bytes, as the adapter sent them: Registration, Authorization, its ack."""

    registration: bytes
    authorization: bytes
    ack: bytes
    exchange: tuple[bytes, ...]  # everything the ECR sent for one payment, in order


@dataclass(slots=True)
class TimedJournal:
    """The store's PaymentAttempts as an AttemptJournal, timing its writes per payment."""

    attempts: PaymentAttempts
    timing: bool = False
    writes: list[int] = field(default_factory=list)  # begin + answered of each timed payment
    begins: list[int] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    def begin(self, request: PaymentRequest, cart: Cart | None) -> None:
        """Commit the attempt as pending."""
        t0 = perf_counter_ns()
        self.attempts.begin(request, cart)
        if self.timing:
            self.begins.append(perf_counter_ns() - t0)

    def answered(self, request: PaymentRequest, result: PaymentResult | None) -> None:
        """Commit the terminal's answer."""
        t0 = perf_counter_ns()
        self.attempts.answered(request, result)
        if self.timing:
            self.answers.append(perf_counter_ns() - t0)
            self.writes.append(self.begins[-1] + self.answers[-1])


class RawEcr(contextlib.AbstractContextManager["RawEcr"]):
    """A plain TCP client playing the ECR: sends bytes, acks the PT, reads APDUs by length."""

    def __init__(self, port: int, wire: Wire) -> None:
        self.wire = wire
        self.sock = socket.create_connection((HOST, port), TIMEOUT_S)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __exit__(self, *_: object) -> None:
        self.sock.close()

    def exchange(self, command: bytes) -> bytes:
        """Send `command`, take its 80 00 00, ack every PT message; the last one's class/instr."""
        self.sock.sendall(command)
        answer = self._apdu()
        if answer[:2] != b"\x80\x00":
            raise RuntimeError(f"the emulator refused the command: {answer.hex(' ')}")
        while True:
            message = self._apdu()
            self.sock.sendall(self.wire.ack)
            if message[:2] in ENDS:
                return message[:2]

    def _apdu(self) -> bytes:
        header = self._exact(3)
        if header[2] == EXTENDED_LENGTH:
            header += self._exact(2)
            size = int.from_bytes(header[3:5], "little")
        else:
            size = header[2]
        return header + self._exact(size)

    def _exact(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise RuntimeError("the emulator closed the connection")
            data += chunk
        return bytes(data)


@dataclass(slots=True)
class Tallies:
    """Each side's per-payment (or per-commit) nanoseconds."""

    wire_bytes: int
    ours: list[int] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    sales: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Bench:
    """What the payments share: the emulator, the journal, the cart and the answers seen."""

    emulator: ZvtEmulator
    port: int
    journal: TimedJournal
    bus: EventBus
    cart: Cart
    amount: int
    ledger: SalesLedger
    answers: list[CardAnswered] = field(default_factory=list)
    sale_commits: list[int] = field(default_factory=list)  # each timed payment's own sale

    def settings(self) -> ZvtTerminalSettings:
        """The adapter's settings: the emulator's address, defaults otherwise."""
        return ZvtTerminalSettings(host=HOST, port=self.port)

    def pay(self, terminal: ZvtTerminal) -> int:
        """One full-stack payment, as the checkout's worker runs it; its nanoseconds."""
        self.emulator.script(STEP)
        request = card_request(self.amount, fixtures.CURRENCY, DEVICE_ID)
        t0 = perf_counter_ns()
        ask_terminal(
            terminal, request, self.bus, journal=self.journal, cart=self.cart, timeout=TIMEOUT_S
        )
        elapsed = perf_counter_ns() - t0
        self.bus.drain()
        if self.journal.timing:
            self._sell(request)
        return elapsed

    def _sell(self, request: PaymentRequest) -> None:
        """The sale this payment pays, committed as the till does: the path's sale commit."""
        answer = self.answers[-1]
        if answer.request is not request or answer.result is None:
            raise RuntimeError(f"no answer for {request.merchant_reference}")
        draft = draft_sale(
            self.cart,
            POLICY,
            [card_tender(request, answer.result)],
            device_id=DEVICE_ID,
            now=datetime.now(UTC),
        )
        t0 = perf_counter_ns()
        self.ledger.commit(draft)  # settles the attempt in its own transaction
        self.sale_commits.append(perf_counter_ns() - t0)

    def approved(self) -> int:
        """How many answers were approvals; RuntimeError for any other, which voids the run."""
        for answer in self.answers:
            if answer.result is None or answer.result.outcome != "approved":
                raise RuntimeError(f"a payment was not approved: {answer}")
        return len(self.answers)


def _time_ours(bench: Bench, count: int) -> list[int]:
    terminal = ZvtTerminal.from_settings("bench-zvt", bench.settings(), {})
    terminal.open(bench.bus)
    try:
        for _ in range(WARMUP_PER_BLOCK):
            bench.pay(terminal)
        bench.journal.timing = True
        gc.collect()
        return [bench.pay(terminal) for _ in range(count)]
    finally:
        bench.journal.timing = False
        terminal.close()


def _time_raw(bench: Bench, wire: Wire, count: int) -> list[int]:
    with RawEcr(bench.port, wire) as ecr:
        ecr.exchange(wire.registration)
        for _ in range(WARMUP_PER_BLOCK):
            bench.emulator.script(STEP)
            ecr.exchange(wire.authorization)
        gc.collect()
        latencies = []
        for _ in range(count):
            bench.emulator.script(STEP)
            t0 = perf_counter_ns()
            end = ecr.exchange(wire.authorization)
            latencies.append(perf_counter_ns() - t0)
            if end != b"\x06\x0f":
                raise RuntimeError(f"a raw payment ended with {end.hex(' ')}, not Completion")
    return latencies


def _time_sales(ledger: SalesLedger, drafts: list[SaleDraft]) -> list[int]:
    gc.collect()
    latencies = []
    for draft in drafts:
        t0 = perf_counter_ns()
        ledger.commit(draft)
        latencies.append(perf_counter_ns() - t0)
    return latencies


def capture_wire(bench: Bench) -> Wire:
    """Let the adapter register and pay (a warm-up); the raw client sends what it sent."""
    start = len(bench.emulator.received)
    _time_ours(bench, 0)
    sent = bench.emulator.received[start:]
    commands = [apdu.command for apdu in sent]
    registration = sent[commands.index(REGISTRATION)]
    first = commands.index(AUTHORIZATION)
    second = commands.index(AUTHORIZATION, first + 1)
    exchange = tuple(apdu.encode() for apdu in sent[first:second])
    return Wire(registration.encode(), exchange[0], exchange[1], exchange)


def check_same_wire(bench: Bench, wire: Wire) -> None:
    """The raw client sends the adapter's bytes for a payment, or the comparison is void."""
    with RawEcr(bench.port, wire) as ecr:
        ecr.exchange(wire.registration)
        bench.emulator.wait_idle(TIMEOUT_S)  # until it has the Completion's ack
        start = len(bench.emulator.received)
        bench.emulator.script(STEP)
        ecr.exchange(wire.authorization)
    bench.emulator.wait_idle(TIMEOUT_S)
    raw = tuple(apdu.encode() for apdu in bench.emulator.received[start:])
    if raw != wire.exchange:
        raise RuntimeError(f"raw sent {raw}, the adapter {wire.exchange}")


def measure(bench: Bench, ledger: SalesLedger, drafts: list[SaleDraft], sizes: Sizes) -> Tallies:
    """Alternating blocks of full-stack payments, raw exchanges and sale commits."""
    wire = capture_wire(bench)
    check_same_wire(bench, wire)
    tallies = Tallies(wire_bytes=sum(map(len, wire.exchange)))
    for block in range(sizes.blocks):
        part = drafts[block * sizes.per_block : (block + 1) * sizes.per_block]
        # Alternate who goes first so neither side always follows the other's reconnect or
        # the ledger's WAL growth.
        if block % 2 == 0:
            tallies.ours += _time_ours(bench, sizes.per_block)
            tallies.raw += _time_raw(bench, wire, sizes.per_block)
            tallies.sales += _time_sales(ledger, part)
        else:
            tallies.sales += _time_sales(ledger, part)
            tallies.raw += _time_raw(bench, wire, sizes.per_block)
            tallies.ours += _time_ours(bench, sizes.per_block)
    return tallies


def _stocked(path: Path, products: list[Product]) -> SqliteDatabase:
    db = open_ours(path)
    SqliteCatalog(db).upsert((p, START_STOCK) for p in products)
    return db


def _cart(products: list[Product]) -> tuple[Cart, int]:
    """A 3-item cart, as the sale drafts hold, and its total in minor units."""
    cart = Cart(fixtures.CURRENCY)
    for product in products[:3]:
        cart = cart.add(ProductMatch(product))
    return cart, cart.totals(POLICY).total


def _ms(samples: list[int], q: float) -> float:
    return percentile(samples, q) / NS_PER_MS


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Time full-stack card payments, raw exchanges of the same bytes and sale commits."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    products = [p for p in map(fixtures.product, range(PRODUCTS * 2)) if not p.age_restriction]
    products = products[:PRODUCTS]
    drafts = build_drafts(products, sizes.blocks * sizes.per_block)
    cart, amount = _cart(products)
    db = _stocked(workdir / "appliance.db", products)
    bus = EventBus()
    try:
        with quiet_drivers(), ZvtEmulator(currency=fixtures.CURRENCY) as emulator:
            journal = TimedJournal(PaymentAttempts(db))
            port = emulator.serve_tcp(HOST)
            ledger = SalesLedger(db, RECEIPT_PREFIX)
            bench = Bench(emulator, port, journal, bus, cart=cart, amount=amount, ledger=ledger)
            bus.subscribe(CardAnswered, bench.answers.append)
            tallies = measure(bench, ledger, drafts, sizes)
            paid = bench.approved()
            booked = len(emulator.book)
        attempts = db.execute_sql("SELECT COUNT(*) FROM payment_journal").fetchone()[0]
    finally:
        db.close()
    if attempts != paid:
        raise RuntimeError(f"{paid} payments approved, {attempts} in the journal")
    ours_p50, raw_p50 = _ms(tallies.ours, 50), _ms(tallies.raw, 50)
    # The baseline is the sale commit on the same path: each timed payment's own sale,
    # committed right after it (its journal step settled in the sale's transaction).
    journal_p50, sale_p50 = _ms(bench.journal.writes, 50), _ms(bench.sale_commits, 50)
    details = {
        "payments_per_side": len(tallies.ours),
        "blocks": sizes.blocks,
        "per_block": sizes.per_block,
        "warmup_per_block": WARMUP_PER_BLOCK,
        "ecr_bytes_per_payment": tallies.wire_bytes,
        "payments_booked_by_emulator": booked,
        "ours": summary_us(tallies.ours),
        "raw": summary_us(tallies.raw),
        "overhead_p50_ms": round(ours_p50 - raw_p50, 3),
        "overhead_limit_ms": OVERHEAD_LIMIT_MS,
        "database_filesystem": filesystem_of(workdir),
    }
    shares = {
        "journal_writes": summary_us(bench.journal.writes),
        "journal_begin": summary_us(bench.journal.begins),
        "journal_answered": summary_us(bench.journal.answers),
        "sale_commit": summary_us(bench.sale_commits),
        "sale_commit_alone": summary_us(tallies.sales),
        "journal_share_of_payment_p50": round(journal_p50 / ours_p50, 3),
        # Each write alone against a sale commit: the journal makes two per payment.
        "begin_to_sale_p50": round(_ms(bench.journal.begins, 50) / sale_p50, 3),
        "answered_to_sale_p50": round(_ms(bench.journal.answers, 50) / sale_p50, 3),
        "database_filesystem": filesystem_of(workdir),
    }
    return [
        Row(
            NAME,
            "p50 overhead",
            ours_p50 - raw_p50,
            "ms",
            target=Target(OVERHEAD_LIMIT_MS, at_most=True),
            baseline=raw_p50,
            baseline_name="raw socket p50, same bytes; measured = ours p50 - raw p50, no ratio",
            note=NOTE,
            details=details,
        ),
        *(
            Row(
                NAME,
                f"p{q} authorization",
                _ms(tallies.ours, q),
                "ms",
                baseline=_ms(tallies.raw, q),
                baseline_name=f"raw socket p{q}, same bytes",
                ratio=_ms(tallies.ours, q) / _ms(tallies.raw, q),
                note=NOTE,
                details=details,
            )
            for q in (50, 99)
        ),
        Row(
            NAME,
            "journal p50 per payment",
            journal_p50,
            "ms",
            target=Target(1.0, at_most=True, on_ratio=True),
            baseline=sale_p50,
            baseline_name="SalesLedger.commit p50 of each payment's own sale, same path",
            ratio=journal_p50 / sale_p50,
            note=JOURNAL_NOTE,
            details=shares,
        ),
    ]
