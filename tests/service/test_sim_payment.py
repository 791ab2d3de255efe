"""`appliance sim pay`: the simulated till pays through the real checkout and terminal port,
over the real control socket, while the main loop keeps running."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from appliance.drivers.sim.control import control_socket_path, send
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.settings import simulated_settings

COFFEE = "4006381333931"
CHOCOLATE = "7613289024044"  # a different code: the scanner debounces repeats


def _client(sock: Path, answers: list[dict[str, Any]]) -> None:
    def pay_once_scanned(method: str) -> None:
        deadline = time.monotonic() + 10
        while True:  # the scan reaches the cart through the pty and the main loop
            answer = send(sock, {"cmd": "pay", "method": method}, timeout=30)
            if answer.get("ok") or "empty" not in str(answer.get("error")):
                answers.append(answer)
                return
            assert time.monotonic() < deadline
            time.sleep(0.05)

    answers.append(send(sock, {"cmd": "pay", "method": "cash"}, timeout=30))  # nothing yet
    send(sock, {"cmd": "terminal", "outcome": "approve"})
    send(sock, {"cmd": "scan", "code": COFFEE})
    pay_once_scanned("card")
    send(sock, {"cmd": "terminal", "outcome": "decline"})
    send(sock, {"cmd": "scan", "code": CHOCOLATE})
    pay_once_scanned("card")
    # The declined cart is still there: cash pays for it, once.
    answers.append(send(sock, {"cmd": "pay", "method": "cash"}, timeout=30))


def test_cash_and_card_payments_commit_sales_and_a_decline_keeps_the_cart(
    tmp_path: Path,
) -> None:
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    seed_demo_catalog(app.catalog, settings.store)
    app.lookup.refresh()
    app.open_devices(simulate=True)
    answers: list[dict[str, Any]] = []
    client = threading.Thread(
        target=_client, args=(control_socket_path(settings.database.path), answers)
    )
    try:
        client.start()
        deadline = time.monotonic() + 60
        while client.is_alive():  # the main loop, as `appliance run` has it
            assert time.monotonic() < deadline, answers
            app.bus.wait(0.05)
            app.bus.drain()
        pays = answers
        assert len(pays) == 4, pays
        assert "empty" in pays[0]["error"]
        assert pays[1]["receipt"] == "SIM-000001"
        assert "declined" in pays[2]["error"]
        assert pays[3]["receipt"] == "SIM-000002"
        card, cash = app.ledger.since()
        assert [t.kind for t in card.tenders] == ["card"]
        assert card.tenders[0].card_mask.endswith("1234")
        assert [t.kind for t in cash.tenders] == ["cash"]
        assert len(cash.lines) == 1, "the declined attempt's cart was paid in cash, once"
    finally:
        client.join(timeout=30)
        app.close_devices()
        app.close()
