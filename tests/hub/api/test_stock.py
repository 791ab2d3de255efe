"""/api/v1/stores/{store}/stock: levels that fold in the sales as they land and the stock
movements recorded since the count, movements once per reference, stocktakes, the
stock-only version each makes for the devices, stock.changed events, and store isolation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from litestar.testing import TestClient
from peewee import Database

from appliance.core.sale import Sale, SaleLine
from appliance.core.tender import Tender
from appliance.mqtt.payloads import CatalogDelta, SaleEnvelope, SalesBatch
from appliance.store.documents import encode_document
from hub.catalog import HubCatalog
from hub.catalog_publisher import CatalogPublisher
from hub.catalog_push import CatalogPush
from hub.ingest import SalesIngest
from hub.stock_corrections import StockCorrections
from hub.stock_levels import current_levels
from hub.stores import assign_device
from hub.webhooks.models import WebhookEvent
from tests.hub.api.conftest import Bearer
from tests.hub.api.test_products import STORE, created, put, record

STOCK = f"/api/v1/stores/{STORE}/stock"
DEVICE = "till-1"


def sold(seq: int, sku: str, quantity: int, at: datetime) -> SaleEnvelope:
    """A device's committed sale (or, negative, refund) of one line, as it uploads it."""
    amount = 250 * quantity
    document = Sale(
        id=f"{DEVICE}-{seq:04d}",
        kind="sale" if quantity > 0 else "refund",
        device_id=DEVICE,
        created_at=at,
        currency="EUR",
        prices_include_tax=True,
        tax_rounding="line",
        lines=(SaleLine(1, sku, sku, quantity, "each", 250, 0, amount, "standard", 2000),),
        taxes=(),
        discount_total=0,
        total=amount,
        tenders=(Tender("cash", amount),),
        sequence=seq,
        receipt_number=f"R-{seq:04d}",
    )
    return SaleEnvelope(
        seq=seq, sale_id=document.id, document=msgspec.Raw(encode_document(document))
    )


def counted(client: TestClient[Any], headers: dict[str, str], sku: str, count: int) -> Any:
    response = client.post(f"{STOCK}/{sku}/count", json={"count": count}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def move(client: TestClient[Any], headers: dict[str, str], sku: str, **body: Any) -> Any:
    return client.post(f"{STOCK}/{sku}/movements", json=body, headers=headers)


def test_a_level_is_the_count_less_the_sales_since_plus_the_movements_since(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    put(client, admin, "LOOSE", record(2, stock_tracked=False))
    created(client, admin, "NEVER", 3)
    count = counted(client, admin, "TIN-1", 20)
    assert (count["level"], count["counted"], count["sold"], count["moved"]) == (20, 20, 0, 0)
    at = datetime.fromisoformat(count["counted_at"])
    assign_device(api_db, DEVICE, STORE)
    batch = SalesBatch(
        device=DEVICE,
        sales=[
            sold(1, "TIN-1", 4, at - timedelta(hours=1)),  # before the count: in it already
            # Sold just after the count (and well before the recount further down).
            sold(2, "TIN-1", 3, at + timedelta(milliseconds=1)),
            sold(3, "TIN-1", -1, at + timedelta(milliseconds=2)),  # a refund puts one back
            sold(4, "LOOSE", 5, at + timedelta(milliseconds=2)),
        ],
    )
    assert SalesIngest(api_db).apply(DEVICE, batch) == 4
    assert (
        move(client, admin, "TIN-1", delta=10, reason="goods_in", reference="DN-77").status_code
        == 201
    )
    damaged = move(client, admin, "TIN-1", delta=-2, reason="damage")
    assert (damaged.status_code, damaged.json()["level"]) == (201, 26)

    level = client.get(f"{STOCK}/TIN-1", headers=admin).json()
    assert (level["counted"], level["sold"], level["moved"], level["level"]) == (20, 2, 8, 26)
    assert level["oversold"] is False
    assert current_levels(api_db, STORE, ["TIN-1", "LOOSE", "NEVER", "GONE"]) == {
        "TIN-1": 26,
        "LOOSE": None,  # not stock-tracked
        "NEVER": None,  # never counted
        "GONE": None,
    }
    listed = client.get(STOCK, headers=admin).json()
    assert [(s["sku"], s["level"]) for s in listed["items"]] == [("NEVER", None), ("TIN-1", 26)]
    loose = client.get(f"{STOCK}/LOOSE", headers=admin).json()
    assert (loose["stock_tracked"], loose["level"]) == (False, None)

    # A new count starts again: earlier sales and movements no longer count.
    assert counted(client, admin, "TIN-1", 5)["level"] == 5
    assert current_levels(api_db, STORE, ["TIN-1"]) == {"TIN-1": 5}
    history = client.get(f"{STOCK}/TIN-1/movements", params={"limit": 1}, headers=admin).json()
    assert [(m["delta"], m["reference"]) for m in history["items"]] == [(10, "DN-77")]
    rest = client.get(
        f"{STOCK}/TIN-1/movements", params={"cursor": history["next_cursor"]}, headers=admin
    ).json()
    assert [(m["delta"], m["reason"]) for m in rest["items"]] == [(-2, "damage")]
    assert (rest["next_cursor"], rest["has_more"], history["has_more"]) == (None, False, True)


def test_a_repeated_reference_is_the_movement_already_recorded(
    client: TestClient[Any], bearer: Bearer
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    counted(client, admin, "TIN-1", 10)
    order = {"delta": -3, "reason": "web_order", "reference": "WEB-1001"}
    first = move(client, admin, "TIN-1", **order)
    again = move(client, admin, "TIN-1", **order)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["level"] == first.json()["level"] == 7  # counted once
    other = move(client, admin, "TIN-1", delta=-4, reason="web_order", reference="WEB-1001")
    assert (other.status_code, other.json()["movement"]) == (409, first.json()["id"])
    assert client.get(f"{STOCK}/TIN-1", headers=admin).json()["level"] == 7

    # References are per store.
    client.put("/api/v1/stores/graz-1/products/TIN-1", json=record(), headers=admin)
    client.post("/api/v1/stores/graz-1/stock/TIN-1/count", json={"count": 1}, headers=admin)
    graz = client.post("/api/v1/stores/graz-1/stock/TIN-1/movements", json=order, headers=admin)
    assert (graz.status_code, graz.json()["level"]) == (201, -2)


def test_a_movement_needs_a_counted_stock_tracked_product_and_a_reason(
    client: TestClient[Any], bearer: Bearer
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    put(client, admin, "LOOSE", record(2, stock_tracked=False))
    assert move(client, admin, "TIN-1", delta=5, reason="goods_in").status_code == 409  # no count
    assert move(client, admin, "LOOSE", delta=5, reason="goods_in").status_code == 409
    loose = client.post(f"{STOCK}/LOOSE/count", json={"count": 3}, headers=admin)
    assert loose.status_code == 409
    assert move(client, admin, "NOPE", delta=5, reason="goods_in").status_code == 404
    counted(client, admin, "TIN-1", 1)
    for body, field in (
        ({"delta": 0, "reason": "goods_in"}, "delta"),
        ({"delta": 1, "reason": "theft"}, "reason"),
        ({"delta": 10**10, "reason": "goods_in"}, "delta"),
        ({"delta": 1, "reason": "goods_in", "reference": ""}, "reference"),
    ):
        refused = move(client, admin, "TIN-1", **body)
        assert refused.status_code == 422, body
        assert [e["field"] for e in refused.json()["errors"]] == [field]
    negative = client.post(f"{STOCK}/TIN-1/count", json={"count": -1}, headers=admin)
    assert (negative.status_code, negative.json()["errors"][0]["field"]) == (422, "count")


def test_a_count_and_a_movement_each_send_the_new_level_to_the_devices(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    created(client, admin, "TIN-2", 2)
    catalog = HubCatalog(api_db, STORE)
    counted(client, admin, "TIN-1", 12)  # v3: a stocktake is an authoritative level
    count_delta = catalog.delta(2)
    assert count_delta is not None
    assert [(p.sku, p.stock) for p in count_delta.upserts] == [("TIN-1", 12)]
    move(client, admin, "TIN-1", delta=6, reason="goods_in")  # v4: a stock-only version
    assert catalog.version() == 4
    stock_delta = catalog.delta(3)
    assert stock_delta is not None
    assert [(p.sku, p.stock) for p in stock_delta.upserts] == [("TIN-1", 18)]
    snapshot = {p.sku: p.stock for chunk in catalog.snapshot_chunks() for p in chunk.products}
    assert snapshot == {"TIN-1": 18, "TIN-2": None}
    # Putting it back to the level last sent sends nothing new.
    move(client, admin, "TIN-1", delta=-6, reason="adjustment")
    move(client, admin, "TIN-1", delta=6, reason="adjustment")
    assert catalog.version() == 6


def test_the_workers_corrections_keep_the_movements(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    at = datetime.fromisoformat(counted(client, admin, "TIN-1", 10)["counted_at"])
    move(client, admin, "TIN-1", delta=5, reason="goods_in")
    sent: list[bytes] = []
    publisher = CatalogPublisher(api_db, lambda _topic, data: sent.append(data))
    CatalogPush(api_db, publisher).push(STORE)  # everything so far went to no device
    assign_device(api_db, DEVICE, STORE)
    batch = SalesBatch(device=DEVICE, sales=[sold(1, "TIN-1", 2, at + timedelta(minutes=1))])
    corrections = StockCorrections(api_db, publisher)
    corrections.sales_committed(DEVICE, SalesIngest(api_db).ingest(DEVICE, batch))
    corrections.run()
    (data,) = sent
    delta = msgspec.json.decode(data, type=CatalogDelta)
    assert [(p.sku, p.stock) for p in delta.upserts] == [("TIN-1", 13)]  # 10 - 2 + 5


def test_a_count_and_a_movement_are_stock_changed_events_recorded_once(
    client: TestClient[Any], bearer: Bearer, api_db: Database
) -> None:
    admin = bearer()
    hook = {"url": "https://shop.example/hooks", "event_types": ["stock.changed"], "store": STORE}
    assert client.post("/api/v1/webhooks/endpoints", json=hook, headers=admin).status_code == 201
    created(client, admin, "TIN-1")
    counted(client, admin, "TIN-1", 10)
    order = {"delta": -1, "reason": "web_order", "reference": "WEB-7"}
    move(client, admin, "TIN-1", **order)
    move(client, admin, "TIN-1", **order)  # the same order again: no second event
    query = WebhookEvent.select(WebhookEvent.type, WebhookEvent.body).order_by(
        WebhookEvent.created_at
    )
    events = [(t, json.loads(body)["data"]) for t, body in query.tuples().execute(api_db)]
    assert [(t, d["sku"], d["level"], d["cause"]) for t, d in events] == [
        ("stock.changed", "TIN-1", 10, "count"),
        ("stock.changed", "TIN-1", 9, "web_order"),
    ]
    assert events[1][1]["movement"]["reference"] == "WEB-7"


def test_another_stores_stock_is_not_found(client: TestClient[Any], bearer: Bearer) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    counted(client, admin, "TIN-1", 3)
    graz = bearer("write", store="graz-1")
    assert client.get(STOCK, headers=graz).status_code == 404
    assert client.get(f"{STOCK}/TIN-1", headers=graz).status_code == 404
    assert move(client, graz, "TIN-1", delta=1, reason="goods_in").status_code == 404
    assert client.post(f"{STOCK}/TIN-1/count", json={"count": 9}, headers=graz).status_code == 404
    assert client.get(f"{STOCK}/TIN-1", headers=admin).json()["level"] == 3
    assert client.get(f"{STOCK}/TIN-1", headers=bearer("read", store=STORE)).status_code == 200


def test_times_are_rfc3339_utc(client: TestClient[Any], bearer: Bearer) -> None:
    admin = bearer()
    created(client, admin, "TIN-1")
    at = counted(client, admin, "TIN-1", 3)["counted_at"]
    assert at.endswith("Z")
    moment = datetime.fromisoformat(at)
    assert moment.tzinfo == UTC and abs(datetime.now(UTC) - moment) < timedelta(hours=1)
