"""End to end, real processes: a day of offline sales drains to the hub once the broker is
back; none lost, none duplicated, order kept. Days offline with shifts, reports and the drawer
log reach it the same way, through the journal. Appliance, hub and mosquitto run for real."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import peewee
import pytest

from appliance.core.devices import DrawerOpening
from appliance.store.drawer_log import DrawerLog
from appliance.store.journal import FiscalJournal
from appliance.store.reports import ReportBook
from appliance.store.shifts import ShiftBook
from hub.db import HubDatabaseError, open_hub_database
from tests.broker import MosquittoBroker, free_port
from tests.e2e.conftest import Processes
from tests.mqtt.fake_hub import DeviceStore

BIN = Path(sys.executable).parent
DEVICE = "kiosk-e2e"


def _config(path: Path, db: Path, port: int) -> Path:
    path.write_text(
        f'[device]\nid = "{DEVICE}"\nreceipt_prefix = "E2E"\n'
        f'[database]\npath = "{db}"\n'
        f'[hub]\nhost = "127.0.0.1"\nport = {port}\ntelemetry_seconds = 5\n'
    )
    return path


def _hub_rows_once_created(url: str) -> list[tuple[str, int, str]]:
    """The hub's rows, or none while the hub is still creating its database (a busy machine
    can be polled between the file appearing and its tables being made)."""
    try:
        return _hub_rows(url)
    except (peewee.DatabaseError, HubDatabaseError):
        return []


def _hub_rows(url: str) -> list[tuple[str, int, str]]:
    db = open_hub_database(url, create=False)
    try:
        return [
            (str(d), int(s), str(i))
            for d, s, i in db.execute_sql("SELECT device, seq, sale_id FROM sale ORDER BY seq")
        ]
    finally:
        db.close()


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _hub_query(url: str, sql: str) -> list[tuple[object, ...]]:
    """Rows of `sql` at the hub; none while the hub is still creating its tables."""
    try:
        db = open_hub_database(url, create=False)
    except HubDatabaseError:
        return []
    try:
        return [tuple(row) for row in db.execute_sql(sql)]
    except peewee.DatabaseError:
        return []
    finally:
        db.close()


def _come_back(
    processes: Processes, tmp_path: Path, device_db: Path, port: int
) -> tuple[MosquittoBroker, str]:
    """The appliance started with no broker, then the broker and the hub; the hub's URL.

    The caller stops the processes and the broker.
    """
    config = _config(tmp_path / "appliance.toml", device_db, port)
    appliance = processes.start(
        str(BIN / "appliance"),
        *("run", "--headless", "--simulate", "--config", str(config)),
        log=tmp_path / "appliance.log",
    )
    time.sleep(1.0)
    assert appliance.poll() is None, (tmp_path / "appliance.log").read_text()
    broker = MosquittoBroker(tmp_path / "broker", port=port)
    broker.start()
    hub_url = f"sqlite:///{tmp_path / 'hub.db'}"
    try:
        processes.start(
            str(BIN / "appliance-hub"),
            *("serve", "--db", hub_url, "--host", "127.0.0.1", "--port", str(port)),
            log=tmp_path / "hub.log",
        )
    except BaseException:
        broker.stop()
        raise
    return broker, hub_url


def _day_offline_drains_exactly(tmp_path: Path, processes: Processes, sales: int) -> None:
    port = free_port()
    device_db = tmp_path / "device" / "appliance.db"
    device_db.parent.mkdir(parents=True)
    store = DeviceStore(device_db)
    sold = store.sell(sales, seed=7)
    store.close()
    # The appliance starts while the broker is down: it sells on, the outbox keeps the day.
    broker, hub_url = _come_back(processes, tmp_path, device_db, port)
    try:
        _wait(
            lambda: len(_hub_rows_once_created(hub_url)) >= sales,
            timeout=120,
            what=f"{sales} sales at the hub",
        )
        rows = _hub_rows(hub_url)
        assert len(rows) == sales, "duplicates or losses at the hub"
        assert [r[1] for r in rows] == list(range(1, sales + 1)), "sequence order per device"
        assert [r[2] for r in rows] == sold, "the same sales, in the order they were made"
        assert {r[0] for r in rows} == {DEVICE}
        # The device dropped its outbox rows only on the hub's acknowledgement.
        check = DeviceStore(device_db)
        try:
            _wait(lambda: check.outbox.depth() == 0, timeout=30, what="an empty outbox")
        finally:
            check.close()
    finally:
        processes.stop_all()
        broker.stop()


def test_a_day_of_offline_sales_drains_to_the_hub_exactly_once(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    _day_offline_drains_exactly(tmp_path, processes, sales=3000)


@pytest.mark.soak
def test_a_busy_week_offline_drains_exactly_once(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    _day_offline_drains_exactly(tmp_path, processes, sales=30000)


class _Clock:
    """The days the shifts run on: moved on by the test."""

    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        """The test's moment."""
        return self.at

    def monotonic(self) -> float:
        """Unused by the shift book's rules; steady anyway."""
        return self.at.timestamp()


EUR_NOTES = (50000, 20000, 10000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 5, 2, 1)


def _days_offline(store: DeviceStore, days: int, sales_a_day: int) -> list[dict[str, object]]:
    """Days of a staffed till made while the hub is away; returns the Z reports as stored."""
    clock = _Clock(datetime(2030, 6, 3, 7, 0, tzinfo=UTC))
    shifts = ShiftBook(
        store.db,
        till=DEVICE,
        currency="EUR",
        denominations=EUR_NOTES,
        signoff_threshold=500,
        clock=clock,  # type: ignore[arg-type]
    )
    reports = ReportBook(store.db, shifts)
    drawer = DrawerLog(store.db)
    zs = []
    for day in range(days):
        clock.at = datetime(2030, 6, 3 + day, 8, 0, tzinfo=UTC)
        shifts.open("ana", {1000: 10})
        store.sell(sales_a_day, seed=day)
        at = clock.at + timedelta(hours=2)
        drawer.record(DEVICE, DrawerOpening("no_sale", staff="ana"), at=at)
        drawer.record(DEVICE, DrawerOpening("by_hand"), at=at + timedelta(minutes=5))
        shifts.move_cash("in", 500, "change", "ana")
        reports.x_report("ana")
        clock.at += timedelta(hours=9)
        # Counted ten cents short: over no threshold, yet signed off like a real close.
        _closing, z = shifts.close({1000: 10, 200: 2, 50: 1, 20: 2}, "ana", supervisor="sam")
        zs.append(z.to_dict())
    return zs


def test_days_offline_bring_sales_reports_journal_and_drawer_log_to_the_hub_once(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    days, sales_a_day = 3, 100
    port = free_port()
    device_db = tmp_path / "device" / "appliance.db"
    device_db.parent.mkdir(parents=True)
    store = DeviceStore(device_db)
    zs = _days_offline(store, days, sales_a_day)
    head = FiscalJournal(store.db).head()
    assert head is not None
    openings = store.db.execute_sql("SELECT COUNT(*) FROM drawer_opening").fetchone()[0]
    store.close()
    broker, hub_url = _come_back(processes, tmp_path, device_db, port)
    sales = days * sales_a_day
    try:

        def journal_upto() -> int:
            found = _hub_query(hub_url, "SELECT upto FROM journal_state")
            return int(found[0][0]) if found else 0  # type: ignore[call-overload]

        # The appliance may chain entries of its own meanwhile: wait for its head as it is.
        check = DeviceStore(device_db)
        journal = FiscalJournal(check.db)
        try:
            _wait(
                lambda: (
                    journal_upto() >= (journal.head() or head).number
                    and len(_hub_rows_once_created(hub_url)) >= sales
                ),
                timeout=120,
                what="the journal and the sales at the hub",
            )
            device_head = journal.head()
            assert device_head is not None
            _wait(
                lambda: journal.acked_upto() == device_head.number,
                timeout=30,
                what="the hub's acknowledgement recorded on the device",
            )
            _wait(lambda: check.outbox.depth() == 0, timeout=30, what="an empty outbox")
        finally:
            check.close()
    finally:
        processes.stop_all()
        broker.stop()
    _assert_the_hub_holds_each_once(hub_url, sales, device_head.number, zs, openings)


def _assert_the_hub_holds_each_once(
    hub_url: str, sales: int, head: int, zs: list[dict[str, object]], openings: int
) -> None:
    days = len(zs)
    rows = _hub_rows(hub_url)
    assert [r[1] for r in rows] == list(range(1, sales + 1)), "each sale once, in order"
    numbers = _hub_query(hub_url, "SELECT number FROM journal_entry ORDER BY number")
    assert [n for (n,) in numbers] == list(range(1, head + 1)), "each entry once"
    state = _hub_query(hub_url, "SELECT upto, broken_at FROM journal_state")
    assert state == [(head, None)], "the chain proven at the hub"
    reports = _hub_query(
        hub_url, "SELECT kind, number, body FROM till_report ORDER BY kind DESC, number"
    )
    z_rows = [(n, json.loads(str(b))) for k, n, b in reports if k == "z"]
    assert [n for n, _ in z_rows] == list(range(1, days + 1))
    assert [body for _, body in z_rows] == zs, "the hub's Z reports are the device's, to the cent"
    assert len([k for k, _n, _b in reports if k == "x"]) == days
    drawer = _hub_query(
        hub_url, "SELECT reason, staff, unexplained FROM drawer_opening ORDER BY opened_at"
    )
    assert len(drawer) == openings == 2 * days
    assert drawer[:2] == [("no_sale", "ana", False), ("by_hand", "", True)]
    shift_events = _hub_query(hub_url, "SELECT kind FROM shift_event")
    assert sorted(k for (k,) in shift_events) == sorted(
        ["shift_open", "cash_in", "shift_close"] * days
    )
