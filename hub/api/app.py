"""The hub's web application: the integration API under /api/v1 and the fleet dashboard.

Litestar, because it validates and serialises with msgspec, the library the MQTT payloads
already use, and generates the OpenAPI 3.1 document from the same type hints. Handlers
are synchronous (peewee is), so each runs in a worker thread with its own connection.

Every /api/v1 call carries `Authorization: Bearer <token>` (hub/api/access.py). A GET
needs the `read` scope, anything else `write`, unless a handler asks for more with
`opt={"scope": "admin"}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread
import msgspec
from litestar import Litestar, Request, Router
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from peewee import Database

from appliance import __version__
from hub.api import devices, products, sales, stock, webhooks
from hub.api.access import Principal, Scope, authenticate
from hub.api.openapi import schema_router
from hub.api.paging import invalid
from hub.api.problems import EXCEPTION_HANDLERS
from hub.receipts.lookup import ReceiptRules
from hub.server import BrokerEndpoint

API_PREFIX = "/api/v1"
OPENAPI_PATH = f"{API_PREFIX}/schema"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Service(Protocol):
    """Background work the web process runs while it serves (the webhook delivery)."""

    def start(self) -> None:
        """Begin in the background; return at once."""

    def stop(self) -> None:
        """End the work; return when it has ended."""


@dataclass(frozen=True, slots=True)
class WebOptions:
    """What the dashboard needs besides the database: where to send commands, and how."""

    broker: BrokerEndpoint | None = None  # None: the dashboard cannot send commands
    fleet_key: Path | None = None  # the fleet command signing key (`fleet keygen`)
    secure_cookies: bool = False  # set behind HTTPS: the session cookie is then Secure
    session_hours: float = 12.0
    receipts: ReceiptRules = field(default_factory=ReceiptRules)  # the e-receipt links
    extra: dict[str, Any] = field(default_factory=dict)


def _needed_scope(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> Scope:
    asked = handler.opt.get("scope")
    if asked is not None:
        return asked  # type: ignore[no-any-return]
    return "read" if connection.scope.get("method", "GET") in _READ_METHODS else "write"


def _token_guard(db: Database) -> Any:
    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        header = connection.headers.get("authorization", "")
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            raise NotAuthorizedException("an API token is needed: Authorization: Bearer <token>")
        principal = await anyio.to_thread.run_sync(authenticate, db, value.strip())
        if principal is None:
            raise NotAuthorizedException("the API token is unknown or revoked")
        needed = _needed_scope(connection, handler)
        if not principal.may(needed):
            raise PermissionDeniedException(
                f"this token's scope is {principal.scope!r}; this call needs {needed!r}"
            )
        connection.state.principal = principal

    return guard


_NUL = "\x00"
_NO_NUL = "must not contain a NUL character (\\u0000)"


def _nul_field(value: Any, name: str) -> str | None:
    """The name of the first string in a JSON value that holds a NUL, if any."""
    if isinstance(value, str):
        return name if _NUL in value else None
    items: Any = ()
    if isinstance(value, dict):
        items = ((key, f"{name}.{key}" if name else str(key), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((None, f"{name}[{index}]", item) for index, item in enumerate(value))
    for key, path, item in items:
        if isinstance(key, str) and _NUL in key:
            return str(path)
        found = _nul_field(item, path)
        if found is not None:
            return found
    return None


async def _refuse_nul(request: Request[Any, Any, Any]) -> None:
    """422 for a NUL in any string of the call: PostgreSQL refuses it in text (SQLite not)."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and _NUL in value:
            raise invalid(name, _NO_NUL, "path")
    for name, value in request.query_params.multi_items():
        if _NUL in name or _NUL in value:
            raise invalid(name.replace(_NUL, "\\u0000"), _NO_NUL, "query")
    mime = request.content_type[0]
    if mime != "application/json" and not mime.endswith("+json"):
        return
    body = await request.body()
    try:
        data = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        return  # the handler's own decoding names what is wrong
    found = _nul_field(data, "")
    if found is not None:
        raise invalid(found.replace(_NUL, "\\u0000") or "body", _NO_NUL, "body")


def _principal(request: Request[Any, Any, Any]) -> Principal:
    return request.state.principal  # type: ignore[no-any-return]


def api_router(db: Database) -> Router:
    """/api/v1 with every route of the integration API, behind the token guard."""
    return Router(
        path=API_PREFIX,
        route_handlers=[
            *products.ROUTES,
            *stock.ROUTES,
            *sales.ROUTES,
            *devices.ROUTES,
            *webhooks.ROUTES,
        ],
        guards=[_token_guard(db)],
        before_request=_refuse_nul,
        dependencies={"principal": Provide(_principal, sync_to_thread=False)},
        security=[{"BearerToken": []}],
    )


def create_app(
    db: Database,
    *,
    options: WebOptions | None = None,
    services: Sequence[Service] = (),
    dashboard: bool = True,
) -> Litestar:
    """The web application on `db`; `services` run from startup to shutdown."""
    from hub.dashboard import pages
    from hub.receipts.pages import receipt_routes

    web_options = options or WebOptions()
    handlers: list[Any] = [api_router(db)]
    if dashboard:
        handlers.extend(pages.routes(db, web_options))
    # Open to anyone with a receipt's link, like the paper receipt it replaces.
    handlers.extend(receipt_routes(db, web_options.receipts))
    return Litestar(
        route_handlers=handlers,
        dependencies={
            "db": Provide(lambda: db, sync_to_thread=False, use_cache=True),
            "options": Provide(lambda: web_options, sync_to_thread=False, use_cache=True),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=openapi_config(),
        on_startup=[service.start for service in services],
        on_shutdown=[service.stop for service in reversed(services)],
        debug=False,
    )


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI 3.1 document's metadata, served at /api/v1/schema/openapi.json."""
    return OpenAPIConfig(
        title="Appliance hub integration API",
        version=f"v1 ({__version__})",
        description=(
            "Products, prices, stock, sales and devices of every store, and webhooks for "
            "what changes. Authenticate with `Authorization: Bearer <token>` "
            "(`appliance-hub token create`)."
        ),
        path=OPENAPI_PATH,
        openapi_router=schema_router(OPENAPI_PATH),
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}
        ),
        use_handler_docstrings=True,
    )
