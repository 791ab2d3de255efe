"""Receipt printing: EscposPrinter.print_receipt to the simulated printer against raw bytes."""

from __future__ import annotations

import gc
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter_ns

from appliance.core.cart import Cart
from appliance.core.catalog import ProductMatch
from appliance.core.events import EventBus
from appliance.core.receipt import Receipt, receipt_for
from appliance.core.sale import draft_sale
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from appliance.device_settings import EscposPrinterSettings
from appliance.drivers.escpos_printer import STATUS_QUERY, EscposPrinter, escpos_printers
from appliance.drivers.receipt_layout import lay_out
from appliance.drivers.sim.printer import SimPrinter
from bench import fixtures
from bench.result import Row, Target
from bench.stats import median, percentile, summary_us

NAME = "receipt_print"
LINES = 30
WARMUP = 5
PROFILE = "TM-T88V"
TIMEOUT_S = 5.0
NS_PER_MS = 1e6
NOTE = (
    "Ours = EscposPrinter.print_receipt of a 30-line receipt over TCP to SimPrinter on "
    "127.0.0.1: connect, DLE EOT status, python-escpos layout and encoding, send, cut, "
    "status again (proves the printer read it all), close. Raw = the same bytes encoded "
    "once beforehand (status queries included), sent on a plain socket to the same "
    "simulator, reading the same status answers. Alternating blocks; ratio = ours/raw median."
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """Prints per side, in alternating blocks."""

    blocks: int
    per_block: int


FULL = Sizes(blocks=4, per_block=25)
QUICK = Sizes(blocks=2, per_block=10)


def thirty_line_receipt() -> Receipt:
    """A cash sale of 30 different products, as the checkout would print it."""
    products = [p for p in map(fixtures.product, range(LINES + 5)) if not p.age_restriction]
    cart = Cart(fixtures.CURRENCY)
    for product in products[:LINES]:
        cart = cart.add(ProductMatch(product))
    policy = TaxPolicy.of(fixtures.TAX_RATES, prices_include_tax=True, rounding="line")
    total = cart.totals(policy).total
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    draft = draft_sale(cart, policy, [Tender.cash(total + 1000, total)], device_id="B01", now=now)
    sale = draft.seal(1, "B01-000001")
    return receipt_for(sale, store_name="Bench Store", locale="de_DE", header=("Bench Street 1",))


def encoded(receipt: Receipt) -> bytes:
    """What the adapter sends for `receipt` on one connection, encoded once."""
    dummy = escpos_printers().Dummy(profile=PROFILE)
    lay_out(dummy, receipt, 42)
    return STATUS_QUERY + bytes(dummy.output) + STATUS_QUERY


def _time_ours(printer: EscposPrinter, receipt: Receipt, count: int) -> list[int]:
    samples = []
    for _ in range(count):
        t0 = perf_counter_ns()
        printer.print_receipt(receipt)
        samples.append(perf_counter_ns() - t0)
    return samples


def _time_raw(sim: SimPrinter, data: bytes, count: int) -> list[int]:
    answers = 2 * len(STATUS_QUERY) // 3
    samples = []
    for _ in range(count):
        t0 = perf_counter_ns()
        with socket.create_connection((sim.host, sim.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(data)
            got = 0
            while got < answers:
                chunk = sock.recv(answers - got)
                if not chunk:
                    raise RuntimeError("the simulator closed the connection")
                got += len(chunk)
        samples.append(perf_counter_ns() - t0)
    return samples


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Print the same receipt through the adapter and as raw bytes, in alternating blocks."""
    sizes = QUICK if quick else FULL
    receipt = thirty_line_receipt()
    data = encoded(receipt)
    ours: list[int] = []
    raw: list[int] = []
    with SimPrinter() as sim:
        table = EscposPrinterSettings(
            host=sim.host, port=sim.port, timeout=TIMEOUT_S, profile=PROFILE
        )
        with EscposPrinter("bench", table) as printer:
            printer.open(EventBus())
            if not printer.wait_ready(TIMEOUT_S):
                raise RuntimeError("the simulated printer did not answer")
            _time_ours(printer, receipt, WARMUP)
            _time_raw(sim, data, WARMUP)
            for block in range(sizes.blocks):
                gc.collect()
                if block % 2 == 0:
                    ours += _time_ours(printer, receipt, sizes.per_block)
                    raw += _time_raw(sim, data, sizes.per_block)
                else:
                    raw += _time_raw(sim, data, sizes.per_block)
                    ours += _time_ours(printer, receipt, sizes.per_block)
        jobs = sim.wait_for_jobs(2 * (WARMUP + sizes.blocks * sizes.per_block), TIMEOUT_S)
    if any(job.lines != jobs[0].lines or job.qr != [receipt.sale_id] for job in jobs):
        raise RuntimeError("the adapter and the raw bytes printed different receipts")
    ours_median, raw_median = median(ours) / NS_PER_MS, median(raw) / NS_PER_MS
    ours_p90, raw_p90 = percentile(ours, 90) / NS_PER_MS, percentile(raw, 90) / NS_PER_MS
    details = {
        "receipt_lines": LINES,
        "printed_lines": len(jobs[0].lines),
        "bytes_per_receipt": len(data),
        "prints_per_side": len(ours),
        "warmup_prints": WARMUP,
        "ours": summary_us(ours),
        "raw": summary_us(raw),
    }
    return [
        Row(
            NAME,
            "median",
            ours_median,
            "ms",
            target=Target(20.0, at_most=True),
            baseline=raw_median,
            baseline_name="raw socket, same bytes",
            ratio=ours_median / raw_median,
            note=NOTE,
            details=details,
        ),
        Row(
            NAME,
            "p90",
            ours_p90,
            "ms",
            baseline=raw_p90,
            baseline_name="raw socket p90",
            ratio=ours_p90 / raw_p90,
            note="90th percentile of per-print wall time (info)",
        ),
    ]
