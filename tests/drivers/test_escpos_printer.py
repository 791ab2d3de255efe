"""EscposPrinter through python-escpos over TCP and a pty to the simulated printer."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.core.cart import Cart
from appliance.core.catalog import Product, ProductMatch
from appliance.core.devices import DeviceHealthChanged, PrinterStatus
from appliance.core.discount import Discount
from appliance.core.events import Event, EventBus
from appliance.core.money import Money
from appliance.core.receipt import Receipt, ReceiptLine, receipt_for
from appliance.core.sale import draft_sale
from appliance.core.tax import TaxPolicy
from appliance.core.tender import Tender
from appliance.device_settings import EscposPrinterSettings
from appliance.drivers import escpos_cache
from appliance.drivers.escpos_printer import EscposPrinter, decode_status, escpos_printers
from appliance.drivers.registry import adapter_for
from appliance.drivers.sim.escpos_parser import LineStyle, PrintedJob
from appliance.drivers.sim.printer import SimPrinter, SimSerialPrinter, status_byte
from appliance.errors import DeviceError

REPO = Path(__file__).resolve().parents[2]
EU = TaxPolicy.of({"standard": 1900, "reduced": 700}, prices_include_tax=True, rounding="line")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
COLA = Product("COLA", "Cola", Money(249, "EUR"), "standard")
BREAD = Product("BREAD", "Sourdough bread", Money(399, "EUR"), "reduced", stock_tracked=False)
CANDLE = Product("CANDLE", "Candle", Money(333, "EUR"), "standard")


def receipt(sequence: int = 7, *, store: str = "Corner Shop") -> Receipt:
    """A cash sale of three lines (one discounted, one of three items) with change."""
    cart = (
        Cart("EUR")
        .add(ProductMatch(COLA), 3)
        .add(ProductMatch(BREAD))
        .add(ProductMatch(CANDLE))
        .discount_line(3, Discount.percent(1000))
    )
    total = cart.totals(EU).total
    draft = draft_sale(cart, EU, [Tender.cash(5000, total)], device_id="K01", now=NOW)
    sale = draft.seal(sequence, f"K01-{sequence:06d}")
    return receipt_for(sale, store_name=store, locale="de_DE", header=("Main Street 1",))


def plain(text: str) -> str:
    """Babel's non-breaking spaces as the printer gets them (plain spaces)."""
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def assert_is_the_receipt(job: PrintedJob, r: Receipt) -> None:
    """Everything the customer needs is on the paper, in place."""
    text = [plain(line) for line in job.lines]
    name_block = next(b for b in job.blocks if b.text == r.store_name)
    assert name_block.style == LineStyle(align="center", bold=True, width=2, height=2)
    assert "Main Street 1" in text
    assert any(line.startswith(r.created_at) and line.endswith(r.receipt_number) for line in text)
    for item in r.lines:
        row = next(line for line in text if line.startswith(item.text))
        assert row.endswith(plain(item.amount)), row
        assert len(row) == 42
        if item.discount:
            assert any("Discount" in line and line.endswith(plain(item.discount)) for line in text)
    assert "  Qty 3" in text
    for rate, net, tax in r.taxes:
        assert any(
            line.startswith(rate) and plain(net) in line and line.endswith(plain(tax))
            for line in text
        )
    total = next(b for b in job.blocks if b.text.startswith("TOTAL"))
    assert plain(total.text).endswith(plain(r.total))
    assert total.style.bold and total.style.height == 2
    for name, amount in r.tenders:
        assert any(line.startswith(name) and line.endswith(plain(amount)) for line in text)
    assert any(line.startswith("Change") and line.endswith(plain(r.change)) for line in text)
    assert job.barcodes == [r.receipt_number]
    assert job.qr == [r.sale_id]
    assert text[-1] == "Thank you!"
    assert job.cuts == 1


# Every thread a test starts is joined by its end (tests/drivers/conftest.py).
pytestmark = pytest.mark.usefixtures("no_leaked_threads")


@pytest.fixture
def bus() -> EventBus:
    """The bus health changes go to."""
    return EventBus()


@pytest.fixture
def sim() -> Iterator[SimPrinter]:
    """A network printer on 127.0.0.1."""
    with SimPrinter() as sim:
        yield sim


def network(sim: SimPrinter, name: str = "receipts") -> EscposPrinter:
    """An adapter for `sim`, built from its settings table as the registry does."""
    table = EscposPrinterSettings(host=sim.host, port=sim.port, timeout=2.0)
    printer = adapter_for("escpos_printer").from_settings(name, table, {})
    assert isinstance(printer, EscposPrinter)
    return printer


@pytest.fixture
def printer(sim: SimPrinter, bus: EventBus) -> Iterator[EscposPrinter]:
    """An open adapter for `sim` whose first status check is done."""
    with network(sim) as printer:
        printer.open(bus)
        assert printer.wait_ready(10.0)
        assert printer.health.state == "ok"
        yield printer


def health_events(bus: EventBus) -> list[tuple[str, str]]:
    """(state, reason) of every DeviceHealthChanged posted so far."""
    seen: list[Event] = []
    bus.subscribe(DeviceHealthChanged, seen.append)
    bus.drain()
    return [(e.health.state, e.health.reason) for e in seen if isinstance(e, DeviceHealthChanged)]


def test_a_receipt_prints_over_tcp_with_everything_on_it(
    sim: SimPrinter, printer: EscposPrinter
) -> None:
    r = receipt()
    printer.print_receipt(r)
    [job] = sim.wait_for_jobs(1)
    assert_is_the_receipt(job, r)
    assert printer.health.state == "ok"
    assert printer.address == f"127.0.0.1:{sim.port}"


def test_a_receipt_prints_over_a_serial_pty(bus: EventBus) -> None:
    with SimSerialPrinter() as sim:
        table = EscposPrinterSettings(transport="serial", serial_port=sim.port, timeout=2.0)
        with EscposPrinter("serial", table) as printer:
            printer.open(bus)
            r = receipt()
            printer.print_receipt(r)
            [job] = sim.wait_for_jobs(1)
            assert_is_the_receipt(job, r)
            assert printer.health.state == "ok"
            sim.paper_near_end = True
            assert printer.status() == PrinterStatus(True, True, False, False)
            assert printer.health.reason == "paper near end"


def test_a_refund_with_a_weighed_line_and_hostile_names(
    sim: SimPrinter, printer: EscposPrinter
) -> None:
    evil = "Cola\x1bp\x00\x32\x32\n\x1dV\x00 zero"  # a kick and a cut hidden in a name
    r = Receipt(
        store_name="Corner Shop",
        header=(),
        title="REFUND",
        receipt_number="K01-000009",
        sale_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        created_at="2024-05-03 09:30",
        lines=(
            ReceiptLine("Apples", "-0.500 kg", "-1,50 €"),
            ReceiptLine(evil, "-1", "-2,49 €"),
        ),
        taxes=(),
        discount_total="",
        total="-3,99 €",
        tenders=(("Card", "-3,99 €"),),
        change="",
        footer=("Goodbye",),
    )
    printer.print_receipt(r)
    [job] = sim.wait_for_jobs(1)
    title = next(b for b in job.blocks if b.text == "REFUND")
    assert title.style.bold and title.style.width == 2
    assert "  -0.500 kg" in job.lines
    assert "  Qty -1" in job.lines
    assert any(line.startswith("Colap22V zero") for line in job.lines)
    assert sim.kicks == [] and job.cuts == 1
    assert not any(line.startswith("Tax rate") or line.startswith("Change") for line in job.lines)


def test_each_job_opens_and_closes_its_own_connection(
    sim: SimPrinter, printer: EscposPrinter
) -> None:
    before = sim.connections
    printer.print_receipt(receipt(1))
    printer.print_receipt(receipt(2))
    jobs = sim.wait_for_jobs(2)
    assert sim.connections == before + 2
    assert [job.barcodes for job in jobs] == [["K01-000001"], ["K01-000002"]]


def test_status_is_asked_before_and_after_the_job(sim: SimPrinter, printer: EscposPrinter) -> None:
    printer.print_receipt(receipt())
    [job] = sim.wait_for_jobs(1)
    status = b"\x10\x04\x01\x10\x04\x02\x10\x04\x04"
    assert status + b"\x1b@" in job.raw  # asked, then the receipt
    assert sim.received.endswith(b"\x1dV\x00" + status)  # and asked again after the cut


def test_paper_out_refuses_the_receipt_and_degrades_health(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus
) -> None:
    sim.set_paper_out(True)
    with pytest.raises(DeviceError, match="paper out"):
        printer.print_receipt(receipt())
    assert (printer.health.state, printer.health.reason) == ("degraded", "paper out")
    assert ("degraded", "paper out") in health_events(bus)
    assert sim.jobs == []
    assert b"Corner Shop" not in sim.received


def test_cover_open_refuses_the_receipt(sim: SimPrinter, printer: EscposPrinter) -> None:
    sim.cover_open = True
    with pytest.raises(DeviceError, match="cover open"):
        printer.print_receipt(receipt())
    assert (printer.health.state, printer.health.reason) == ("degraded", "cover open")
    assert sim.jobs == []
    sim.cover_open = False
    printer.print_receipt(receipt())
    assert len(sim.wait_for_jobs(1)) == 1
    assert printer.health.state == "ok"


def test_paper_near_end_prints_but_warns(sim: SimPrinter, printer: EscposPrinter) -> None:
    sim.paper_near_end = True
    printer.print_receipt(receipt())
    assert len(sim.wait_for_jobs(1)) == 1
    assert (printer.health.state, printer.health.reason) == ("degraded", "paper near end")


def test_status_reports_what_the_printer_says(sim: SimPrinter, printer: EscposPrinter) -> None:
    assert printer.status() == PrinterStatus(True, False, False, False)
    sim.set_paper_out(True)
    assert printer.status() == PrinterStatus(False, True, True, False)
    sim.set_paper_out(False)
    sim.cover_open = True
    assert printer.status() == PrinterStatus(False, False, False, True)


def test_a_printer_vanishing_mid_receipt_is_offline_until_it_is_back(
    sim: SimPrinter, printer: EscposPrinter, bus: EventBus
) -> None:
    sim.vanish_after(300)  # the status query and the first lines get through
    with pytest.raises(DeviceError, match="connection") as raised:
        printer.print_receipt(receipt(1))
    assert isinstance(raised.value.__cause__, OSError)
    assert printer.health.state == "offline"
    assert sim.jobs == []
    [torn] = sim.torn
    assert torn.lines[0] == "Corner Shop" and torn.cuts == 0
    with pytest.raises(DeviceError, match="connection refused"):
        printer.print_receipt(receipt(2))
    assert printer.status().online is False
    sim.restore()
    third = receipt(3)
    printer.print_receipt(third)
    [job] = sim.wait_for_jobs(1)
    assert_is_the_receipt(job, third)  # nothing of the torn receipt runs into it
    assert printer.health.state == "ok"
    states = [state for state, _ in health_events(bus)]
    assert states[-2:] == ["offline", "ok"]


def test_connection_refused_from_the_start(bus: EventBus) -> None:
    with SimPrinter() as gone:
        pass  # a port nobody listens on any more
    with network(gone) as printer:
        printer.open(bus)
        with pytest.raises(DeviceError, match="connection refused"):
            printer.print_receipt(receipt())
        assert (printer.health.state, printer.health.reason) == ("offline", "connection refused")
        assert printer.status() == PrinterStatus(online=False)


def test_a_serial_printer_that_never_answers_is_offline(bus: EventBus) -> None:
    master, slave = os.openpty()  # a port whose printer is switched off
    try:
        table = EscposPrinterSettings(
            transport="serial", serial_port=os.ttyname(slave), timeout=0.2
        )
        with EscposPrinter("serial", table) as printer:
            printer.open(bus)
            assert printer.wait_ready(10.0)
            with pytest.raises(DeviceError, match="no answer"):
                printer.print_receipt(receipt())
            assert (printer.health.state, printer.health.reason) == ("offline", "no answer")
        status = b"\x10\x04\x01\x10\x04\x02\x10\x04\x04"
        assert os.read(master, 1024) == status * 2  # the check at open, the one before printing
    finally:
        os.close(master)
        os.close(slave)


def test_drawer_kick_on_pin_2_for_100_ms_exact_bytes(
    sim: SimPrinter, printer: EscposPrinter
) -> None:
    sim.set_paper_out(True)  # a cash sale must open the drawer, paper or not
    printer.kick_drawer(2, 100)
    assert sim.wait_for_kicks(1) == [(2, 100)]
    assert b"\x1b\x70\x00\x32\x32" in sim.received
    dummy = escpos_printers().Dummy(profile="TM-T88V")
    dummy.cashdraw(2)
    assert dummy.output in sim.received  # the very bytes python-escpos sends for pin 2
    printer.kick_drawer(5, 50)
    assert sim.wait_for_kicks(2)[1] == (5, 50)
    assert b"\x1b\x70\x01\x19\x19" in sim.received
    assert sim.jobs == []
    with pytest.raises(DeviceError, match="pins 2 and 5"):
        printer.kick_drawer(3, 100)


def test_the_test_page_prints(sim: SimPrinter, printer: EscposPrinter) -> None:
    printer.print_test_page()
    [job] = sim.wait_for_jobs(1)
    assert job.lines[:3] == ["TEST PAGE", "receipts", f"127.0.0.1:{sim.port}"]
    assert "42 columns" in job.lines
    assert job.cuts == 1


def test_concurrent_prints_never_interleave(sim: SimPrinter, printer: EscposPrinter) -> None:
    errors: list[BaseException] = []
    receipts = {n: receipt(n) for n in range(1, 5)}

    def run(sequence: int) -> None:
        try:
            printer.print_receipt(receipts[sequence])
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    jobs = sim.wait_for_jobs(4)
    assert sorted(job.barcodes[0] for job in jobs) == [f"K01-00000{n}" for n in range(1, 5)]
    for job in jobs:
        assert_is_the_receipt(job, receipts[int(job.barcodes[0][-1])])


def test_a_closed_printer_refuses_and_close_is_safe_twice(
    sim: SimPrinter, printer: EscposPrinter
) -> None:
    printer.close()
    printer.close()
    with pytest.raises(DeviceError, match="not open"):
        printer.print_receipt(receipt())
    assert printer.health.reason == "closed"


def test_status_bytes_follow_the_esc_pos_reference() -> None:
    # DLE EOT 1, 2, 4 of a printer out of paper: offline, printing stopped, both sensors.
    flags = {"paper_out": True, "paper_near_end": False, "cover_open": False}
    answers = [status_byte(n, **flags) for n in (1, 2, 4)]
    assert answers == [0x1A, 0x32, 0x7E]
    assert decode_status(*answers) == PrinterStatus(False, True, True, False)
    assert decode_status(0x12, 0x16, 0x12) == PrinterStatus(True, False, False, True)
    assert decode_status(0xFF, 0x00, 0x12) == PrinterStatus(True, False, None, None)


def test_using_escpos_leaves_the_root_logger_and_temp_folder_alone(tmp_path: Path) -> None:
    script = (
        "import logging\n"
        "from tests.drivers.test_escpos_printer import receipt\n"
        "from appliance.core.events import EventBus\n"
        "from appliance.device_settings import EscposPrinterSettings\n"
        "from appliance.drivers.escpos_printer import EscposPrinter\n"
        "from appliance.drivers.sim.printer import SimPrinter\n"
        "with SimPrinter() as sim:\n"
        "    table = EscposPrinterSettings(host=sim.host, port=sim.port, timeout=2.0)\n"
        "    with EscposPrinter('p', table) as printer:\n"
        "        printer.open(EventBus())\n"
        "        printer.print_receipt(receipt())\n"
        "    print(len(sim.wait_for_jobs(1)), logging.getLogger().handlers)\n"
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # Without the profile cache folder an earlier test's assembly may have put in this
    # worker's environment (use_profile_cache): with it set, python-escpos still makes its
    # mkdtemp() (an eagerly evaluated default) and only the cache-less path cleans it up.
    outside_env = {k: v for k, v in os.environ.items() if k != escpos_cache.ENV}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=scratch,
        env={**outside_env, "TMPDIR": str(scratch), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 []"
    # Nothing left behind once the process is gone. (Listed from inside, a library's
    # short-lived temporary file was once caught in passing, under load.)
    left = {
        p.name: sorted(os.listdir(p)) if p.is_dir() else p.read_bytes()[:80]
        for p in scratch.iterdir()
    }
    assert left == {}, done.stderr[-2000:]


BROKEN_PROFILE_SCRIPT = """
import platform, sys
from pathlib import Path
from tests.drivers.test_escpos_printer import receipt
from appliance.drivers.escpos_cache import use_profile_cache
cache = Path(sys.argv[1])
broken = cache / f"{platform.python_version()}.capabilities.pickle"
if sys.argv[2] == "before":
    use_profile_cache(cache)  # at start: the broken file is found before escpos reads it
from appliance.core.events import EventBus
from appliance.device_settings import EscposPrinterSettings
from appliance.drivers.escpos_printer import EscposPrinter
from appliance.drivers.sim.printer import SimPrinter
if sys.argv[2] == "during":
    import os
    os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(cache)  # found only by the import
with SimPrinter() as sim:
    table = EscposPrinterSettings(host=sim.host, port=sim.port, timeout=2.0)
    with EscposPrinter("p", table) as printer:
        printer.open(EventBus())
        printer.print_receipt(receipt())
    print(len(sim.wait_for_jobs(1)), broken.read_bytes()[-1:] == b".")
"""


@pytest.mark.parametrize("found", ["before", "during"])
def test_a_profile_cache_cut_short_is_remade_and_printing_works(tmp_path: Path, found: str) -> None:
    """An fsck or a power cut left python-escpos's profile file empty: escpos would fail
    every import (EOFError) and no receipt would print until someone deleted it."""
    cache = tmp_path / "escpos"
    cache.mkdir()
    (cache / f"{platform.python_version()}.capabilities.pickle").write_bytes(b"")
    script = BROKEN_PROFILE_SCRIPT
    outside_env = {k: v for k, v in os.environ.items() if k != escpos_cache.ENV}
    done = subprocess.run(
        [sys.executable, "-c", script, str(cache), found],
        env={**outside_env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["1", "True"], done.stderr[-3000:]
    assert "was broken (0 bytes): removed" in done.stderr


def test_an_empty_profile_cache_breaks_escpos_itself(tmp_path: Path) -> None:
    """Why the check exists: python-escpos trusts whatever file it finds."""
    cache = tmp_path / "escpos"
    cache.mkdir()
    (cache / f"{platform.python_version()}.capabilities.pickle").write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-c", "import escpos.printer"],
        env={**os.environ, escpos_cache.ENV: str(cache)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0 and "EOFError" in done.stderr
