"""`appliance-hub reports list|show`, `drawer` and the journal in `fleet show`: what the
devices' journals brought to the hub, per device and store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.db import open_hub_database
from hub.journal_ingest import JournalIngest
from hub.migrations import migrate
from hub.stores import assign_device
from tests.hub.journal_entries import batch, chain, day, z_report

WIDE = {"COLUMNS": "200"}
# Drawer openings as a device journals them: a sale's, a no-sale by name, one by hand.
OPENINGS = [
    ("drawer", {"reason": "sale", "staff": "", "opened_at": "2030-03-05T09:00:00+00:00"}),
    ("drawer", {"reason": "no_sale", "staff": "ana", "opened_at": "2030-03-05T09:30:00Z"}),
    (
        "drawer",
        {"reason": "by_hand", "unexplained": True, "opened_at": "2030-03-05T10:00:00+00:00"},
    ),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A hub with two days of kiosk-1 (store berlin), one of kiosk-2 (none) and an X."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    db = open_hub_database(url)
    migrate(db)
    assign_device(db, "kiosk-1", "berlin")
    ingest = JournalIngest(db)
    ingest.ingest("kiosk-1", batch("kiosk-1", chain(day(1) + day(2))))
    x = (
        "x_report",
        {**z_report(1, device="kiosk-2", sales=990), "kind": "x", "counted_cash": None},
    )
    ingest.ingest("kiosk-2", batch("kiosk-2", chain([*day(1), x])))
    db.close()
    return url


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env=WIDE)
    assert result.exit_code == 0, result.output
    return result.output


def test_reports_list_filters_by_store_device_and_kind(hub_url: str) -> None:
    every = json.loads(run("reports", "list", "--json", "--db", hub_url))
    assert [(r["device"], r["kind"], r["number"], r["store"]) for r in every] == [
        ("kiosk-1", "z", 1, "berlin"),
        ("kiosk-1", "z", 2, "berlin"),
        ("kiosk-2", "z", 1, None),
        ("kiosk-2", "x", 1, None),
    ]
    berlin = json.loads(run("reports", "list", "--store", "berlin", "--json", "--db", hub_url))
    assert {r["device"] for r in berlin} == {"kiosk-1"}
    xs = json.loads(
        run("reports", "list", "--device", "kiosk-2", "--kind", "x", "--json", "--db", hub_url)
    )
    assert [(r["number"], r["sales_gross"], r["counted_cash"]) for r in xs] == [(1, 990, None)]
    table = run("reports", "list", "--kind", "z", "--db", hub_url)
    assert "Z 2" in table and "123.45" in table and "-0.10" in table
    assert "3 report(s)" in table


def test_reports_show_prints_every_figure_and_json_exactly_as_sent(hub_url: str) -> None:
    text = run("reports", "show", "kiosk-1", "2", "--db", hub_url)
    lines = {" ".join(line.split()) for line in text.splitlines()}
    assert {"number 2", "sales gross 123.45", "counted cash 119.90", "difference -0.10"} <= lines
    assert "grand total 246.90" in lines
    body = json.loads(run("reports", "show", "kiosk-1", "2", "--json", "--db", hub_url))
    assert body == z_report(2)


def test_reports_show_names_a_report_the_hub_does_not_hold(hub_url: str) -> None:
    result = CliRunner().invoke(cli, ["reports", "show", "kiosk-1", "9", "--db", hub_url])
    assert result.exit_code == 1
    assert "no Z report 9 of 'kiosk-1' at this hub" in result.output


def test_fleet_show_lists_drawer_openings_without_a_sale_and_the_chain(hub_url: str) -> None:
    db = open_hub_database(hub_url)
    JournalIngest(db).ingest("kiosk-3", batch("kiosk-3", chain(OPENINGS)))
    db.close()
    text = run("fleet", "show", "kiosk-3", "--db", hub_url)
    lines = {" ".join(line.split()) for line in text.splitlines()}
    assert "journal 3 entries, head 3, committed up to 3, chain ok" in lines
    assert "drawer openings without a sale 2" in lines
    assert "2030-03-05T10:00:00+00:00 by_hand (unexplained)" in lines
    assert "2030-03-05T09:30:00+00:00 no_sale by ana" in lines


def test_drawer_lists_a_devices_openings_with_their_cause(hub_url: str) -> None:
    db = open_hub_database(hub_url)
    JournalIngest(db).ingest("kiosk-3", batch("kiosk-3", chain(OPENINGS)))
    db.close()
    every = json.loads(run("drawer", "kiosk-3", "--json", "--db", hub_url))
    assert [(o["journal_number"], o["reason"], o["unexplained"]) for o in every] == [
        (3, "by_hand", True),
        (2, "no_sale", False),
        (1, "sale", False),
    ]
    table = run("drawer", "kiosk-3", "--without-sale", "--db", hub_url)
    assert "by_hand" in table and "unexplained" in table and "2 opening(s)" in table
