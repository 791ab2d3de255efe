"""GET /api/v1/sales: whole documents, cursor pages that hold under concurrent inserts, filters."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient
from peewee import Database

from hub.models import Sale
from tests.hub.api.conftest import Bearer
from tests.hub.api.sale_documents import (
    card_sale,
    minutes,
    refund_of,
    rfc3339,
    store_documents,
    store_sales,
)
from tests.hub.test_ingest import sale_id_of

Client = TestClient  # type: ignore[type-arg]


def pages(client: Client, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, following next_cursor while has_more."""
    found = []
    while True:
        response = client.get("/api/v1/sales", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body)
        if not body["has_more"]:
            return found
        params["cursor"] = body["next_cursor"]


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def test_a_sale_and_its_refund_come_back_whole_with_lines_taxes_and_masked_card(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    sale = card_sale("kiosk-1", 1, at=minutes(1))
    refund = refund_of(sale, 2, at=minutes(30))
    store_sales(api_db, "kiosk-1", [], store="berlin")
    store_documents(api_db, "kiosk-1", [sale, refund], received=minutes(31))

    response = client.get(f"/api/v1/sales/kiosk-1/{sale.id}", headers=bearer("read"))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": sale.id,
        "device": "kiosk-1",
        "seq": 1,
        "store": "berlin",
        "kind": "sale",
        "created_at": "2024-05-01T09:01:00Z",
        "received_at": "2024-05-01T09:31:00Z",
        "clock_verified": True,
        "currency": "EUR",
        "total": 739,
        "receipt_number": "R-000001",
        "prices_include_tax": True,
        "tax_rounding": "line",
        "lines": [
            {
                "line_no": 1,
                "sku": "COF-1",
                "name": "Coffee",
                "quantity": 2,
                "measure": "each",
                "unit_price": 250,
                "discount": 0,
                "amount": 500,
                "tax_class": "std",
                "tax_rate": 1900,
                "stock_tracked": True,
                "barcode": "4006381333931",
                "refers_to_line": None,
            },
            {
                "line_no": 2,
                "sku": "BAN-1",
                "name": "Bananas",
                "quantity": 1200,
                "measure": "weight",
                "unit_price": 199,
                "discount": 0,
                "amount": 239,
                "tax_class": "reduced",
                "tax_rate": 700,
                "stock_tracked": False,
                "barcode": None,
                "refers_to_line": None,
            },
        ],
        "taxes": [
            {"tax_class": "std", "rate": 1900, "net": 420, "tax": 80, "gross": 500},
            {"tax_class": "reduced", "rate": 700, "net": 223, "tax": 16, "gross": 239},
        ],
        "tenders": [
            {
                "kind": "card",
                "amount": 739,
                "tendered": 0,
                "reference": "TID-42/0815",
                "card_mask": "**** **** **** 1234",
            }
        ],
        "discount_total": 0,
        "rounding": 0,
        "staff": "anna",
        "approved_by": "",
        "reason": "",
        "references": None,
    }
    back = client.get(f"/api/v1/sales/kiosk-1/{refund.id}", headers=bearer("read")).json()
    assert (back["kind"], back["total"], back["references"], back["reason"]) == (
        "refund",
        -250,
        sale.id,
        "damaged",
    )
    assert back["lines"][0]["refers_to_line"] == 1
    assert back["tenders"] == [
        {"kind": "cash", "amount": -250, "tendered": 0, "reference": "", "card_mask": ""}
    ]


def test_a_missing_sale_is_a_404_problem(client: Client, bearer: Bearer) -> None:
    response = client.get("/api/v1/sales/kiosk-1/nope", headers=bearer("read"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "no sale nope of device kiosk-1"


def test_paging_misses_and_repeats_nothing_while_sales_keep_arriving(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    store_sales(api_db, "kiosk-1", range(1, 151), store="berlin")
    store_sales(api_db, "kiosk-2", range(1, 101), store="berlin")
    headers = bearer("read")
    seen: list[str] = []
    cursor = None
    arrivals = iter(
        [
            # A device back from a day offline: its sales are older than any stored yet.
            lambda: store_sales(api_db, "kiosk-late", range(1, 31), store="berlin"),
            lambda: store_sales(api_db, "kiosk-1", range(151, 171)),
            lambda: store_sales(api_db, "kiosk-2", range(101, 111)),
        ]
    )
    sizes = []
    while True:
        params: dict[str, Any] = {"store": "berlin", "limit": 100}
        if cursor is not None:
            params["cursor"] = cursor
        body = client.get("/api/v1/sales", params=params, headers=headers).json()
        sizes.append(len(body["items"]))
        seen.extend(f"{item['device']}/{item['id']}" for item in body["items"])
        cursor = body["next_cursor"]
        arrive = next(arrivals, None)
        if arrive is not None:
            arrive()
        elif not body["has_more"]:
            break

    stored = Sale.select(Sale.device, Sale.sale_id).order_by(Sale.id).tuples().execute(api_db)
    assert seen == [f"{device}/{sale_id}" for device, sale_id in stored]
    assert len(seen) == len(set(seen)) == 250 + 30 + 20 + 10
    assert sizes[:3] == [100, 100, 100]
    # The last cursor, kept, finds exactly what arrives later, and nothing before.
    store_sales(api_db, "kiosk-late", [31, 32])
    later = client.get("/api/v1/sales", params={"cursor": cursor}, headers=headers).json()
    assert ids(later) == [sale_id_of("kiosk-late", 31), sale_id_of("kiosk-late", 32)]
    assert later["has_more"] is False
    empty = client.get("/api/v1/sales", params={"cursor": later["next_cursor"]}, headers=headers)
    assert empty.json() == {"items": [], "next_cursor": later["next_cursor"], "has_more": False}


def test_filters_by_store_device_kind_and_time(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    store_sales(api_db, "kiosk-1", range(1, 6), store="berlin", received=minutes(100))
    store_sales(api_db, "kiosk-2", range(1, 4), store="hamburg", received=minutes(200))
    sale = card_sale("kiosk-2", 4, at=minutes(50))
    store_documents(api_db, "kiosk-2", [sale, refund_of(sale, 5, at=minutes(60))])
    headers = bearer("read")

    def listed(**params: Any) -> list[str]:
        response = client.get("/api/v1/sales", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [f"{item['device']}:{item['seq']}" for item in response.json()["items"]]

    assert listed(store="berlin") == [f"kiosk-1:{s}" for s in range(1, 6)]
    assert listed(device="kiosk-2") == [f"kiosk-2:{s}" for s in range(1, 6)]
    assert listed(kind="refund") == ["kiosk-2:5"]
    assert listed(store="hamburg", kind="sale") == [f"kiosk-2:{s}" for s in range(1, 5)]
    # since is inclusive, until exclusive, both on the device's created_at.
    assert listed(since=rfc3339(minutes(2)), until=rfc3339(minutes(4))) == [
        "kiosk-1:2",
        "kiosk-1:3",
        "kiosk-2:2",
        "kiosk-2:3",
    ]
    assert listed(since="2024-05-01T11:00:00+02:00", until="2024-05-01T09:02:00Z") == [
        "kiosk-1:1",
        "kiosk-2:1",
    ]
    # kiosk-1's sales were stored at minute 100, the rest later.
    assert listed(received_since=rfc3339(minutes(150)), kind="sale") == [
        f"kiosk-2:{s}" for s in range(1, 5)
    ]
    assert listed(store="nowhere") == []


def test_a_store_token_sees_its_store_only(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    store_sales(api_db, "kiosk-1", [1, 2], store="berlin")
    store_sales(api_db, "kiosk-2", [1], store="hamburg")
    store_sales(api_db, "kiosk-3", [1])  # a device in no store yet
    berlin = bearer("read", store="berlin")

    listed = client.get("/api/v1/sales", headers=berlin).json()
    assert [(i["device"], i["seq"]) for i in listed["items"]] == [("kiosk-1", 1), ("kiosk-1", 2)]
    other = client.get("/api/v1/sales", params={"store": "hamburg"}, headers=berlin)
    assert (other.status_code, other.json()["items"]) == (200, [])
    by_device = client.get("/api/v1/sales", params={"device": "kiosk-2"}, headers=berlin)
    assert by_device.json()["items"] == []
    hidden = client.get(f"/api/v1/sales/kiosk-2/{sale_id_of('kiosk-2', 1)}", headers=berlin)
    missing = client.get(f"/api/v1/sales/kiosk-2/{sale_id_of('kiosk-2', 9)}", headers=berlin)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == f"no sale {sale_id_of('kiosk-2', 1)} of device kiosk-2"
    unassigned = client.get(f"/api/v1/sales/kiosk-3/{sale_id_of('kiosk-3', 1)}", headers=berlin)
    assert unassigned.status_code == 404
    everyone = client.get("/api/v1/sales", headers=bearer("read")).json()
    assert len(everyone["items"]) == 4


def test_a_cursor_of_another_list_or_a_made_up_one_is_422_naming_it(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    store_sales(api_db, "kiosk-1", [1, 2], store="berlin")
    store_sales(api_db, "kiosk-2", [1], store="berlin")
    headers = bearer("read")
    devices = client.get("/api/v1/devices", params={"limit": 1}, headers=headers).json()
    for cursor in (devices["next_cursor"], "bm90IGEgY3Vyc29y", "%%%"):
        response = client.get("/api/v1/sales", params={"cursor": cursor}, headers=headers)
        assert response.status_code == 422, cursor
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == ["cursor"]


def test_a_time_without_its_offset_is_422(client: Client, bearer: Bearer) -> None:
    response = client.get(
        "/api/v1/sales", params={"until": "2024-05-01T09:00:00"}, headers=bearer("read")
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "field": "until",
            "message": "an RFC 3339 time needs its offset, e.g. 2024-05-01T00:00:00Z",
        }
    ]
