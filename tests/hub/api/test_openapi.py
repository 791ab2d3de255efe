"""The OpenAPI 3.1 document: checked in beside the code, served as checked in, and complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from hub.api.app import create_app
from hub.api.openapi import DOCUMENT, REGENERATE, current_document, main
from hub.db import open_hub_database
from hub.migrations import migrate

METHODS = ("get", "put", "post", "delete", "patch")
PROBLEM_JSON = "application/problem+json"


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
