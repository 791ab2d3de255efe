"""The OpenAPI 3.1 document: checked in beside the code, served as checked in, and complete,
with a webhook for every event type whose documented body is the one the hub records."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from peewee import Database

from appliance.mqtt.payloads import DeviceStatus, SaleEnvelope, SalesBatch
from hub.api.app import create_app
from hub.api.openapi import DOCUMENT, REGENERATE, WEBHOOK_DATA, current_document, main
from hub.db import open_hub_database
from hub.ingest import SalesIngest
from hub.migrations import migrate
from hub.stores import assign_device
from hub.webhooks.events import EVENT_TYPES
from hub.webhooks.models import WebhookEvent
from hub.webhooks.sources import DeviceEvents, SaleEvents
from tests.hub.api.conftest import Bearer
from tests.hub.test_ingest import sale_document, sale_id_of

METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM_JSON = "application/problem+json"
SIGNATURE_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature"}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
STORE = "linz-1"
DEVICE = "till-1"


@pytest.fixture(scope="module")
def generated() -> str:
    """The document the code makes now."""
    return current_document()


@pytest.fixture(scope="module")
def document(generated: str) -> dict[str, Any]:
    return json.loads(generated)  # type: ignore[no-any-return]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in sorted(document["paths"].items()):
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def test_the_checked_in_document_is_the_one_the_code_makes(generated: str) -> None:
    checked_in = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
    assert checked_in == generated, (
        f"docs/openapi.json is out of date with the code: run `{REGENERATE}` and commit it"
    )


def test_the_served_document_is_the_checked_in_one(tmp_path: Path, generated: str) -> None:
    db = open_hub_database(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(db)
    try:
        with TestClient(create_app(db)) as client:
            response = client.get("/api/v1/schema/openapi.json")  # public: no token
    finally:
        db.close()
    assert response.status_code == 200
    assert response.json() == json.loads(generated)


def test_it_is_openapi_3_1_with_bearer_tokens_on_every_operation(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"BearerToken": {"type": "http", "scheme": "bearer"}}
    found = list(operations(document))
    assert found, "no operation in the document"
    unsecured = [name for name, op in found if op.get("security") != [{"BearerToken": []}]]
    assert unsecured == []


def test_it_holds_the_api_only(document: dict[str, Any]) -> None:
    # The dashboard's pages and the schema's own routes are not part of the API.
    assert [p for p in document["paths"] if not p.startswith("/api/v1/")] == []


def test_every_operation_is_described_and_declares_its_problems(document: dict[str, Any]) -> None:
    missing = []
    for name, operation in operations(document):
        responses = operation["responses"]
        if not operation.get("description", "").strip():
            missing.append(f"{name}: no description (give the handler a docstring)")
        if not operation.get("operationId"):
            missing.append(f"{name}: no operationId")
        wanted = {"401", "403"}
        if operation.get("parameters") or operation.get("requestBody"):
            wanted.add("422")
        if "{" in name:
            wanted.add("404")  # a resource by id: "not found", also for another store's
        missing.extend(
            f"{name}: no {status} response" for status in sorted(wanted - set(responses))
        )
        for status, response in responses.items():
            if status.startswith("4") and PROBLEM_JSON not in response.get("content", {}):
                missing.append(f"{name}: its {status} is not {PROBLEM_JSON}")
        if not any(status.startswith("2") for status in responses):
            missing.append(f"{name}: no success response")
    assert missing == []


def test_the_problem_schemas_say_what_the_bodies_hold(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail"]
    errors = schemas["ValidationProblem"]["allOf"][1]["properties"]["errors"]
    assert errors["items"]["required"] == ["field", "message"]
    sales = document["paths"]["/api/v1/sales"]["get"]["responses"]
    assert sales["401"]["headers"]["WWW-Authenticate"]["schema"] == {"type": "string"}
    assert sales["422"]["content"][PROBLEM_JSON]["schema"] == {
        "$ref": "#/components/schemas/ValidationProblem"
    }
    assert "400" not in sales  # Litestar's name for a validation error; this API says 422


def test_the_command_writes_the_document_and_check_finds_it_stale(tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    target.write_text("{}\n")
    stale = CliRunner().invoke(main, ["--check", "--output", str(target)])
    assert stale.exit_code == 1
    assert f"run `{REGENERATE}`" in stale.output
    written = CliRunner().invoke(main, ["--output", str(target)])
    assert written.exit_code == 0, written.output
    assert CliRunner().invoke(main, ["--check", "--output", str(target)]).exit_code == 0
    text = target.read_text()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- webhooks ---------------------------------------------------------------------------


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """A webhook body as the document describes it, `data` left for its own Struct."""

    type: str
    timestamp: str
    data: msgspec.Raw


def body_schema(document: dict[str, Any], event_type: str) -> dict[str, Any]:
    post = document["webhooks"][event_type]["post"]
    return post["requestBody"]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


def data_components(document: dict[str, Any], event_type: str) -> list[str]:
    """The component names `data` of an event type refers to (several: one of them)."""
    data = body_schema(document, event_type)["properties"]["data"]
    refs = [data["$ref"]] if "$ref" in data else [part["$ref"] for part in data["oneOf"]]
    prefix = "#/components/schemas/"
    assert all(ref.startswith(prefix) for ref in refs)
    return [ref.removeprefix(prefix) for ref in refs]


def is_exactly(data: bytes, struct: type[msgspec.Struct]) -> bool:
    """Whether `data` decodes into `struct` with nothing missing, left over or changed."""
    try:
        value = msgspec.json.decode(data, type=struct)
    except msgspec.ValidationError:
        return False
    return msgspec.to_builtins(value) == json.loads(data)  # type: ignore[no-any-return]


def test_every_event_type_is_a_webhook_with_its_headers_body_and_answer(
    document: dict[str, Any],
) -> None:
    webhooks = document["webhooks"]
    assert sorted(webhooks) == sorted(EVENT_TYPES)
    schemas = document["components"]["schemas"]
    for event_type in EVENT_TYPES:
        post = webhooks[event_type]["post"]
        assert post["description"].strip(), event_type
        headers = {p["name"]: p for p in post["parameters"] if p["in"] == "header"}
        assert set(headers) == SIGNATURE_HEADERS
        assert all(header["required"] for header in headers.values())
        body = body_schema(document, event_type)
        assert body["required"] == ["type", "timestamp", "data"]
        assert body["properties"]["type"]["const"] == event_type
        assert body["properties"]["timestamp"]["format"] == "date-time"
        assert "2XX" in post["responses"]  # a 2xx answer is a delivery
        # The document's components are those of the Structs the hub makes `data` from.
        structs = WEBHOOK_DATA[event_type]
        assert data_components(document, event_type) == [t.__name__ for t in structs]
        for struct in structs:
            made = msgspec.json.schema(struct)
            name = made["$ref"].rsplit("/", 1)[1]
            held = schemas[name]
            assert set(held["properties"]) == set(made["$defs"][name]["properties"]), name
            assert set(held["required"]) == set(made["$defs"][name]["required"]), name


def test_stock_changed_tells_its_kinds_apart_by_cause(document: dict[str, Any]) -> None:
    data = body_schema(document, "stock.changed")["properties"]["data"]
    assert data["discriminator"]["propertyName"] == "cause"
    mapping = data["discriminator"]["mapping"]
    assert mapping["sale"] == "#/components/schemas/StockData"
    assert mapping["count"] == "#/components/schemas/StockCountData"
    assert mapping["web_order"] == "#/components/schemas/StockMovementData"
    assert {ref["$ref"] for ref in data["oneOf"]} == set(mapping.values())


def test_the_check_refuses_data_the_struct_does_not_describe() -> None:
    (sale_kind,) = [t for t in WEBHOOK_DATA["stock.changed"] if t.__name__ == "StockData"]
    data = {"store": "s", "sku": "A", "level": 3, "cause": "sale", "sale_id": "x", "device": "d"}
    assert is_exactly(json.dumps(data).encode(), sale_kind)
    assert not is_exactly(json.dumps({**data, "extra": 1}).encode(), sale_kind)
    assert not is_exactly(json.dumps({**data, "level": "3"}).encode(), sale_kind)
    del data["device"]
    assert not is_exactly(json.dumps(data).encode(), sale_kind)


def sales(*kinds: str) -> SalesBatch:
    """A batch of the device's sale documents of these kinds, one line of SKU-1 each."""
    envelopes = [
        SaleEnvelope(
            seq=seq,
            sale_id=sale_id_of(DEVICE, seq),
            document=msgspec.Raw(sale_document(DEVICE, seq, kind=kind)),
        )
        for seq, kind in enumerate(kinds, start=1)
    ]
    return SalesBatch(device=DEVICE, sales=envelopes)


def record_every_kind_of_event(
    client: TestClient[Any], admin: dict[str, str], db: Database
) -> None:
    """Make the hub record each event type, and stock.changed of each cause, the real way."""
    hook = {"url": "http://127.0.0.1:9/hooks", "event_types": list(EVENT_TYPES)}
    assert client.post("/api/v1/webhooks/endpoints", json=hook, headers=admin).status_code == 201
    products = f"/api/v1/stores/{STORE}/products"
    record = {"name": "Coffee", "price": 250, "currency": "EUR", "tax_class": "standard"}
    for sku in ("SKU-1", "GONE-1"):
        created = client.put(f"{products}/{sku}", json=record, headers=admin)
        assert created.status_code == 201, created.text
    gone = client.delete(f"{products}/GONE-1", headers={**admin, "If-Match": '"2"'})
    assert gone.status_code == 204, gone.text
    stock = f"/api/v1/stores/{STORE}/stock/SKU-1"
    assert client.post(f"{stock}/count", json={"count": 10}, headers=admin).status_code == 200
    goods_in = {"delta": 5, "reason": "goods_in", "reference": "DN-1"}
    assert client.post(f"{stock}/movements", json=goods_in, headers=admin).status_code == 201
    assign_device(db, DEVICE, STORE)
    SalesIngest(db, on_stored=SaleEvents(db)).ingest(DEVICE, sales("sale", "refund", "void"))
    for online in (True, False):
        DeviceEvents(db)(DEVICE, DeviceStatus(device=DEVICE, online=online, bd_seq=1))


def test_every_recorded_event_body_is_the_documented_one(
    client: TestClient[Any], bearer: Bearer, api_db: Database, document: dict[str, Any]
) -> None:
    record_every_kind_of_event(client, bearer(), api_db)
    query = WebhookEvent.select(WebhookEvent.type, WebhookEvent.body)
    bodies = [(str(t), str(body).encode()) for t, body in query.tuples().execute(api_db)]
    seen: set[tuple[str, str]] = set()
    for event_type, raw in bodies:
        body = msgspec.json.decode(raw, type=Body)
        assert body.type == event_type
        assert body.type == body_schema(document, event_type)["properties"]["type"]["const"]
        assert RFC3339_UTC.fullmatch(body.timestamp), body.timestamp
        raw_data = bytes(body.data)
        matching = [t for t in WEBHOOK_DATA[event_type] if is_exactly(raw_data, t)]
        assert len(matching) == 1, f"{event_type}: {raw_data!r} is {matching}"  # oneOf
        data = json.loads(raw_data)
        schema = body_schema(document, event_type)["properties"]["data"]
        if "discriminator" in schema:
            discriminator = schema["discriminator"]
            value = data[discriminator["propertyName"]]
            assert discriminator["mapping"][value].endswith(f"/{matching[0].__name__}")
        seen.add((event_type, data.get("cause") or data.get("action") or ""))
    assert {event_type for event_type, _ in seen} == set(EVENT_TYPES)
    assert {kind for _, kind in seen} >= {"sale", "goods_in", "count", "created", "deleted"}
