"""GET /api/v1/devices, stores and Z reports: what the hub heard, as typed fields, per store."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar.testing import TestClient
from peewee import Database

from appliance.mqtt.payloads import (
    Command,
    CommandUpdate,
    DeviceHealthReport,
    DeviceStatus,
    JournalReport,
    OfflineCardsReport,
    SalesBatch,
    StorageReport,
    StoredValueReport,
    Telemetry,
    encode,
)
from appliance.settings import StoreSettings
from hub.catalog import HubCatalog
from hub.device_answers import DeviceAnswers
from hub.ingest import DeviceRecords, SalesIngest
from hub.journal_ingest import JournalIngest
from hub.stores import assign_device
from tests.hub import journal_entries
from tests.hub.api.conftest import Bearer
from tests.hub.api.sale_documents import minutes, store_sales
from tests.hub.test_ingest import envelope, sale_id_of

Client = TestClient  # type: ignore[type-arg]
NOW = datetime.now(UTC)


def telemetry(device: str, **fields: Any) -> Telemetry:
    """A device's telemetry report with a few figures set."""
    values: dict[str, Any] = {
        "device": device,
        "at": "2024-05-01T10:00:00+00:00",
        "firmware": "1.4.2",
        "uptime_s": 3600.5,
        "outbox_depth": 7,
        "catalog_version": 12,
        "disk_free_bytes": 900_000_000,
        "cpu_temp_c": 51.5,
        "quarantined_sales": 1,
        "catalog_store": "berlin",
        "image_version": "2026.12.1-3-gabc1234",
        **fields,
    }
    return Telemetry(**values)


def command(device: str, job: str, name: str, *, expires: datetime) -> bytes:
    """A command as the CLI publishes it (unsigned: the hub records, it does not verify)."""
    return encode(
        Command(
            id=job,
            device=device,
            name=name,  # type: ignore[arg-type]
            issued_at=(expires - timedelta(minutes=10)).isoformat(),
            expires_at=expires.isoformat(),
        )
    )


def z_days(db: Database, device: str, days: int) -> None:
    """`days` shifts of the device, each closed with a Z report, through the journal ingest."""
    events = [event for n in range(1, days + 1) for event in journal_entries.day(n)]
    entries = journal_entries.chain(events)
    JournalIngest(db).ingest(device, journal_entries.batch(device, entries))


def get(client: Client, path: str, headers: dict[str, str], **params: Any) -> Any:
    response = client.get(f"/api/v1{path}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_device_shows_status_telemetry_journal_rejections_last_sale_and_jobs(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    assign_device(api_db, "kiosk-1", "berlin")
    records = DeviceRecords(api_db)
    records.record_status("kiosk-1", DeviceStatus(device="kiosk-1", online=True, bd_seq=3))
    records.record_telemetry(
        "kiosk-1",
        telemetry(
            "kiosk-1",
            devices=[DeviceHealthReport(device="printer", kind="printer", state="paper_out")],
            storage=StorageReport(
                state="low", free_bytes=10, total_bytes=100, reserve_bytes=20, problem="low"
            ),
            journal=JournalReport(head=9, acked_upto=7, checked_at="2024-05-01T09:00:00+00:00"),
            locked=True,
            stored_value=StoredValueReport(
                debits=2, debit_amount=1_950, voids=1, void_amount=300, currency="EUR"
            ),
        ),
    )
    store_sales(api_db, "kiosk-1", [1, 2, 3])
    clash = envelope("kiosk-1", 4, sale_id=sale_id_of("kiosk-1", 1))  # its id is stored at 1
    SalesIngest(api_db).ingest("kiosk-1", SalesBatch(device="kiosk-1", sales=[clash]))
    z_days(api_db, "kiosk-1", 1)
    answers = DeviceAnswers(api_db)
    answers.command_sent("kiosk-1", command("kiosk-1", "job-old", "reboot", expires=minutes(5)))
    answers.command_sent("kiosk-1", command("kiosk-1", "job-done", "unlock", expires=NOW))
    answers.command_update("kiosk-1", encode(CommandUpdate(id="job-done", state="SUCCEEDED")))
    later = NOW + timedelta(hours=1)
    answers.command_sent("kiosk-1", command("kiosk-1", "job-lock", "lock", expires=later))
    answers.command_update("kiosk-1", encode(CommandUpdate(id="job-lock", state="QUEUED")))

    device = get(client, "/devices/kiosk-1", bearer("read"))

    assert {k: device[k] for k in ("id", "store", "online", "firmware", "sales_upto_seq")} == {
        "id": "kiosk-1",
        "store": "berlin",
        "online": True,
        "firmware": "1.4.2",
        "sales_upto_seq": 4,
    }
    assert device["last_seen"].endswith("Z")
    assert device["rejected_sales"] == 1
    assert device["last_sale"] == {
        "id": sale_id_of("kiosk-1", 3),
        "seq": 3,
        "kind": "sale",
        "created_at": "2024-05-01T09:03:00Z",
        "received_at": device["last_sale"]["received_at"],
    }
    assert device["telemetry"] == {
        "at": "2024-05-01T10:00:00Z",
        "firmware": "1.4.2",
        "image_version": "2026.12.1-3-gabc1234",
        "locked": True,
        "uptime_s": 3600.5,
        "outbox_depth": 7,
        "catalog_version": 12,
        "catalog_store": "berlin",
        "quarantined_sales": 1,
        "disk_free_bytes": 900_000_000,
        "cpu_temp_c": 51.5,
        "malformed_messages": 0,
        "health": [{"device": "printer", "kind": "printer", "state": "paper_out", "reason": ""}],
        "storage": {
            "state": "low",
            "free_bytes": 10,
            "total_bytes": 100,
            "reserve_bytes": 20,
            "problem": "low",
        },
        "journal": {
            "head": 9,
            "acked_upto": 7,
            "checked_at": "2024-05-01T09:00:00Z",
            "broken_at": None,
            "problem": "",
        },
        "offline_cards": None,
        "bagging": None,
        "stored_value": {
            "debits": 2,
            "debit_amount": 1_950,
            "voids": 1,
            "void_amount": 300,
            "currency": "EUR",
            "oldest_age_s": None,
        },
    }
    assert device["journal"] == {
        "state": "ok",
        "entries": 7,
        "head": 7,
        "upto": 7,
        "broken_at": None,
        "break_reason": "",
    }
    pending = [(j["id"], j["name"], j["state"]) for j in device["pending_jobs"]]
    assert pending == [("job-lock", "lock", "QUEUED")]
    recent = {j["id"]: (j["state"], j["pending"]) for j in device["recent_jobs"]}
    # job-old was sent and never answered before it expired: it will not run any more.
    assert recent == {
        "job-lock": ("QUEUED", True),
        "job-done": ("SUCCEEDED", False),
        "job-old": ("SENT", False),
    }
    lock = device["pending_jobs"][0]
    assert [step["state"] for step in lock["history"]] == ["SENT", "QUEUED"]
    assert lock["expires_at"] == later.replace(tzinfo=None).isoformat() + "Z"


def test_a_device_heard_of_only_by_its_status_shows_what_is_known(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    DeviceRecords(api_db).record_status(
        "kiosk-9", DeviceStatus(device="kiosk-9", online=True, bd_seq=1, firmware="1.0.0")
    )
    device = get(client, "/devices/kiosk-9", bearer("read"))
    assert device == {
        "id": "kiosk-9",
        "store": None,
        "online": True,
        "last_seen": device["last_seen"],
        "firmware": "1.0.0",
        "sales_upto_seq": 0,
        "rejected_sales": 0,
        "last_sale": None,
        "telemetry": None,
        "journal": None,
        "pending_jobs": [],
        "recent_jobs": [],
    }
    missing = client.get("/api/v1/devices/kiosk-404", headers=bearer("read"))
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no device kiosk-404"


def test_the_device_list_pages_by_id_and_filters_by_store_and_online(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    records = DeviceRecords(api_db)
    for n in range(1, 6):
        device = f"kiosk-{n}"
        assign_device(api_db, device, "berlin" if n % 2 else "hamburg")
        records.record_status(device, DeviceStatus(device=device, online=n < 4, bd_seq=1))
    headers = bearer("read")

    first = get(client, "/devices", headers, limit=2)
    second = get(client, "/devices", headers, limit=2, cursor=first["next_cursor"])
    third = get(client, "/devices", headers, limit=2, cursor=second["next_cursor"])
    assert [[d["id"] for d in page["items"]] for page in (first, second, third)] == [
        ["kiosk-1", "kiosk-2"],
        ["kiosk-3", "kiosk-4"],
        ["kiosk-5"],
    ]
    assert (second["has_more"], third["has_more"], third["next_cursor"]) == (True, False, None)
    berlin = get(client, "/devices", headers, store="berlin")
    assert [d["id"] for d in berlin["items"]] == ["kiosk-1", "kiosk-3", "kiosk-5"]
    online = get(client, "/devices", headers, store="berlin", online="true")
    assert [d["id"] for d in online["items"]] == ["kiosk-1", "kiosk-3"]
    offline = get(client, "/devices", headers, online="false")
    assert [d["id"] for d in offline["items"]] == ["kiosk-4", "kiosk-5"]


def test_z_reports_per_device_and_per_store_with_their_totals(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    assign_device(api_db, "kiosk-1", "berlin")
    z_days(api_db, "kiosk-1", 3)
    headers = bearer("read")

    reports = get(client, "/devices/kiosk-1/z-reports", headers)
    assert [r["number"] for r in reports["items"]] == [1, 2, 3]
    assert reports["has_more"] is False
    first = reports["items"][0]
    assert first == {
        "device": "kiosk-1",
        "store": "berlin",
        "number": 1,
        "journal_number": 7,
        "made_at": "2030-03-01T18:00:00Z",
        "opened_at": "2030-03-01T08:00:00Z",
        "shift_id": "shift-1",
        "staff": "ana",
        "currency": "EUR",
        "sales_count": 5,
        "sales_gross": 12_345,
        "refunds_count": 0,
        "refunds_total": 0,
        "voids_count": 0,
        "voids_total": 0,
        "net": 12_345,
        "discounts": 0,
        "rounding": 0,
        "tenders": {"card": 10_345, "cash": 2_000},
        "taxes": [{"rate": 1900, "net": 10_374, "tax": 1_971, "gross": 12_345}],
        "cash_in": 0,
        "cash_out": 0,
        "float_total": 10_000,
        "expected_cash": 12_000,
        "counted_cash": 11_990,
        "difference": -10,
        "grand_total": 12_345,
        "after_sequence": 0,
        "upto_sequence": 0,
    }
    paged = get(client, "/stores/berlin/z-reports", headers, limit=2)
    rest = get(client, "/stores/berlin/z-reports", headers, cursor=paged["next_cursor"])
    assert [r["number"] for r in paged["items"]] == [1, 2]
    assert paged["has_more"] is True
    assert [r["number"] for r in rest["items"]] == [3]
    window = get(
        client,
        "/stores/berlin/z-reports",
        headers,
        since="2030-03-02T00:00:00Z",
        until="2030-03-03T00:00:00Z",
    )
    assert [r["number"] for r in window["items"]] == [2]
    # A device moved to another store: its reports so far still count for the old one.
    assign_device(api_db, "kiosk-1", "hamburg")
    assert get(client, "/stores/hamburg/z-reports", headers)["items"] == []
    assert len(get(client, "/stores/berlin/z-reports", headers)["items"]) == 3
    for path in ("/devices/kiosk-404/z-reports", "/stores/nowhere/z-reports"):
        response = client.get(f"/api/v1{path}", headers=headers)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


def test_stores_come_from_assignments_and_catalogs(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    records = DeviceRecords(api_db)
    for device, store in (("kiosk-1", "berlin"), ("kiosk-2", "berlin"), ("kiosk-3", "hamburg")):
        assign_device(api_db, device, store)
        records.record_status(device, DeviceStatus(device=device, online=True, bd_seq=1))
    records.record_status("kiosk-2", DeviceStatus(device="kiosk-2", online=False, bd_seq=1))
    csv = "sku,name,price,tax_class,barcodes,stock\nP001,Tea,1.50,standard,,\n"
    HubCatalog(api_db, "munich").import_csv(io.StringIO(csv), StoreSettings())

    stores = get(client, "/stores", bearer("read"))

    assert stores == [
        {"id": "berlin", "devices": 2, "online": 1, "catalog_version": None},
        {"id": "hamburg", "devices": 1, "online": 1, "catalog_version": None},
        {"id": "munich", "devices": 0, "online": 0, "catalog_version": 1},
    ]
    mine = get(client, "/stores", bearer("read", store="hamburg"))
    assert [s["id"] for s in mine] == ["hamburg"]


def test_a_device_s_offline_card_payments_show_with_their_limits(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    offline = OfflineCardsReport(
        count=2,
        amount=4_500,
        currency="EUR",
        oldest_age_s=10_800.0,
        max_per_payment=5_000,
        max_total=25_000,
        max_age_s=86_400.0,
        blocked="total_reached",
    )
    DeviceRecords(api_db).record_telemetry("kiosk-1", telemetry("kiosk-1", offline_cards=offline))

    shown = get(client, "/devices/kiosk-1", bearer("read"))["telemetry"]["offline_cards"]

    assert shown == {
        "count": 2,
        "amount": 4_500,
        "currency": "EUR",
        "oldest_age_s": 10_800.0,
        "max_per_payment": 5_000,
        "max_total": 25_000,
        "max_age_s": 86_400.0,
        "blocked": "total_reached",
    }
