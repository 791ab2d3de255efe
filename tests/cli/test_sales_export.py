"""`appliance sales export`: one CSV row per document, in sequence order, major units."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance.core.money import Money
from appliance.core.sale import Sale, draft_refund
from appliance.core.tender import Tender
from appliance.settings import Settings
from tests.cli.conftest import DEVICE_ID, Cli, FixedClock, make_newer_schema, opened

HEADER = [
    "receipt_number",
    "sequence",
    "document_id",
    "kind",
    "created_at",
    "currency",
    "total",
    "tax",
    "discount",
    "tenders",
    "change",
    "lines",
    "refers_to",
    "staff",
]
FIRST_DAY = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ledger:
    """The three documents committed for the tests, in sequence order."""

    cash_sale: Sale
    split_sale: Sale
    refund: Sale


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    """A cash sale on day 1, a cash + card sale on day 2 and a refund of the first on day 3."""
    clock = FixedClock(FIRST_DAY)
    with opened(settings, clock) as app:
        app.checkout.scan("COFFEE-250")
        cash_sale = app.checkout.pay([Tender("cash", 499, tendered=1000)], staff="ben")

        clock.advance(timedelta(days=1, hours=-1))  # 2024-03-02 09:00 UTC
        app.checkout.scan("COFFEE-250")
        app.checkout.scan("WATER-05")
        split_sale = app.checkout.pay(
            [Tender("cash", 300), Tender("card", 328, card_mask="**** 4242")], staff="ben"
        )

        clock.advance(timedelta(days=1))  # 2024-03-03 09:00 UTC
        draft = draft_refund(
            cash_sale,
            {1: 1},
            [Tender("cash", -499)],
            already_refunded=app.ledger.refunded_quantities(cash_sale.id),
            device_id=DEVICE_ID,
            now=clock.now(),
            staff="anna",
            reason="damaged",
        )
        refund = app.ledger.commit(draft)
    return Ledger(cash_sale, split_sale, refund)


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _major(minor: int) -> str:
    return str(Money(minor, "EUR").decimal)


def test_one_row_per_document_in_sequence_order(appliance: Cli, ledger: Ledger) -> None:
    """Header, then sale, split sale, refund, with amounts in major units."""
    result = appliance("sales", "export")

    assert result.exit_code == 0, result.output
    header, *rows = _rows(result.stdout)
    assert header == HEADER
    records = [dict(zip(header, row, strict=True)) for row in rows]
    assert [r["sequence"] for r in records] == ["1", "2", "3"]
    assert [r["receipt_number"] for r in records] == ["T7-000001", "T7-000002", "T7-000003"]
    assert [r["kind"] for r in records] == ["sale", "sale", "refund"]
    assert [r["total"] for r in records] == ["4.99", "6.28", "-4.99"]
    assert [r["tenders"] for r in records] == ["cash:4.99", "cash:3.00;card:3.28", "cash:-4.99"]
    assert [r["change"] for r in records] == ["5.01", "0.00", "0.00"]
    assert [r["lines"] for r in records] == ["1", "2", "1"]
    assert [r["staff"] for r in records] == ["ben", "ben", "anna"]
    assert {r["currency"] for r in records} == {"EUR"}
    documents = (ledger.cash_sale, ledger.split_sale, ledger.refund)
    assert [r["document_id"] for r in records] == [d.id for d in documents]
    assert [r["tax"] for r in records] == [_major(d.tax_total) for d in documents]
    assert [r["refers_to"] for r in records] == ["", "", ledger.cash_sale.id]
    assert [datetime.fromisoformat(r["created_at"]) for r in records] == [
        FIRST_DAY,
        FIRST_DAY + timedelta(hours=23),
        FIRST_DAY + timedelta(days=1, hours=23),
    ]


def test_since_in_the_future_gives_only_the_header(appliance: Cli, ledger: Ledger) -> None:
    """Nothing after --since: just the header line."""
    result = appliance("sales", "export", "--since", "2999-01-01")

    assert result.exit_code == 0, result.output
    assert _rows(result.stdout) == [HEADER]


@pytest.mark.parametrize(
    ("since", "sequences"),
    [
        ("2024-03-02", ["2", "3"]),  # a date: from its midnight, UTC
        ("2024-03-02T09:00:00", ["2", "3"]),  # inclusive; no zone means UTC
        ("2024-03-02T09:00:01", ["3"]),
        ("2024-03-02T10:00:00+02:00", ["2", "3"]),  # 08:00 UTC
        ("2024-03-02T10:00:00+00:00", ["3"]),
        ("2024-01-01T00:00:00Z", ["1", "2", "3"]),
    ],
)
def test_since_selects_from_a_moment_on(
    appliance: Cli, ledger: Ledger, since: str, sequences: list[str]
) -> None:
    """--since takes an ISO date or time; a zone is honoured, none means UTC."""
    result = appliance("sales", "export", "--since", since)

    assert result.exit_code == 0, result.output
    assert [row[1] for row in _rows(result.stdout)[1:]] == sequences


def test_since_not_a_date_is_a_usage_error(appliance: Cli, ledger: Ledger) -> None:
    """A bad --since: exit 2 and a message naming the option and the value."""
    result = appliance("sales", "export", "--since", "notadate")

    assert result.exit_code == 2
    assert "--since" in result.stderr
    assert "notadate" in result.stderr
    assert result.stdout == ""


def test_output_file(appliance: Cli, ledger: Ledger, tmp_path: Path) -> None:
    """-o writes the CSV to a file and nothing to stdout."""
    target = tmp_path / "exports" / "sales.csv"
    target.parent.mkdir()

    result = appliance("sales", "export", "-o", str(target))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    rows = _rows(target.read_text(encoding="utf-8"))
    assert rows[0] == HEADER
    assert [row[1] for row in rows[1:]] == ["1", "2", "3"]
    assert rows == _rows(appliance("sales", "export").stdout)


def test_no_database_is_an_error_and_creates_none(
    appliance: Cli, db_path: Path, tmp_path: Path
) -> None:
    """Exporting before anything was stored: exit 1, no empty database, no output file."""
    target = tmp_path / "sales.csv"

    result = appliance("sales", "export", "-o", str(target))

    assert result.exit_code == 1
    assert "no database" in result.stderr
    assert "Traceback" not in result.output
    assert not db_path.exists()
    assert not target.exists()


def test_newer_schema_is_refused(appliance: Cli, db_path: Path) -> None:
    """Documents written by newer software are not exported half-understood."""
    make_newer_schema(db_path)

    result = appliance("sales", "export")

    assert result.exit_code == 1
    assert "schema version 99" in result.stderr
