"""Input the types let through but the database cannot take is a 422 naming it, never a 500.

Each runs on SQLite and PostgreSQL: a NUL character PostgreSQL refuses in text, an id
past 64 bits SQLite cannot bind, a time that leaves the calendar once moved to UTC.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.hub.api.conftest import Bearer

Client = TestClient[Any]
HUGE = "1" * 30
ENDPOINTS = "/api/v1/webhooks/endpoints"


def cursor(text: str) -> str:
    """A cursor as the API encodes one, around any text."""
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def assert_422(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in response.json()["errors"]], response.text


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/sales", {"cursor": cursor("sales:²")}, "cursor"),
        ("/sales", {"cursor": cursor("sales:٣")}, "cursor"),
        ("/sales", {"cursor": cursor(f"sales:{HUGE}")}, "cursor"),
        ("/webhooks/deliveries", {"cursor": cursor(f"deliveries:{HUGE}")}, "cursor"),
        ("/sales", {"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ("/sales", {"until": "9999-12-31T23:59:59-14:00"}, "until"),
        (f"/webhooks/deliveries/{HUGE}", {}, "delivery_id"),
        ("/sales", {"device": "till\x001"}, "device"),
        ("/sales", {"store": "\x00"}, "store"),
        ("/sales/till%001/s-1", {}, "device"),
        ("/webhooks/endpoints/ep%00", {}, "endpoint_id"),
        ("/devices", {"cursor": "a\x00"}, "cursor"),
    ],
)
def test_a_bad_query_or_path_is_422_naming_it(
    client: Client, bearer: Bearer, path: str, params: dict[str, str], field: str
) -> None:
    assert_422(client.get(f"/api/v1{path}", params=params, headers=bearer()), field)


def test_a_replay_of_a_delivery_id_past_64_bits_is_422(client: Client, bearer: Bearer) -> None:
    response = client.post(f"/api/v1/webhooks/deliveries/{HUGE}/replay", headers=bearer())
    assert_422(response, "delivery_id")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"store": "s" * 65}, "store"),
        ({"description": "night\x00shift"}, "description"),
        ({"store": "berlin\x00"}, "store"),
        ({"event_types": ["sale.created\x00"]}, "event_types[0]"),
        ({"url": "http://shop.example/\x00"}, "url"),
    ],
)
def test_a_bad_endpoint_body_is_422_naming_the_field(
    client: Client, bearer: Bearer, change: dict[str, Any], field: str
) -> None:
    body = {"url": "http://shop.example/hooks", "event_types": ["sale.created"], **change}
    assert_422(client.post(ENDPOINTS, json=body, headers=bearer()), field)
    assert client.get(ENDPOINTS, headers=bearer()).json()["items"] == []


def test_a_store_of_64_characters_is_taken(client: Client, bearer: Bearer) -> None:
    body = {"url": "http://shop.example/hooks", "event_types": ["sale.created"], "store": "s" * 64}
    response = client.post(ENDPOINTS, json=body, headers=bearer())
    assert response.status_code == 201, response.text
    assert response.json()["store"] == "s" * 64


def test_a_nul_in_a_nested_json_string_is_422_naming_its_place(
    client: Client, bearer: Bearer
) -> None:
    response = client.put(
        "/api/v1/stores/berlin/products/SKU-1",
        json={"name": "Tea", "price": 250, "extra": {"notes": ["ok", "bad\x00"]}},
        headers=bearer(),
    )
    assert_422(response, "extra.notes[1]")


@pytest.mark.parametrize(
    "url",
    [
        "http://shop.example/a b",
        " http://shop.example/hooks",
        "http://shop.example/hooks\n",
        "http://shop.example/\thooks",
        "http://shop.example/\x7fhooks",
        "http://user:secret@shop.example/hooks",
        "https://token@shop.example/hooks",
        "http://:secret@shop.example/hooks",
    ],
)
def test_an_endpoint_url_with_spaces_controls_or_credentials_is_422(
    client: Client, bearer: Bearer, url: str
) -> None:
    body = {"url": url, "event_types": ["sale.created"]}
    assert_422(client.post(ENDPOINTS, json=body, headers=bearer()), "url")
    assert client.get(ENDPOINTS, headers=bearer()).json()["items"] == []
