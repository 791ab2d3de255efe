"""The headless till weighs a scanned item sold by weight on a thread of its own.

`appliance run --headless --simulate` in-process: the pty scanner and the real SerialScale
asking SimScale over its pty; scans and weights go through the control socket.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.core.barcode import gtin_check_digit, normalize_gtin
from appliance.core.catalog import Product
from appliance.core.money import Money
from appliance.drivers.sim.control import control_socket_path, send
from appliance.drivers.sim.lab import SimLab
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.settings import simulated_settings

TOMATOES = "426012345099" + gtin_check_digit("426012345099")
POTATOES = "426012345098" + gtin_check_digit("426012345098")
PER_KG = 250  # 2.50 EUR per kg
WAIT_SECONDS = 10.0


def wait_until(done: Callable[[], object], what: str) -> None:
    """Poll `done()`; fail after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


class Till:
    """A simulated headless appliance, its main loop on a thread, selling tomatoes by weight."""

    def __init__(self, app: Appliance, sock: Path) -> None:
        self.app = app
        self.sock = sock

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """One control request; it must be answered ok."""
        answer = send(self.sock, request)
        assert answer["ok"], answer
        return answer

    def lines(self) -> int:
        """Lines in the cart now."""
        return len(self.app.checkout.cart.lines)


def _main_loop(app: Appliance, stop: threading.Event) -> None:
    while not stop.is_set():
        app.bus.wait(0.05)
        app.bus.drain()


def open_till(tmp_path: Path) -> Iterator[Till]:
    """Start the appliance with the demo store and loose tomatoes and potatoes sold per kg."""
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    seed_demo_catalog(app.catalog, settings.store)
    tomatoes = Product(
        sku="TOMATO-LOOSE",
        name="Loose tomatoes",
        price=Money(PER_KG, settings.store.currency),
        tax_class="reduced",
        sold_by="kg",
        barcodes=(normalize_gtin(TOMATOES),),
    )
    potatoes = Product(
        sku="POTATO-LOOSE",
        name="Loose potatoes",
        price=Money(129, settings.store.currency),
        tax_class="reduced",
        sold_by="kg",
        barcodes=(normalize_gtin(POTATOES),),
    )
    # Stock of goods sold by weight is kept in grams.
    app.catalog.upsert([(tomatoes, 20_000), (potatoes, 20_000)])
    app.lookup.refresh()
    devices = app.open_devices(simulate=True)
    stop = threading.Event()
    loop = threading.Thread(target=_main_loop, args=(app, stop), name="test-main-loop")
    loop.start()
    try:
        wait_until(
            lambda: all(h.state == "ok" for h in devices.health() if h.device != "nfc"),
            "the simulated devices",
        )
        yield Till(app, control_socket_path(settings.database.path))
    finally:
        stop.set()
        loop.join()
        app.close_devices()
        app.bus.drain()
        app.close()


@pytest.fixture
def till(tmp_path: Path) -> Iterator[Till]:
    """The till with the simulated scale."""
    yield from open_till(tmp_path)


@pytest.fixture
def till_without_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Till]:
    """The till whose lab has no scale (its simulator never started)."""

    def no_scale(_lab: SimLab) -> None:
        raise OSError("no scale on this bench")

    monkeypatch.setattr(SimLab, "_start_scale", no_scale)
    yield from open_till(tmp_path)


def test_a_scanned_item_sold_by_weight_becomes_a_weight_line(
    till: Till, caplog: pytest.LogCaptureFixture
) -> None:
    """`sim weigh 1234` then the scan: 1234 g at 2.50/kg, 308.5 cents rounded up to 309."""
    caplog.set_level(logging.INFO)
    till.ask({"cmd": "weigh", "grams": 1234})

    till.ask({"cmd": "scan", "code": TOMATOES})

    wait_until(lambda: till.lines() == 1, "the weighed line")
    [line] = till.app.checkout.cart.lines
    assert (line.sku, line.measure, line.quantity, line.unit_price) == (
        "TOMATO-LOOSE",
        "weight",
        1234,
        PER_KG,
    )
    assert line.amount == 309
    weighed = [r for r in caplog.records if r.getMessage().startswith("weighed")]
    assert [r.threadName for r in weighed] == ["test-main-loop"]  # added on the main loop
    assert "Loose tomatoes, 1234 g" in weighed[0].getMessage()


def test_a_second_item_scanned_while_weighing_is_refused(
    till: Till, caplog: pytest.LogCaptureFixture
) -> None:
    """One platter: while a weight settles, another weighed scan would read it too."""
    caplog.set_level(logging.INFO)  # whatever level an earlier test left
    assert till.app.lab is not None and till.app.lab.scale is not None
    till.ask({"cmd": "weigh", "grams": 700})
    till.app.lab.scale.settle_after(5)  # about a second of motion, then 700 g

    till.ask({"cmd": "scan", "code": TOMATOES})
    wait_until(lambda: "weigh" in {t.name for t in threading.enumerate()}, "the weighing")
    till.ask({"cmd": "scan", "code": POTATOES})

    wait_until(lambda: till.lines() == 1, "the weighed line")
    assert [(ln.sku, ln.quantity) for ln in till.app.checkout.cart.lines] == [("TOMATO-LOOSE", 700)]
    assert any("refused: still weighing" in r.getMessage() for r in caplog.records)
    time.sleep(0.5)  # nothing else arrives
    assert till.lines() == 1


def test_a_weight_that_never_settles_adds_nothing(
    till: Till, caplog: pytest.LogCaptureFixture
) -> None:
    """Motion past the bounded wait: the refusal is logged, the cart stays empty."""
    caplog.set_level(logging.INFO)  # whatever level an earlier test left
    till.ask({"cmd": "weigh", "grams": 500})
    till.ask({"cmd": "scale", "action": "motion"})

    till.ask({"cmd": "scan", "code": TOMATOES})

    wait_until(lambda: any("not weighed" in r.getMessage() for r in caplog.records), "the refusal")
    refusal = next(r.getMessage() for r in caplog.records if "not weighed" in r.getMessage())
    assert "did not settle" in refusal
    assert till.lines() == 0


def test_without_a_scale_the_item_is_refused_clearly(
    till_without_scale: Till, caplog: pytest.LogCaptureFixture
) -> None:
    """No scale configured or simulated: the scan is refused saying so; nothing added."""
    caplog.set_level(logging.INFO)  # whatever level an earlier test left
    till = till_without_scale
    assert till.app.lab is not None and till.app.lab.scale is None

    till.ask({"cmd": "scan", "code": TOMATOES})

    wait_until(lambda: any("not weighed" in r.getMessage() for r in caplog.records), "the refusal")
    refusal = next(r.getMessage() for r in caplog.records if "not weighed" in r.getMessage())
    assert "this checkout has no scale: ask a member of staff" in refusal
    assert till.lines() == 0
    till.ask({"cmd": "scan", "code": "4006381333931"})  # the till still sells the rest
    wait_until(lambda: till.lines() == 1, "the coffee")


def test_cash_is_refused_while_an_item_is_weighed(till: Till) -> None:
    """The weighed line would come after the total was taken: pay waits for the weight."""
    assert till.app.lab is not None and till.app.lab.scale is not None
    till.ask({"cmd": "scan", "code": "4006381333931"})
    wait_until(lambda: till.lines() == 1, "the coffee")
    till.ask({"cmd": "weigh", "grams": 700})
    till.app.lab.scale.settle_after(8)  # about 1.6 s of motion, then 700 g
    till.ask({"cmd": "scan", "code": TOMATOES})
    wait_until(lambda: "weigh" in {t.name for t in threading.enumerate()}, "the weighing")

    answer = send(till.sock, {"cmd": "pay", "method": "cash"})

    assert not answer["ok"]
    assert "still being weighed" in str(answer)
    wait_until(lambda: till.lines() == 2, "the weighed line")
    paid = till.ask({"cmd": "pay", "method": "cash"})
    assert paid["total"] == 499 + 175  # the coffee and 700 g at 2.50/kg
