"""Every error of the HTTP API as an RFC 9457 problem-details body (application/problem+json).

Bad input is 422 and names each wrong field (`errors: [{field, message}]`); a missing or
wrong token 401, a token without the scope 403, and a database fault 503 with what the
storage says, never a traceback.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from peewee import DatabaseError, InterfaceError

from appliance.errors import ApplianceError
from hub.storage_faults import storage_fault

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemError(HTTPException, ApplianceError):
    """An error a handler raises on purpose: its status, a title and a detail for people."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail=detail, status_code=status)
        self.title = title or HTTPStatus(status).phrase
        self.problem_extra = extra


def problem(status: int, detail: str, *, title: str | None = None, **extra: Any) -> Response[Any]:
    """A problem-details response."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == HTTPStatus.UNAUTHORIZED else None
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_MISSING = re.compile(r"missing required field `([^`]+)`")


def _field(key: str | None, source: str | None, message: str) -> str:
    # Litestar names a wrong body field in `key`; a missing one only in msgspec's message
    # ("Object missing required field `url`"), with `key` the whole body ("data").
    missing = _MISSING.search(message)
    if missing and key in (None, "data"):
        return missing.group(1)
    return key or source or "body"


def on_validation(_request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """422, with each field that is wrong and why."""
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            message = str(item.get("message", ""))
            field = _field(item.get("key"), item.get("source"), message)
            errors.append({"field": field, "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or str(exc.detail)
    return problem(HTTPStatus.UNPROCESSABLE_ENTITY, detail, title="Invalid input", errors=errors)


def on_http_error(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    """The exception's status and detail, as a problem."""
    extra = getattr(exc, "problem_extra", {})
    title = getattr(exc, "title", None)
    return problem(exc.status_code, str(exc.detail), title=title, **extra)


def on_database_error(_request: Request[Any, Any, Any], exc: DatabaseError) -> Response[Any]:
    """503 when the hub database is at fault (full, unreachable, read-only); else a bug."""
    fault = storage_fault(exc)
    if fault is None:
        log.exception("database error in an API call")
        return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "an internal error; see the hub's log")
    return problem(
        HTTPStatus.SERVICE_UNAVAILABLE, f"the hub database is unavailable: {fault.value}"
    )


def on_lost_connection(_request: Request[Any, Any, Any], exc: InterfaceError) -> Response[Any]:
    """503 when the connection to the hub database is gone (the next call opens a new one)."""
    log.warning("the hub database connection is gone: %s", exc)
    return problem(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "the hub database is unavailable: the connection to it was lost; try again",
    )


def on_unexpected(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """500 without a traceback in the body; the log has it."""
    log.exception("unexpected error in an API call", exc_info=exc)
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "an internal error; see the hub's log")


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    ValidationException: on_validation,
    HTTPException: on_http_error,
    DatabaseError: on_database_error,
    InterfaceError: on_lost_connection,
    Exception: on_unexpected,
}
