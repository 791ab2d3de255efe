"""Journal ingest: each entry once, the chain proven as entries arrive, breaks flagged, and the
reports, drawer log and shift events read out of the entries.

Runs against SQLite and, like tests/hub/test_ingest.py, a throwaway PostgreSQL cluster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import msgspec
import pytest
from peewee import Database

from appliance.core.journal import entry_hash
from appliance.errors import DecodeError
from appliance.mqtt.payloads import JournalBatch
from hub.db import open_hub_database
from hub.journal_ingest import JournalIngest
from hub.migrations import SCHEMA_VERSION, migrate
from hub.models import DrawerOpening, JournalEntry, ShiftEvent, TillReport
from hub.stores import assign_device
from tests.hub.journal_entries import batch, chain, day, tampered
from tests.hub.test_ingest import by_two_workers

TABLES = "device, journal_entry, journal_state, till_report, drawer_opening, shift_event"


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty hub database of each kind."""
    if request.param == "sqlite":
        db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
        migrate(db)
    else:
        db = request.getfixturevalue("postgres_hub")
        db.execute_sql(f"TRUNCATE {TABLES}, device_store")
    yield db
    db.close()


def stored_numbers(db: Database, device: str) -> list[int]:
    query = JournalEntry.select(JournalEntry.number).where(JournalEntry.device == device)
    return sorted(int(n) for (n,) in query.tuples().execute(db))


def entry_row(db: Database, number: int) -> JournalEntry:
    query = JournalEntry.select().where(
        (JournalEntry.device == "kiosk-1") & (JournalEntry.number == number)
    )
    return query.get(db)


def test_the_same_entries_twice_are_stored_once_and_the_chain_is_proven(
    hub_db: Database,
) -> None:
    ingest = JournalIngest(hub_db)
    entries = chain(day(1))
    first = ingest.ingest("kiosk-1", batch("kiosk-1", entries))
    again = ingest.ingest("kiosk-1", batch("kiosk-1", entries))
    assert (first.upto, first.inserted, first.duplicates, first.broken_at) == (7, 7, 0, None)
    assert (again.upto, again.inserted, again.duplicates, again.broken_at) == (7, 0, 7, None)
    assert stored_numbers(hub_db, "kiosk-1") == list(range(1, 8))
    state = ingest.state("kiosk-1")
    assert state is not None and state.ok and (state.entries, state.head, state.upto) == (7, 7, 7)


def test_the_stored_entry_keeps_the_exact_bytes_that_were_hashed(hub_db: Database) -> None:
    entries = chain(day(1))
    JournalIngest(hub_db).ingest("kiosk-1", batch("kiosk-1", entries))
    row = entry_row(hub_db, 7)
    assert bytes(row.body) == entries[6].body
    assert row.hash == entry_hash(7, row.kind, row.at, bytes(row.body), row.prev_hash)


def test_a_gap_is_acknowledged_below_it_and_proven_once_filled(hub_db: Database) -> None:
    ingest = JournalIngest(hub_db)
    entries = chain(day(1) + day(2))
    assert ingest.ingest("kiosk-1", batch("kiosk-1", entries[:3])).upto == 3
    assert ingest.ingest("kiosk-1", batch("kiosk-1", entries[5:])).upto == 3
    filled = ingest.ingest("kiosk-1", batch("kiosk-1", entries[3:5]))
    assert (filled.upto, filled.broken_at) == (14, None)


def test_devices_keep_separate_chains(hub_db: Database) -> None:
    ingest = JournalIngest(hub_db)
    ingest.ingest("kiosk-1", batch("kiosk-1", chain(day(1))))
    assert ingest.ingest("kiosk-2", batch("kiosk-2", chain(day(1))[:2])).upto == 2
    assert stored_numbers(hub_db, "kiosk-2") == [1, 2]


def test_an_edited_body_is_flagged_at_its_entry_yet_stored_and_acknowledged(
    hub_db: Database,
) -> None:
    ingest = JournalIngest(hub_db)
    entries = chain(day(1))
    entries[3] = tampered(entries[3], b'{"reason":"sale","reference":"doc-1","staff":""}')
    result = ingest.ingest("kiosk-1", batch("kiosk-1", entries))
    assert (result.upto, result.broken_at) == (7, 4)
    assert result.reason == "its content does not match its hash"
    later = ingest.ingest("kiosk-1", batch("kiosk-1", chain(day(2), after=entries[-1])))
    assert (later.upto, later.broken_at) == (14, 4)  # the first break stays the one shown
    state = ingest.state("kiosk-1")
    assert state is not None and not state.ok and state.entries == 14


def test_an_entry_that_does_not_link_to_the_one_before_is_flagged(hub_db: Database) -> None:
    ingest = JournalIngest(hub_db)
    entries = chain(day(1))
    ingest.ingest("kiosk-1", batch("kiosk-1", entries[:4]))
    # Entry 5 rechained after a different entry 4: its own hash is right, its link is not.
    forged = chain(day(1), after=replace(entries[3], hash="f" * 64))[:1]
    result = ingest.ingest("kiosk-1", batch("kiosk-1", forged))
    assert (result.upto, result.broken_at) == (5, 5)
    assert "does not link to entry 4" in result.reason


def test_a_resent_entry_unlike_the_copy_held_is_flagged_and_the_first_copy_kept(
    hub_db: Database,
) -> None:
    ingest = JournalIngest(hub_db)
    entries = chain(day(1))
    ingest.ingest("kiosk-1", batch("kiosk-1", entries))
    rewritten = chain([("drawer", {"reason": "by_hand"})], after=entries[1])
    result = ingest.ingest("kiosk-1", batch("kiosk-1", rewritten))
    assert (result.upto, result.broken_at) == (7, 3)
    assert "differs from the copy the hub already holds" in result.reason
    row = entry_row(hub_db, 3)
    assert bytes(row.body) == entries[2].body


def test_reports_drawer_openings_and_shift_events_are_read_out_once_per_entry(
    hub_db: Database,
) -> None:
    assign_device(hub_db, "kiosk-1", "berlin")
    ingest = JournalIngest(hub_db)
    entries = chain(day(1) + day(2))
    ingest.ingest("kiosk-1", batch("kiosk-1", entries))
    ingest.ingest("kiosk-1", batch("kiosk-1", entries))
    reports = list(
        TillReport.select()
        .where(TillReport.device == "kiosk-1")
        .order_by(TillReport.number)
        .execute(hub_db)
    )
    assert [(r.kind, r.number, r.store, r.journal_number) for r in reports] == [
        ("z", 1, "berlin", 7),
        ("z", 2, "berlin", 14),
    ]
    first = reports[0]
    assert (first.currency, first.sales_gross, first.counted_cash, first.difference) == (
        "EUR",
        12_345,
        11_990,
        -10,
    )
    assert (first.grand_total, first.made_at.isoformat()) == (12_345, "2030-03-01T18:00:00")
    assert json.loads(first.body)["tenders"] == {"card": 10_345, "cash": 2_000}
    openings = DrawerOpening.select().where(DrawerOpening.device == "kiosk-1").execute(hub_db)
    assert sorted((o.journal_number, o.reason, o.staff) for o in openings) == [
        (3, "sale", ""),
        (4, "no_sale", "ana"),
        (10, "sale", ""),
        (11, "no_sale", "ana"),
    ]
    events = ShiftEvent.select().where(ShiftEvent.device == "kiosk-1").execute(hub_db)
    assert sorted((e.journal_number, e.kind, e.shift, e.amount) for e in events) == [
        (1, "shift_open", "shift-1", 10_000),
        (5, "cash_in", "shift-1", 500),
        (6, "shift_close", "shift-1", None),
        (8, "shift_open", "shift-2", 10_000),
        (12, "cash_in", "shift-2", 500),
        (13, "shift_close", "shift-2", None),
    ]


def test_a_report_body_the_hub_cannot_read_is_still_stored_with_empty_figures(
    hub_db: Database,
) -> None:
    entries = chain([("x_report", {"kind": "x", "number": "one", "sales_gross": 1.5})])
    result = JournalIngest(hub_db).ingest("kiosk-1", batch("kiosk-1", entries))
    assert result.upto == 1
    report = TillReport.select().where(TillReport.device == "kiosk-1").get(hub_db)
    assert (report.kind, report.number, report.sales_gross, report.store) == ("x", 0, None, None)


def test_a_batch_naming_another_device_or_holding_no_base64_is_refused_whole(
    hub_db: Database,
) -> None:
    ingest = JournalIngest(hub_db)
    with pytest.raises(DecodeError, match="names device"):
        ingest.ingest("kiosk-1", batch("kiosk-2", chain(day(1))))
    good = batch("kiosk-1", chain(day(1)))
    broken = msgspec.structs.replace(good.entries[2], body="not base64!")
    bad = JournalBatch(device="kiosk-1", entries=[*good.entries[:2], broken])
    with pytest.raises(DecodeError, match="not base64"):
        ingest.ingest("kiosk-1", bad)
    assert stored_numbers(hub_db, "kiosk-1") == []


def test_a_hub_from_before_the_journal_gains_its_tables(tmp_path: Path) -> None:
    db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(db)
    for table in TABLES.split(", ")[1:]:
        db.execute_sql(f"DROP TABLE {table}")
    db.execute_sql("UPDATE hub_schema SET version = 3")
    assert [m.version for m in migrate(db)] == list(range(4, SCHEMA_VERSION + 1))
    assert JournalIngest(db).ingest("kiosk-1", batch("kiosk-1", chain(day(1)))).upto == 7
    db.close()


def test_two_workers_ingesting_one_device_at_once_prove_the_chain_once(
    hub_db: Database,
) -> None:
    # Shared subscriptions hand consecutive batches of one device to different workers;
    # the per-device lock must keep progress whole and the chain check free of false breaks.
    entries = chain([event for number in range(1, 21) for event in day(number)])
    batches = [batch("kiosk-1", entries[start : start + 5]) for start in range(0, 140, 5)]
    by_two_workers(hub_db, lambda one: JournalIngest(hub_db).ingest("kiosk-1", one), batches)
    state = JournalIngest(hub_db).state("kiosk-1")
    assert state is not None and state.ok and (state.upto, state.entries) == (140, 140)
    assert stored_numbers(hub_db, "kiosk-1") == list(range(1, 141))
