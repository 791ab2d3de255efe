"""Access to /api/v1: tokens, scopes and stores, problem-details errors, and the token CLI."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar import delete, get, post
from litestar.testing import TestClient
from peewee import Database

from appliance.mqtt.payloads import DeviceStatus
from hub.api import sales
from hub.api.access import issue_token, revoke_token
from hub.api.app import create_app
from hub.cli import cli
from hub.db import open_hub_database
from hub.ingest import DeviceRecords
from hub.migrations import migrate
from tests.hub.api.conftest import Bearer
from tests.hub.api.sale_documents import store_sales
from tests.hub.api.test_devices_api import z_days
from tests.hub.test_ingest import sale_id_of

Client = TestClient  # type: ignore[type-arg]
PROBLEM_JSON = "application/problem+json"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    return body


@pytest.fixture
def probed(api_db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The app create_app makes, with three probe routes beside the real ones."""

    @post("/probe", sync_to_thread=False)
    def write_probe() -> str:
        return "written"

    @delete("/probe", sync_to_thread=False)
    def delete_probe() -> None:
        return None

    @get("/probe/admin", sync_to_thread=False, opt={"scope": "admin"})
    def admin_probe() -> str:
        return "admin"

    monkeypatch.setattr(sales, "ROUTES", [*sales.ROUTES, write_probe, delete_probe, admin_probe])
    with TestClient(create_app(api_db)) as client:
        yield client


# --- tokens and scopes ------------------------------------------------------------------


def test_no_token_is_401_with_a_problem_and_www_authenticate(client: Client) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer "}):
        response = client.get("/api/v1/sales", headers=headers)
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in body["detail"]


def test_a_wrong_or_revoked_token_is_401(api_db: Database, client: Client) -> None:
    good = issue_token(api_db, "shop", "read")
    token_id = good.id
    secret = good.value.rsplit("_", 1)[1]
    wrong = [
        "not-a-token",
        f"hub_{token_id}_{'x' * len(secret)}",  # the right id, another secret
        f"hub_000000000000_{secret}",  # the right secret, no such id
        f"hub_{token_id}",
    ]
    for value in wrong:
        response = client.get("/api/v1/sales", headers={"Authorization": f"Bearer {value}"})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    headers = {"Authorization": f"Bearer {good.value}"}
    assert client.get("/api/v1/sales", headers=headers).status_code == 200

    assert revoke_token(api_db, token_id) is True

    body = assert_problem(client.get("/api/v1/sales", headers=headers), 401)
    assert body["detail"] == "the API token is unknown or revoked"
    assert revoke_token(api_db, token_id) is False


def test_a_read_token_may_read_but_not_write(probed: Client, bearer: Bearer) -> None:
    read = bearer("read")
    assert probed.get("/api/v1/sales", headers=read).status_code == 200
    for method in ("post", "delete"):
        body = assert_problem(getattr(probed, method)("/api/v1/probe", headers=read), 403)
        assert body["detail"] == "this token's scope is 'read'; this call needs 'write'"
    assert probed.post("/api/v1/probe", headers=bearer("write")).text == "written"
    assert probed.delete("/api/v1/probe", headers=bearer("admin")).status_code == 204


def test_an_admin_route_refuses_a_write_token(probed: Client, bearer: Bearer) -> None:
    for path in ("/api/v1/probe/admin", "/api/v1/webhooks/endpoints"):
        body = assert_problem(probed.get(path, headers=bearer("write")), 403)
        assert body["detail"] == "this token's scope is 'write'; this call needs 'admin'"
        assert probed.get(path, headers=bearer("admin")).status_code == 200


def test_the_schema_needs_no_token(client: Client) -> None:
    assert client.get("/api/v1/schema/openapi.json").status_code == 200


# --- stores -----------------------------------------------------------------------------


def test_a_store_token_never_sees_another_store(
    api_db: Database, client: Client, bearer: Bearer
) -> None:
    records = DeviceRecords(api_db)
    for device, store in (("kiosk-b", "berlin"), ("kiosk-h", "hamburg")):
        store_sales(api_db, device, [1, 2], store=store)
        records.record_status(device, DeviceStatus(device=device, online=True, bd_seq=1))
        z_days(api_db, device, 2)
    berlin = bearer("read", store="berlin")

    def items(path: str, **params: Any) -> list[Any]:
        response = client.get(f"/api/v1{path}", params=params, headers=berlin)
        assert response.status_code == 200, response.text
        body = response.json()
        return body if isinstance(body, list) else body["items"]  # type: ignore[no-any-return]

    assert {s["device"] for s in items("/sales")} == {"kiosk-b"}
    assert items("/sales", store="hamburg") == []
    assert items("/sales", device="kiosk-h") == []
    assert [d["id"] for d in items("/devices")] == ["kiosk-b"]
    assert items("/devices", store="hamburg") == []
    assert [s["id"] for s in items("/stores")] == ["berlin"]
    assert {r["device"] for r in items("/stores/berlin/z-reports")} == {"kiosk-b"}
    assert len(items("/devices/kiosk-b/z-reports")) == 2
    # Another store's things are answered exactly as things that do not exist.
    pairs = [
        (
            "/sales/kiosk-h/" + sale_id_of("kiosk-h", 1),
            "/sales/kiosk-x/" + sale_id_of("kiosk-x", 1),
        ),
        ("/devices/kiosk-h", "/devices/kiosk-x"),
        ("/devices/kiosk-h/z-reports", "/devices/kiosk-x/z-reports"),
        ("/stores/hamburg/z-reports", "/stores/bremen/z-reports"),
    ]
    for hidden, missing in pairs:
        seen = assert_problem(client.get(f"/api/v1{hidden}", headers=berlin), 404)
        unknown = assert_problem(client.get(f"/api/v1{missing}", headers=berlin), 404)
        assert seen["detail"] == unknown["detail"].replace("kiosk-x", "kiosk-h").replace(
            "bremen", "hamburg"
        )
        assert set(seen) == set(unknown)
    # A token for every store sees both.
    everyone = bearer("read")
    listed = client.get("/api/v1/devices", headers=everyone).json()["items"]
    assert [d["id"] for d in listed] == ["kiosk-b", "kiosk-h"]


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/sales?limit=0", "limit"),
        ("/sales?limit=1001", "limit"),
        ("/sales?limit=abc", "limit"),
        ("/sales?since=notadate", "since"),
        ("/sales?received_since=2024-13-01T00:00:00Z", "received_since"),
        ("/sales?kind=gift", "kind"),
        ("/sales?cursor=abc", "cursor"),
        ("/devices?limit=0", "limit"),
        ("/devices?online=maybe", "online"),
        ("/stores/berlin/z-reports?until=yesterday", "until"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    api_db: Database, client: Client, bearer: Bearer, url: str, field: str
) -> None:
    store_sales(api_db, "kiosk-1", [1], store="berlin")
    response = client.get(f"/api/v1{url}", headers=bearer("read"))
    body = assert_problem(response, 422)
    assert body["title"] == "Invalid input"
    assert [error["field"] for error in body["errors"]] == [field]
    assert body["detail"].startswith(f"{field}: ")


# --- the token CLI ------------------------------------------------------------------------


def test_token_create_list_and_revoke_keep_only_a_hash(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    url = f"sqlite:///{path}"
    db = open_hub_database(url)
    migrate(db)
    runner = CliRunner()

    created = runner.invoke(
        cli, ["token", "create", "web-shop", "--scope", "write", "--store", "berlin", "--db", url]
    )

    assert created.exit_code == 0, created.output
    value = created.stdout.strip()
    assert value.startswith("hub_")
    token_id, secret = value[len("hub_") :].split("_", 1)
    assert f"token {token_id}: scope write, store berlin" in created.stderr
    with TestClient(create_app(db)) as client:
        headers = {"Authorization": f"Bearer {value}"}
        assert client.get("/api/v1/sales", headers=headers).status_code == 200

        listed = runner.invoke(cli, ["token", "list", "--db", url])
        assert listed.exit_code == 0, listed.output
        assert token_id in listed.output
        assert "web-shop" in listed.output
        assert "berlin" in listed.output
        assert secret not in listed.output
        assert secret[:8] not in listed.output

        revoked = runner.invoke(cli, ["token", "revoke", token_id, "--db", url])
        assert revoked.exit_code == 0, revoked.output
        assert_problem(client.get("/api/v1/sales", headers=headers), 401)
        again = runner.invoke(cli, ["token", "revoke", token_id, "--db", url])
        assert again.exit_code == 1
        assert f"no active token {token_id}" in again.output
    db.close()

    refused = runner.invoke(cli, ["token", "create", "x", "--scope", "root", "--db", url])
    assert refused.exit_code == 2
    # Nowhere in the database: not the token, not its secret.
    with sqlite3.connect(path) as raw:
        tables = [t for (t,) in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        dump = "\n".join(
            repr(row) for table in tables for row in raw.execute(f'SELECT * FROM "{table}"')
        )
        dump += "\n".join(raw.iterdump())
    assert token_id in dump
    assert secret not in dump
    assert value not in dump
