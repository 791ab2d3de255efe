"""A pop-up day on the real staff till, offscreen, linked to a real broker and hub: from the
float to the Z, which agrees to the cent on paper, in the store and at the hub."""

from __future__ import annotations

import time
from pathlib import Path

from appliance.core.receipt import TextLine
from appliance.core.report_receipt import report_lines, report_number
from appliance.core.reports import TillReport
from appliance.core.sale import Sale
from appliance.drivers.sim.escpos_parser import PrintedJob
from appliance.screens.i18n import tr
from appliance.screens.staff.dialogs import NoSaleDialog
from appliance.settings import Settings, parse_settings
from appliance.store.drawer_log import DrawerLog
from appliance.store.journal import FiscalJournal
from hub.cli_reports import report_body
from hub.db import open_hub_database
from tests.e2e.conftest import Processes
from tests.e2e.test_fleet import hub_and_broker
from tests.screens.harness import Kiosk, open_kiosk
from tests.screens.shift_steps import (
    close_shift,
    move_cash,
    open_shift,
    supervisor_approves,
    x_report,
)
from tests.screens.test_card_flows import open_refund, refund_to_card, sell_by_card_at_the_till
from tests.screens.test_staff_flows import (
    current_screen,
    dialog,
    euros,
    log_in_cashier,
    scan_into_till,
    sim_drawer,
)
from tests.screens.test_staff_void_reprint import sale_row

COFFEE = "4006381333931"
WATER = "5000112548129"
DEVICE = "popup-till-1"
FLOAT = {2000: 5, 1000: 2, 200: 5}  # 130.00 EUR


def _settings(data: Path, port: int) -> Settings:
    return parse_settings(
        {
            "device": {"id": DEVICE, "receipt_prefix": "POP"},
            "database": {"path": str(data / "appliance.db")},
            "store": {"name": "Pop-up Stand", "currency": "EUR", "locale": "de_DE"},
            "screen": {"mode": "staff", "width": 1280, "height": 800},
            "hub": {"host": "127.0.0.1", "port": port, "telemetry_seconds": 5},
        },
        source="test",
    )


def _shut_after_kick(till: Kiosk, kicks_before: int) -> None:
    """The cashier pushes the drawer shut once it has sprung open for the kick."""
    drawer = sim_drawer(till)
    devices = till.services.app.devices
    sensed = devices.drawer if devices is not None else None
    assert sensed is not None
    till.wait_for(lambda: drawer.kicks > kicks_before, what="the drawer kicked")
    till.wait_for(lambda: sensed.is_open, what="the drawer open")
    drawer.close()
    till.wait_for(lambda: not sensed.is_open, what="the drawer shut")


def _cash_sale_at_the_till(till: Kiosk, *codes: str, note: int) -> None:
    """Scan, take cash by tapping a note, complete: the drawer opens for the sale."""
    kicks = sim_drawer(till).kicks
    scan_into_till(till, *codes)
    till.tap_text(tr._("Cash"))
    till.wait_for_screen("cash")
    till.tap_text(euros(note))
    till.tap_text(tr._("Complete sale"))
    till.wait_for_screen("receipt")
    _shut_after_kick(till, kicks)
    till.app.session.go("till")
    till.wait_for_screen("till")


def _void_last_sale(till: Kiosk) -> None:
    """Void the newest sale of the shift from the void screen, a supervisor approving."""
    till.tap_text(tr._("Void a sale"))
    till.wait_for_screen("void")
    newest = till.app.void.rows[0]["sale_id"]
    kicks = sim_drawer(till).kicks
    till.tap(sale_row(till, newest))
    till.tap(current_screen(till).ids.void_sale)
    supervisor_approves(till)
    till.wait_for_screen("receipt")
    _shut_after_kick(till, kicks)  # the cash goes back to the customer
    till.app.session.go("till")
    till.wait_for_screen("till")


def _printed_pairs(job: PrintedJob, pairs: list[TextLine]) -> list[str]:
    """The report's text-and-value lines missing from the paper (each on one printed line)."""
    missing = []
    for pair in pairs:
        value = pair.value.replace("\xa0", " ")  # the printer's code page has no no-break space
        if not any(x.startswith(pair.text) and x.endswith(value) for x in job.lines):
            missing.append(f"{pair.text} … {pair.value}")
    return missing


def _hub_z(hub_db: str, number: int, timeout: float = 60.0) -> dict[str, object]:
    """The hub's copy of a Z, once its journal entry has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        db = open_hub_database(hub_db, create=False)
        try:
            body = report_body(db, DEVICE, number, "z")
        finally:
            db.close()
        if body is not None:
            return body
        assert time.monotonic() < deadline, "the Z did not reach the hub"
        time.sleep(0.3)


def _sell_refund_and_void(till: Kiosk) -> Sale:
    """Card, a refund to the card, cash with change, and a cash sale voided; the refund."""
    card_sale = sell_by_card_at_the_till(till, COFFEE)  # first: it checks it is the only one
    _cash_sale_at_the_till(till, COFFEE, WATER, note=2000)
    open_refund(till, card_sale)
    till.tap_text(tr._("Everything not yet refunded"))
    refund = refund_to_card(till)
    till.app.session.go("till")
    till.wait_for_screen("till")
    _cash_sale_at_the_till(till, WATER, note=500)
    _void_last_sale(till)
    return refund


def _drawer_and_cash_moves(till: Kiosk) -> None:
    """A no-sale by the cashier, the drawer pulled open by hand, then cash out and in."""
    drawer = sim_drawer(till)
    log = DrawerLog(till.services.app.db)
    kicks = drawer.kicks
    till.tap_text(tr._("No sale"))
    dialog(NoSaleDialog)
    till.tap_text(tr._("Change for the float"))
    _shut_after_kick(till, kicks)
    till.wait_for(lambda: any(o.opening.reason == "no_sale" for o in log.since()), what="no-sale")
    drawer.open()
    till.wait_for(lambda: any(o.unexplained for o in log.since()), what="opened by hand")
    drawer.close()
    move_cash(till, "out", 2000, tr._("Bank deposit"))
    move_cash(till, "in", 500, "TIPS")


def test_a_pop_up_day_from_float_to_z_agrees_on_paper_in_the_store_and_at_the_hub(
    tmp_path: Path,
) -> None:
    processes = Processes()
    with (
        hub_and_broker(tmp_path, processes) as (port, hub_db),
        open_kiosk(tmp_path, settings=_settings(tmp_path / "state", port)) as till,
    ):
        app = till.services.app
        printer = till.lab.printer
        assert printer is not None
        log_in_cashier(till, with_shift=False)
        shift = open_shift(till, FLOAT)
        assert shift.float_total == 13000

        refund = _sell_refund_and_void(till)
        _drawer_and_cash_moves(till)

        x = x_report(till)
        till.tap_text(tr._("Back to the till"))
        till.wait_for_screen("till")
        expected = 13000 + 628 + 129 - 129 - 2000 + 500
        assert x.expected_cash == expected

        # Counted 100.00 against 121.28 expected: over the threshold, a supervisor signs.
        z = close_shift(till, {10000: 1}, sign_off=True)
        stored = app.stores.reports.get_z(1)
        assert stored == z
        assert (z.counted_cash, z.expected_cash, z.difference) == (10000, expected, -2128)
        assert z.signed_off_by
        assert (z.sales_count, z.refunds_count, z.voids_count) == (3, 1, 1)
        assert z.refunds_total == -refund.total == 499 and z.voids_total == 129
        assert z.tenders.get("cash") == 628 and z.tenders.get("card", 0) == 0
        assert (z.cash_in, z.cash_out) == (500, 2000)
        # No-sale, by hand, cash out and cash in; only the one by hand is unexplained.
        assert z.drawer_without_sale == 4 and z.drawer_unexplained == 1
        assert z.net == z.tenders_total == sum(t.gross for t in z.taxes)

        # On paper: the Z's own number as its barcode, every line to the cent.
        till.wait_for(
            lambda: any(j.barcodes == [report_number(z)] for j in printer.jobs), what="Z printed"
        )
        papers = [j for j in printer.jobs if j.barcodes == [report_number(z)]]
        assert len(papers) == 1
        paper = papers[0]
        named = report_lines(z, "de_DE", till.app.shift.name_of)
        pairs = [p for p in named if p.text and p.value]
        assert _printed_pairs(paper, pairs) == [], "\n".join(map(repr, paper.lines))
        closed_by = next(p.value for p in named if p.text == "Closed by")
        assert closed_by.endswith(f" ({z.staff})") and not closed_by.startswith(z.staff)

        # At the hub: the same Z, carried by the fiscal journal.
        assert TillReport.from_dict(_hub_z(hub_db, 1)) == stored
        assert FiscalJournal(app.db).verify().ok
