"""The dashboard's login and logout, the session every other page needs, and CSRF checks.

The login form carries a token of its own cookie (there is no session yet), every other
form the session's token (hub/dashboard/sessions.py). A request without a live session
is sent to the login form, which brings the admin back to where they were going.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from litestar import Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromQuery
from litestar.response import Redirect
from peewee import Database

from hub.api.app import WebOptions
from hub.dashboard.accounts import attempt_login
from hub.dashboard.rendering import AnyRequest, html, message, now
from hub.dashboard.sessions import (
    SESSION_COOKIE,
    Session,
    close_session,
    open_session,
    session_for,
)

LOGIN_COOKIE = "hub_login"  # the login form's CSRF token, before there is a session
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def local_path(target: str) -> str:
    """`target` if it is a path on this site, else the fleet page (no open redirect)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/fleet"


@get("/login", sync_to_thread=False, include_in_schema=False)
def login_page(
    request: AnyRequest,
    options: NamedDependency[WebOptions],
    next: FromQuery[str] = "/fleet",
) -> Response[str]:
    """The login form."""
    return _login_form(request, options, next)


def _login_form(
    request: AnyRequest, options: WebOptions, target: str, *, status: int = 200, error: str = ""
) -> Response[str]:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = html(
        request,
        "login.html",
        status=status,
        login_token=token,
        target=local_path(target),
        error=error,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=options.secure_cookies,
    )
    return response


@post("/login", sync_to_thread=True, include_in_schema=False)
def login(
    request: AnyRequest,
    data: Form,
    db: NamedDependency[Database],
    options: NamedDependency[WebOptions],
) -> Response[Any]:
    """Check the name and password; open a session."""
    target = data.get("next", "/fleet")
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, data.get("csrf", "")):
        error = "The form expired: please log in again."
        return _login_form(request, options, target, status=403, error=error)
    address = request.client.host if request.client else "unknown"
    name = data.get("name", "")
    result = attempt_login(db, name, data.get("password", ""), address=address, now=now())
    if result.outcome == "throttled":
        minutes = max(1, -(-result.retry_after // 60))
        error = f"Too many failed logins: try again in {minutes} min."
        response = _login_form(request, options, target, status=429, error=error)
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    if result.outcome == "wrong":
        return _login_form(request, options, target, status=401, error="Wrong name or password.")
    session_id, _session = open_session(db, name, hours=options.session_hours, now=now())
    return Redirect(
        local_path(target),
        status_code=303,
        cookies=[
            Cookie(
                key=SESSION_COOKIE,
                value=session_id,
                max_age=int(options.session_hours * 3600),
                path="/",
                httponly=True,
                samesite="strict",
                secure=options.secure_cookies,
            ),
            Cookie(key=LOGIN_COOKIE, value="", max_age=0, path="/login"),
        ],
    )


def session_guard(db: Database) -> Callable[[AnyRequest], Any]:
    """A before_request hook: the live session in request.state, or off to the login."""

    async def require_session(request: AnyRequest) -> Response[Any] | None:
        """No session: to the login form, and back here after it."""
        cookie = request.cookies.get(SESSION_COOKIE, "")
        session = None
        if cookie:
            session = await anyio.to_thread.run_sync(lambda: session_for(db, cookie, now=now()))
        if session is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return Redirect(f"/login?next={quote(here, safe='/')}", status_code=303)
        request.state.session = session
        return None

    return require_session


def form_checked(request: AnyRequest, data: dict[str, str]) -> Response[str] | None:
    """A refusal when the form's CSRF token is not this session's, else None."""
    session: Session = request.state.session
    if session.csrf_matches(data.get("csrf", "")):
        return None
    return message(
        request,
        403,
        "Form refused",
        "The form was not sent from this dashboard session (or the session changed). "
        "Reload the page and try again.",
    )


@post("/logout", sync_to_thread=True, include_in_schema=False)
def logout(request: AnyRequest, data: Form, db: NamedDependency[Database]) -> Response[Any]:
    """End the session."""
    if (refused := form_checked(request, data)) is not None:
        return refused
    close_session(db, request.cookies.get(SESSION_COOKIE, ""))
    return Redirect(
        "/login",
        status_code=303,
        cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")],
    )
