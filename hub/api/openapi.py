"""The integration API's OpenAPI 3.1 document: its error responses, and the copy in docs/.

Litestar writes an operation's errors as its own JSON shape and calls a validation error
400; this API answers every error as RFC 9457 problem details and bad input as 422
(hub/api/problems.py). `finish_document` makes the document say so for every /api/v1
operation: 401 and 403 (the token guard covers them all), 422 where input is checked,
and each error a handler `raises` as `application/problem+json`.

`python -m hub.api.openapi` writes docs/openapi.json; `--check` fails when it is stale.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from litestar import Router
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.serialization import encode_json

from hub.api.problems import PROBLEM_JSON

if TYPE_CHECKING:
    from litestar import Litestar

API_PREFIX = "/api/v1/"
SCHEMA_PREFIX = "/api/v1/schema"
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = "python -m hub.api.openapi"

_VALIDATION = "Validation Exception"  # how Litestar names its validation error's schema
_FINISHED = "openapi_problems_described"  # app.state key
_PROBLEM = "Problem"
_VALIDATION_PROBLEM = "ValidationProblem"
_DESCRIPTIONS = {
    "401": "No token, or an unknown or revoked one (`WWW-Authenticate: Bearer`).",
    "403": "The token's scope does not allow this call.",
    "422": "Invalid input: `errors` names each wrong field.",
}


def _problem_schemas() -> dict[str, Schema]:
    text, integer = Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.INTEGER)
    problem = Schema(
        type=OpenAPIType.OBJECT,
        description="RFC 9457 problem details; some problems add members of their own.",
        required=["type", "title", "status", "detail"],
        properties={"type": text, "title": text, "status": integer, "detail": text},
    )
    error = Schema(
        type=OpenAPIType.OBJECT,
        required=["field", "message"],
        properties={"field": text, "message": text},
    )
    validation = Schema(
        all_of=[
            Reference(ref=f"#/components/schemas/{_PROBLEM}"),
            Schema(
                type=OpenAPIType.OBJECT,
                required=["errors"],
                properties={"errors": Schema(type=OpenAPIType.ARRAY, items=error)},
            ),
        ],
        description="Invalid input: each wrong field (a query or path parameter, or a body path).",
    )
    return {_PROBLEM: problem, _VALIDATION_PROBLEM: validation}


def _problem(status: str, description: str) -> OpenAPIResponse:
    name = _VALIDATION_PROBLEM if status == "422" else _PROBLEM
    headers: dict[str, OpenAPIHeader | Reference] | None = None
    if status == "401":
        headers = {
            "WWW-Authenticate": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING), description="`Bearer`"
            )
        }
    return OpenAPIResponse(
        description=description,
        headers=headers,
        content={
            PROBLEM_JSON: OpenAPIMediaType(schema=Reference(ref=f"#/components/schemas/{name}"))
        },
    )


def _litestar_errors(response: OpenAPIResponse) -> list[Schema] | None:
    """The exception schemas of an error response Litestar made (None: one a handler made)."""
    media = next(iter((response.content or {}).values()), None)
    schema = media.schema if media is not None else None
    if not isinstance(schema, Schema):
        return None
    parts = schema.one_of if schema.one_of else [schema]
    if all(isinstance(p, Schema) and p.required == ["detail", "status_code"] for p in parts):
        return [p for p in parts if isinstance(p, Schema)]
    return None


def _operations(document: OpenAPI) -> Iterator[Operation]:
    for path, item in (document.paths or {}).items():
        if not path.startswith(API_PREFIX) or path.startswith(SCHEMA_PREFIX):
            continue
        for method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
            operation = getattr(item, method, None)
            if operation is not None:
                yield operation


def _finish(operation: Operation) -> None:
    responses = operation.responses if operation.responses is not None else {}
    for status, response in list(responses.items()):
        if not isinstance(response, OpenAPIResponse) or not status.startswith(("4", "5")):
            continue
        errors = _litestar_errors(response)
        if errors is None:
            continue  # the handler described it itself
        validation = [e for e in errors if e.description == _VALIDATION]
        if status == "400" and validation:
            responses["422"] = _problem("422", _DESCRIPTIONS["422"])
            if len(validation) == len(errors):
                del responses[status]
                continue
        responses[status] = _problem(status, _DESCRIPTIONS.get(status, response.description))
    for status in ("401", "403"):
        responses.setdefault(status, _problem(status, _DESCRIPTIONS[status]))
    operation.responses = dict(sorted(responses.items()))


def finish_document(document: OpenAPI) -> OpenAPI:
    """Describe every /api/v1 operation's errors as problem details (idempotent)."""
    components = document.components
    components.schemas = {**(components.schemas or {}), **_problem_schemas()}
    for operation in _operations(document):
        _finish(operation)
    return document


def _finish_before_serving(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    # A guard rather than a startup hook: the document is built when first asked for,
    # not at every start of the app (tests start hundreds).
    app = connection.app
    if not app.state.get(_FINISHED):
        finish_document(app.openapi_schema)
        app.state[_FINISHED] = True


def schema_router(path: str) -> Router:
    """The routes the document and its viewers are served from (public: no token)."""
    return Router(path, route_handlers=[], guards=[_finish_before_serving], include_in_schema=False)


def render(app: Litestar) -> str:
    """The app's OpenAPI document as docs/openapi.json holds it."""
    document = finish_document(app.openapi_schema).to_schema()
    # Through Litestar's encoder, as it serves it: examples may hold msgspec Structs.
    plain = json.loads(encode_json(document))
    return json.dumps(plain, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def current_document() -> str:
    """The document of the app `appliance-hub web` serves (no database is opened)."""
    from peewee import SqliteDatabase

    from hub.api.app import create_app

    return render(create_app(SqliteDatabase(":memory:")))


def _stale(path: Path, text: str) -> bool:
    return not path.exists() or path.read_text(encoding="utf-8") != text


@click.command()
@click.option("--check", is_flag=True, help="Fail when the file differs instead of writing it.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DOCUMENT,
    show_default=True,
)
def main(check: bool, output: Path) -> None:
    """Write the integration API's OpenAPI document (docs/openapi.json)."""
    text = current_document()
    if check:
        if _stale(output, text):
            click.echo(f"{output} is out of date with the code: run `{REGENERATE}`", err=True)
            sys.exit(1)
        click.echo(f"{output} is up to date")
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")


if __name__ == "__main__":
    main()
