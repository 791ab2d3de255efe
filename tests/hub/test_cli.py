"""The hub's commands: `serve` as a process, `sales export` CSV, `fleet list|show`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.payloads import (
    DeviceStatus,
    HubState,
    SaleEnvelope,
    SalesBatch,
    StorageReport,
    Telemetry,
    encode,
)
from hub.cli import cli
from hub.cli_fleet import fleet
from hub.cli_sales import sales
from hub.cli_serve import serve
from hub.db import open_hub_database
from hub.help_board import is_staff_device, record_screen
from hub.ingest import SalesIngest
from hub.migrations import migrate
from hub.server import BrokerEndpoint, HubServer
from tests.broker import MosquittoBroker
from tests.hub.test_ingest import batch, sale_document, sale_id_of
from tests.hub.test_server import (
    TIMEOUT,
    DeviceClient,
    ack_of,
    next_state,
    retained_hub_state,
    wait_until,
)


def url(path: Path) -> str:
    """The --db URL of a SQLite file."""
    return f"sqlite:///{path}"


# --- sales export ---------------------------------------------------------------------


@pytest.fixture
def sold(hub_db: Database) -> None:
    """kiosk-1 sold at 09:01 and 09:03 and refunded at 09:02; kiosk-2 sold at 09:01."""
    ingest = SalesIngest(hub_db)
    refund = SaleEnvelope(
        seq=2,
        sale_id=sale_id_of("kiosk-1", 2),
        document=msgspec.Raw(sale_document("kiosk-1", 2, total=250, kind="refund")),
    )
    one = batch("kiosk-1", [1])
    ingest.apply(
        "kiosk-1",
        SalesBatch(device="kiosk-1", sales=[*one.sales, refund, *batch("kiosk-1", [3]).sales]),
    )
    ingest.apply("kiosk-2", batch("kiosk-2", [1]))


def test_sales_export_writes_one_row_per_document_in_major_units(sold: None, db_path: Path) -> None:
    result = CliRunner().invoke(sales, ["export", "--since", "2024-05-01", "--db", url(db_path)])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "device,seq,sale_id,kind,created_at,currency,total,clock_verified\n"
        "kiosk-1,1,kiosk-1-sale-000001,sale,2024-05-01T09:01:00+00:00,EUR,2.50,true\n"
        "kiosk-2,1,kiosk-2-sale-000001,sale,2024-05-01T09:01:00+00:00,EUR,2.50,true\n"
        "kiosk-1,2,kiosk-1-sale-000002,refund,2024-05-01T09:02:00+00:00,EUR,-2.50,true\n"
        "kiosk-1,3,kiosk-1-sale-000003,sale,2024-05-01T09:03:00+00:00,EUR,2.50,true\n"
    )


def test_sales_export_since_a_time_and_to_a_file(sold: None, db_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "sales.csv"
    target.parent.mkdir()
    since = "2024-05-01T11:02:00+02:00"  # 09:02 UTC
    result = CliRunner().invoke(
        sales, ["export", "--since", since, "-o", str(target), "--db", url(db_path)]
    )
    assert result.exit_code == 0, result.output
    rows = target.read_text().splitlines()
    assert [row.split(",")[:3] for row in rows[1:]] == [
        ["kiosk-1", "2", "kiosk-1-sale-000002"],
        ["kiosk-1", "3", "kiosk-1-sale-000003"],
    ]


def test_sales_export_refuses_a_missing_database_without_creating_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = CliRunner().invoke(sales, ["export", "--since", "2024-05-01", "--db", url(missing)])
    assert result.exit_code == 1
    assert "no hub database" in result.output
    assert not missing.exists()


def test_sales_export_refuses_a_bad_date(hub_db: Database, db_path: Path) -> None:
    result = CliRunner().invoke(sales, ["export", "--since", "yesterday", "--db", url(db_path)])
    assert result.exit_code == 2
    assert "not an ISO date" in result.output


# --- fleet list / show, filled over MQTT by a running worker --------------------------


@pytest.fixture
def fleet_db(broker: MosquittoBroker, hub_db: Database, db_path: Path) -> Path:
    """kiosk-1 born, reporting telemetry and 3 sales through a real worker; kiosk-2 gone."""
    server = HubServer(hub_db, BrokerEndpoint(broker.host, broker.port), worker_id="w1")
    server.start(timeout=TIMEOUT)
    kiosk = DeviceClient(broker, "kiosk-1", [topics.sales_ack("kiosk-1")])
    try:
        birth = DeviceStatus(device="kiosk-1", online=True, bd_seq=3, firmware="1.4.0")
        kiosk.publish(topics.status("kiosk-1"), encode(birth), retain=True)
        report = Telemetry(
            device="kiosk-1",
            at="2024-05-01T09:00:00Z",
            firmware="1.4.0",
            uptime_s=60.0,
            outbox_depth=7,
            catalog_version=42,
            disk_free_bytes=123456,
            cpu_temp_c=51.5,
            storage=StorageReport(
                state="low",
                free_bytes=123456,
                total_bytes=8 << 20,
                reserve_bytes=1 << 20,
                problem="storage low: below the reserve, new sales are refused",
            ),
        )
        kiosk.publish(topics.health("kiosk-1"), encode(report))
        kiosk.publish(topics.sales_up("kiosk-1"), encode(batch("kiosk-1", [1, 2, 3])))
        assert ack_of(kiosk.next(topics.sales_ack("kiosk-1"))) == 3
        will = DeviceStatus(device="kiosk-2", online=False, bd_seq=9)
        kiosk.publish(topics.status("kiosk-2"), encode(will))
        wait_until(lambda: server.stats.statuses == 2 and server.stats.telemetry == 1)
    finally:
        kiosk.close()
        server.stop()
    return db_path


def test_fleet_list_shows_every_appliance(fleet_db: Path) -> None:
    result = CliRunner().invoke(fleet, ["list", "--json", "--db", url(fleet_db)])
    assert result.exit_code == 0, result.output
    entries = {e["device"]: e for e in json.loads(result.output)}
    one = entries["kiosk-1"]
    assert one["last_seen"]
    del one["last_seen"]
    assert one == {
        "device": "kiosk-1",
        "online": True,
        "bd_seq": 3,
        "firmware": "1.4.0",
        "outbox_depth": 7,
        "catalog_version": 42,
        "sales_upto_seq": 3,
        "storage": "low",
        "journal_entries": 0,
        "journal_head": 0,
        "journal_upto": 0,
        "journal_broken_at": None,
        "journal_break": "",
        "drawer_without_sale": 0,
        "rejected_sales": 0,
        "quarantined_sales": 0,
        "store": None,
        "catalog_store": "",
        "chain": "-",
    }
    assert (entries["kiosk-2"]["online"], entries["kiosk-2"]["bd_seq"]) == (False, 9)
    table = CliRunner().invoke(fleet, ["list", "--db", url(fleet_db)], env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "kiosk-1" in table.output and "1.4.0" in table.output
    assert "2 appliance(s), 1 online" in table.output


def test_fleet_show_details_one_appliance(fleet_db: Path) -> None:
    result = CliRunner().invoke(fleet, ["show", "kiosk-1", "--db", url(fleet_db)])
    assert result.exit_code == 0, result.output
    lines = {" ".join(line.split()) for line in result.output.splitlines()}
    for expected in (
        "online yes",
        "bd_seq 3",
        "outbox depth 7",
        "catalog version 42",
        "store none (appliance-hub fleet assign)",
        "sales committed up to seq 3",
        "sales rejected by the hub none",
        "cpu temp c 51.5",
    ):
        assert expected in lines, result.output
    assert "storage low: below the reserve" in result.output
    as_json = json.loads(
        CliRunner().invoke(fleet, ["show", "kiosk-1", "--json", "--db", url(fleet_db)]).output
    )
    assert as_json["telemetry"]["disk_free_bytes"] == 123456


def test_fleet_show_an_unknown_appliance_fails(fleet_db: Path) -> None:
    result = CliRunner().invoke(fleet, ["show", "kiosk-404", "--db", url(fleet_db)])
    assert result.exit_code == 1
    assert "no appliance 'kiosk-404'" in result.output


# --- serve --------------------------------------------------------------------------


def test_serve_refuses_a_client_certificate_without_a_ca(tmp_path: Path) -> None:
    cert = tmp_path / "hub.crt"
    cert.write_text("x")
    result = CliRunner().invoke(serve, ["--tls-cert", str(cert), "--db", url(tmp_path / "h.db")])
    assert result.exit_code == 2
    assert "need --tls-ca" in result.output


def test_serve_stores_what_devices_send_and_stops_cleanly_on_sigterm(
    broker: MosquittoBroker, db_path: Path
) -> None:
    observer = DeviceClient(broker, "observer", [topics.HUB_STATE])
    kiosk = DeviceClient(broker, "kiosk-1", [topics.sales_ack("kiosk-1")])
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "hub.cli_serve", "--db", url(db_path)),
            *("--host", broker.host, "--port", str(broker.port), "--worker-id", "svc"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert next_state(observer) == HubState(online=True, hub_id="svc")
        kiosk.publish(topics.sales_up("kiosk-1"), encode(batch("kiosk-1", [1, 2])))
        assert ack_of(kiosk.next(topics.sales_ack("kiosk-1"))) == 2
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr.decode()
        assert next_state(observer) == HubState(online=False, hub_id="svc")
        assert retained_hub_state(broker) == HubState(online=False, hub_id="svc")
    finally:
        observer.close()
        kiosk.close()
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)
    exported = CliRunner().invoke(sales, ["export", "--since", "2024-01-01", "--db", url(db_path)])
    assert exported.output.splitlines()[1:] == [
        "kiosk-1,1,kiosk-1-sale-000001,sale,2024-05-01T09:01:00+00:00,EUR,2.50,true",
        "kiosk-1,2,kiosk-1-sale-000002,sale,2024-05-01T09:02:00+00:00,EUR,2.50,true",
    ]


# --- fleet logs and fleet config: refused before anything is sent ---------------------


def test_fleet_logs_refuses_more_lines_than_one_message_carries(tmp_path: Path) -> None:
    key = tmp_path / "fleet.key"
    result = CliRunner().invoke(
        cli, ["fleet", "logs", "kiosk-1", "-n", "10000", "--fleet-key", str(key)]
    )
    assert result.exit_code == 2
    assert "10000 is not in the range 1<=x<=5000" in result.output


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[hub]\nquiet_from = 2030-01-15T22:00:00Z\n", "hub.quiet_from"),
        ("[shop]\nopens = 08:30:00\n", "shop.opens"),
        ('[[printers]]\nname = "a"\n[[printers]]\nsince = 2030-01-15\n', "printers[1].since"),
    ],
)
def test_fleet_config_refuses_a_toml_date_naming_its_key(
    tmp_path: Path, toml: str, key: str
) -> None:
    desired = tmp_path / "desired.toml"
    desired.write_text(toml)
    # No broker runs: the refusal comes before any connection.
    result = CliRunner().invoke(cli, ["fleet", "config", "kiosk-1", str(desired), "--port", "1"])
    assert result.exit_code == 1, result.output
    assert f"{key} is a TOML date or time; no setting takes one" in result.output


def test_fleet_staff_device_grants_and_revokes(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    db = open_hub_database(url(path))
    migrate(db)
    record_screen(db, "till-1", "staff")  # its birth says so: not enough on its own
    assert not is_staff_device(db, "till-1")

    granted = CliRunner().invoke(fleet, ["staff-device", "till-1", "--db", url(path)])
    assert granted.exit_code == 0, granted.output
    assert "till-1 is a staff device" in granted.output
    assert is_staff_device(db, "till-1")

    revoked = CliRunner().invoke(fleet, ["staff-device", "till-1", "--revoke", "--db", url(path)])
    assert revoked.exit_code == 0 and "no longer" in revoked.output
    assert not is_staff_device(db, "till-1")
    db.close()
