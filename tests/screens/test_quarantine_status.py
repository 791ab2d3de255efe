"""The till's status screen names the sales the hub refused: a red line, then each one."""

from __future__ import annotations

from appliance.core.tender import Tender
from appliance.screens.i18n import Translator
from appliance.screens.i18n import tr as shared_tr
from appliance.screens.staff.status_presenter import QUARANTINE_SHOWN, quarantine_rows
from appliance.store.outbox import QuarantinedSale, Rejection
from tests.screens.harness import Kiosk
from tests.screens.test_staff_flows import COFFEE, log_in_cashier, scan_into_till

# Its own translators: the app's shared `tr` may be in another language after another test.
tr = Translator()


def held(seq: int, code: str = "invalid", reason: str = "no lines") -> QuarantinedSale:
    """A quarantined sale as the outbox lists it."""
    return QuarantinedSale(seq, f"sale-{seq}", f"R-{seq:06d}", code, reason, "2026-12-06T12:00")


def test_nothing_refused_adds_no_line() -> None:
    assert quarantine_rows(tr, 0, []) == []


def test_refused_sales_are_a_red_line_with_what_to_do_then_each_sale() -> None:
    rows = quarantine_rows(tr, 2, [held(4), held(9, "conflict", "seq 9 holds sale x")])
    assert rows == [
        {
            "label": "Refused by the hub",
            "value": "2 sales kept on this till, not counted at the hub: tell the fleet admin",
            "state": "offline",
        },
        {"label": "Receipt R-000004", "value": "Unreadable: no lines", "state": "offline"},
        {"label": "Receipt R-000009", "value": "Conflict: seq 9 holds sale x", "state": "offline"},
    ]


def test_only_the_first_few_are_listed_and_the_count_says_how_many() -> None:
    rows = quarantine_rows(tr, 40, [held(seq) for seq in range(1, 41)])
    assert rows[0]["value"].startswith("40 sales kept")
    assert len(rows) == 1 + QUARANTINE_SHOWN


def test_a_sale_whose_document_is_gone_is_named_by_its_id() -> None:
    sale = QuarantinedSale(3, "sale-3", "", "conflict", "why", "2026-12-06T12:00")
    assert quarantine_rows(tr, 1, [sale])[1]["label"] == "Receipt sale-3"


def test_in_german() -> None:
    german = Translator()
    german.switch("de", "de_DE")
    rows = quarantine_rows(german, 1, [held(4)])
    assert rows[0]["label"] == "Vom Hub abgelehnt"
    assert rows[0]["value"].startswith("1 Verkauf auf dieser Kasse zurückgehalten")
    assert rows[1] == {"label": "Beleg R-000004", "value": "Unlesbar: no lines", "state": "offline"}


def test_the_status_screen_shows_a_sale_the_hub_refused(staff_till: Kiosk) -> None:
    member = log_in_cashier(staff_till)
    scan_into_till(staff_till, COFFEE)
    sale = staff_till.services.app.checkout.pay([Tender.cash(1000, 499)], staff=member.staff_id)
    outbox = staff_till.services.app.stores.outbox
    # What the sales uploader does with an acknowledgement that names this sale rejected.
    outbox.acknowledge(sale.sequence, [Rejection(sale.sequence, sale.id, "invalid", "no lines")])
    staff_till.app.session.go("till")
    staff_till.wait_for_screen("till")

    staff_till.tap_text(shared_tr._("Status"))
    staff_till.wait_for_screen("status")
    staff_till.find_text(shared_tr._("Refused by the hub"))
    staff_till.find_text(shared_tr._("Receipt {receipt}").format(receipt=sale.receipt_number))
    staff_till.find_text(shared_tr.n_("{count} document", "{count} documents", 0).format(count=0))
