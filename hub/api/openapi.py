"""The integration API's OpenAPI 3.1 document: its error responses, and the copy in docs/.

Litestar writes an operation's errors as its own JSON shape and calls a validation error
400; this API answers every error as RFC 9457 problem details and bad input as 422
(hub/api/problems.py). `finish_document` makes the document say so for every /api/v1
operation: 401 and 403 (the token guard covers them all), 422 where input is checked,
and each error a handler `raises` as `application/problem+json`.

It also adds the OpenAPI 3.1 `webhooks`: one POST per event type the hub sends, with the
Standard Webhooks headers and the body `{type, timestamp, data}`, `data`'s schema made by
msgspec from the very Structs the hub builds the data from (`WEBHOOK_DATA`).

`python -m hub.api.openapi` writes docs/openapi.json; `--check` fails when it is stale.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import msgspec
from litestar import Router
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import (
    Discriminator,
    OpenAPI,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
)
from litestar.serialization import encode_json

from hub.api.problems import PROBLEM_JSON
from hub.api.product_views import ProductData
from hub.api.sales import Sale
from hub.api.stock import StockCountData, StockMovementData
from hub.stock_movements import REASONS
from hub.webhooks import events
from hub.webhooks.deliveries import GIVE_UP_AFTER, MAX_ATTEMPTS
from hub.webhooks.payloads import DeviceData, StockData
from hub.webhooks.sender import TIMEOUT

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


# --- webhooks ------------------------------------------------------------------------

# stock.changed's data differs by what changed the level; `cause` tells which it is.
STOCK_CAUSES: dict[str, type[msgspec.Struct]] = {
    "sale": StockData,  # a batch of the store's sales landed (hub/webhooks/sources.py)
    **dict.fromkeys(REASONS, StockMovementData),  # a movement through the stock API
    "count": StockCountData,  # a stocktake through the stock API
}
# Each event type's `data`: the Structs the hub makes it from; several: exactly one of them.
WEBHOOK_DATA: dict[str, tuple[type[msgspec.Struct], ...]] = {
    events.SALE_CREATED: (Sale,),
    events.REFUND_CREATED: (Sale,),
    events.SALE_VOIDED: (Sale,),
    events.STOCK_CHANGED: tuple(dict.fromkeys(STOCK_CAUSES.values())),
    events.PRODUCT_CHANGED: (ProductData,),
    events.DEVICE_ONLINE: (DeviceData,),
    events.DEVICE_OFFLINE: (DeviceData,),
}
_DISCRIMINATORS: dict[str, tuple[str, Mapping[str, type[msgspec.Struct]]]] = {
    events.STOCK_CHANGED: ("cause", STOCK_CAUSES),
}
_WHEN = {
    events.SALE_CREATED: "A device's sale is stored by the hub: the sale as "
    "`GET /api/v1/sales/{device}/{id}` shows it.",
    events.REFUND_CREATED: "A refund is stored: the same shape, `kind` `refund`, a negative "
    "total; `references` names the sale it corrects.",
    events.SALE_VOIDED: "A void is stored: the same shape, `kind` `void`; undo the voided sale.",
    events.STOCK_CHANGED: "A product's level in a store changed: once per product for each "
    "batch of the store's sales that lands (`cause` `sale`), or by a movement (`cause` its "
    "reason) or a stocktake (`cause` `count`) through the stock API. `level` is the level "
    "now, not a difference.",
    events.PRODUCT_CHANGED: "A product was created, changed or deleted through the API "
    "(`product` is null when deleted); `version` is the one to send back in `If-Match`.",
    events.DEVICE_ONLINE: "A device's birth was recorded; once per session (`bd_seq`).",
    events.DEVICE_OFFLINE: "A device's current will was recorded: it went away.",
}
_HEADERS = {
    "webhook-id": "The event's id (`msg_...`): the same on every attempt and replay, and at "
    "every endpoint; de-duplicate on it.",
    "webhook-timestamp": "Unix seconds when this attempt was sent; refuse a message more "
    "than five minutes from your clock.",
    "webhook-signature": "`v1,<base64 HMAC-SHA256>` over `{webhook-id}.{webhook-timestamp}."
    "{raw body}`, keyed with the endpoint's secret after `whsec_` (Standard Webhooks); "
    "several may be given, space-separated: one match suffices.",
}
_DELIVERED = "Delivered: any 2xx answer. Its body is not read."
_FAILED = (
    f"Not delivered: any other status (a 3xx too: redirects are not followed) or no answer "
    f"within {TIMEOUT:g} s. Tried again with backoff; after {MAX_ATTEMPTS} attempts or "
    f"{GIVE_UP_AFTER.days} days the delivery is dead (and can be replayed)."
)
_REF = "#/components/schemas/{name}"


@dataclass
class JsonSchema(Schema):
    """A schema msgspec made from a Struct, put into the document exactly as made."""

    made: dict[str, Any] = field(default_factory=dict)

    def to_schema(self) -> dict[str, Any]:
        """The JSON Schema as msgspec wrote it."""
        return self.made

    def __hash__(self) -> int:
        return hash(json.dumps(self.made, sort_keys=True))


def _fields(schema: Schema) -> tuple[set[str], set[str]]:
    """A component's property names and required ones."""
    if isinstance(schema, JsonSchema):
        return set(schema.made.get("properties", {})), set(schema.made.get("required", []))
    return set(schema.properties or {}), set(schema.required or [])


def _data_schemas(document: OpenAPI) -> dict[type[msgspec.Struct], Reference]:
    """Add every webhook data Struct's schema to the components; a reference to each."""
    structs = list(dict.fromkeys(t for types in WEBHOOK_DATA.values() for t in types))
    refs, made = msgspec.json.schema_components(structs, ref_template=_REF)
    schemas = document.components.schemas
    for name, schema in made.items():
        held = schemas.get(name)
        if held is None:
            schemas[name] = JsonSchema(made=schema)
        elif not isinstance(held, Schema) or _fields(held) != _fields(JsonSchema(made=schema)):
            # The API's own component of that name (Sale, Product...) must be the same Struct.
            raise ValueError(f"two different schemas are named {name!r} in the document")
    return {t: Reference(ref=r["$ref"]) for t, r in zip(structs, refs, strict=True)}


def _data(event_type: str, refs: Mapping[type[msgspec.Struct], Reference]) -> Schema | Reference:
    types = WEBHOOK_DATA[event_type]
    if len(types) == 1:
        return refs[types[0]]
    name, by_value = _DISCRIMINATORS[event_type]
    mapping = {value: refs[struct].ref for value, struct in by_value.items()}
    return Schema(
        one_of=[refs[t] for t in types],
        discriminator=Discriminator(property_name=name, mapping=mapping),
    )


def _webhook(event_type: str, refs: Mapping[type[msgspec.Struct], Reference]) -> PathItem:
    text = Schema(type=OpenAPIType.STRING)
    body = Schema(
        type=OpenAPIType.OBJECT,
        required=["type", "timestamp", "data"],
        properties={
            "type": Schema(type=OpenAPIType.STRING, const=event_type),
            "timestamp": Schema(
                type=OpenAPIType.STRING,
                format=OpenAPIFormat.DATE_TIME,
                description="When the hub recorded the event: RFC 3339, UTC, `Z`.",
            ),
            "data": _data(event_type, refs),
        },
    )
    first, *rest = event_type.split(".")
    return PathItem(
        post=Operation(
            tags=["webhooks"],
            summary=event_type,
            description=_WHEN[event_type],
            operation_id=first + "".join(word.title() for word in rest),
            parameters=[
                Parameter(name=n, param_in="header", required=True, schema=text, description=d)
                for n, d in _HEADERS.items()
            ],
            request_body=RequestBody(
                content={"application/json": OpenAPIMediaType(schema=body)}, required=True
            ),
            responses={
                "2XX": OpenAPIResponse(description=_DELIVERED),
                "default": OpenAPIResponse(description=_FAILED),
            },
        )
    )


def webhooks_section(document: OpenAPI) -> dict[str, PathItem | Reference]:
    """The document's `webhooks`: each event type the hub sends (its data schemas added)."""
    refs = _data_schemas(document)
    return {event_type: _webhook(event_type, refs) for event_type in events.EVENT_TYPES}


def finish_document(document: OpenAPI) -> OpenAPI:
    """Every /api/v1 operation's errors as problem details, and the webhooks (idempotent)."""
    components = document.components
    components.schemas = {**(components.schemas or {}), **_problem_schemas()}
    for operation in _operations(document):
        _finish(operation)
    document.webhooks = webhooks_section(document)
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
