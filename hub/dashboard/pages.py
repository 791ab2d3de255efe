"""The dashboard's pages: login, fleet, device and store, and sending commands.

Server-rendered Jinja2 templates; a small script (static/dashboard.js) reloads the parts
that change (the fleet table, a device's status and jobs) every few seconds, and every
page works without it. Every page but the login needs a session (hub/dashboard/sessions.py);
every form carries the session's CSRF token, the login form a token of its own cookie.
Handlers are synchronous (peewee) and run in worker threads.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import anyio.to_thread
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from litestar import MediaType, Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from peewee import Database

from appliance.core.money import Money
from appliance.errors import ApplianceError
from hub.api.app import WebOptions
from hub.command_hold import held_jobs
from hub.dashboard import views
from hub.dashboard.accounts import attempt_login
from hub.dashboard.charts import Series, line_chart
from hub.dashboard.sending import (
    COMMANDS,
    DEFAULT_EXPIRY,
    EXPIRIES,
    CommandSender,
    sending_problem,
)
from hub.dashboard.sessions import (
    SESSION_COOKIE,
    Session,
    close_session,
    open_session,
    session_for,
)
from hub.device_answers import SENT, JobView, jobs
from hub.ingest import utc_naive
from hub.stores import devices_of

STATIC_PATH = "/dashboard/static"
LOGIN_COOKIE = "hub_login"  # the login form's CSRF token, before there is a session
FLEET_REFRESH_S = 3
DEVICE_REFRESH_S = 3
WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6),
           "24h": timedelta(days=1), "7d": timedelta(days=7)}  # fmt: skip
DEFAULT_WINDOW = "6h"
MiB = 1024 * 1024

# No inline script or style anywhere, so the policy can forbid both.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
AnyRequest = Request[Any, Any, Any]


def _now() -> datetime:
    return utc_naive(datetime.now(UTC))


# --- rendering ---------------------------------------------------------------------------


def _money(minor: int, currency: str) -> str:
    try:
        return Money(int(minor), currency).format("en_GB")
    except (ValueError, TypeError, LookupError):
        return f"{minor} {currency} (minor units)"


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


def _ago(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    seconds = int((_now() - moment).total_seconds())
    if seconds < 90:
        return f"{max(seconds, 0)} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _job_state(job: JobView, held: set[str], online: bool) -> tuple[str, str]:
    """A job's state as the page shows it, and a CSS class."""
    if job.expired_unanswered(datetime.now(UTC)):
        return "expired", "bad"
    if job.state == SENT and job.id in held:
        where = "sent" if online else "held at the hub until the device connects"
        return where, "wait"
    classes = {"SUCCEEDED": "good", "FAILED": "bad", "REJECTED": "bad", "TIMED_OUT": "bad"}
    return job.state.lower().replace("_", " "), classes.get(job.state, "wait")


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("hub.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=_money, when=_when, ago=_ago, mib=lambda b: f"{b / MiB:,.0f} MiB")
    env.globals.update(static=STATIC_PATH, job_state=_job_state, commands=COMMANDS)
    return env


_TEMPLATES = _environment()


def _html(
    request: AnyRequest, template: str, *, status: int = 200, **context: Any
) -> Response[str]:
    session: Session | None = request.state.get("session")
    text = _TEMPLATES.get_template(template).render(
        session=session, csrf=session.csrf if session else "", now=_now(), **context
    )
    return Response(text, status_code=status, media_type=MediaType.HTML)


def _message(request: AnyRequest, status: int, title: str, text: str) -> Response[str]:
    return _html(request, "message.html", status=status, title=title, text=text)


def _secured(response: Response[Any]) -> Response[Any]:
    response.headers.update(_HEADERS)
    return response


def _local(target: str) -> str:
    """`target` if it is a path on this site, else the fleet page (no open redirect)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/fleet"


# --- login -------------------------------------------------------------------------------


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
    response = _html(
        request, "login.html", status=status, login_token=token, target=_local(target), error=error
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
    result = attempt_login(db, name, data.get("password", ""), address=address, now=_now())
    if result.outcome == "throttled":
        minutes = max(1, -(-result.retry_after // 60))
        error = f"Too many failed logins: try again in {minutes} min."
        response = _login_form(request, options, target, status=429, error=error)
        response.headers["Retry-After"] = str(result.retry_after)
        return response
    if result.outcome == "wrong":
        return _login_form(request, options, target, status=401, error="Wrong name or password.")
    session_id, _session = open_session(db, name, hours=options.session_hours, now=_now())
    return Redirect(
        _local(target),
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


def _session_guard(db: Database) -> Callable[[AnyRequest], Any]:
    async def require_session(request: AnyRequest) -> Response[Any] | None:
        """No session: to the login form, and back here after it."""
        cookie = request.cookies.get(SESSION_COOKIE, "")
        session = None
        if cookie:
            session = await anyio.to_thread.run_sync(lambda: session_for(db, cookie, now=_now()))
        if session is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return Redirect(f"/login?next={quote(here, safe='/')}", status_code=303)
        request.state.session = session
        return None

    return require_session


def _form_checked(request: AnyRequest, data: dict[str, str]) -> Response[str] | None:
    """A refusal when the form's CSRF token is not this session's, else None."""
    session: Session = request.state.session
    if session.csrf_matches(data.get("csrf", "")):
        return None
    return _message(
        request,
        403,
        "Form refused",
        "The form was not sent from this dashboard session (or the session changed). "
        "Reload the page and try again.",
    )


@post("/logout", sync_to_thread=True, include_in_schema=False)
def logout(request: AnyRequest, data: Form, db: NamedDependency[Database]) -> Response[Any]:
    """End the session."""
    if (refused := _form_checked(request, data)) is not None:
        return refused
    close_session(db, request.cookies.get(SESSION_COOKIE, ""))
    return Redirect(
        "/login",
        status_code=303,
        cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")],
    )


# --- fleet -------------------------------------------------------------------------------


@get("/", sync_to_thread=False, include_in_schema=False)
def home() -> Redirect:
    """The fleet is the front page."""
    return Redirect("/fleet", status_code=303)


def _fleet_context(db: Database, store: str | None) -> dict[str, Any]:
    rows = views.fleet(db, store or None)
    return {
        "rows": rows,
        "store": store or "",
        "online": sum(row.online for row in rows),
        "rows_url": "/fleet/rows" + (f"?{urlencode({'store': store})}" if store else ""),
    }


@get("/fleet", sync_to_thread=True, include_in_schema=False)
def fleet_page(
    request: AnyRequest, db: NamedDependency[Database], store: FromQuery[str] = ""
) -> Response[str]:
    """Every device, online or not, with its health; refreshed every few seconds."""
    return _html(
        request,
        "fleet.html",
        stores=views.stores(db),
        refresh_s=FLEET_REFRESH_S,
        **_fleet_context(db, store),
    )


@get("/fleet/rows", sync_to_thread=True, include_in_schema=False)
def fleet_rows(
    request: AnyRequest, db: NamedDependency[Database], store: FromQuery[str] = ""
) -> Response[str]:
    """The fleet table alone, for the page's refresh."""
    return _html(request, "fleet_rows.html", **_fleet_context(db, store))


# --- one device --------------------------------------------------------------------------


def _series(page: views.DevicePage) -> list[Series]:
    points = page.points
    charts = [
        Series("Outbox depth", "sales to send", [(p.at, p.outbox_depth) for p in points]),
        Series("Attached devices not ok", "", [(p.at, p.devices_not_ok) for p in points]),
        Series("Disk free", "MiB", [(p.at, p.disk_free_bytes / MiB) for p in points]),
    ]
    temps = [(p.at, p.cpu_temp_c) for p in points if p.cpu_temp_c is not None]
    if temps:
        charts.append(Series("CPU temperature", "°C", temps))
    return charts


@get("/devices/{device:str}", sync_to_thread=True, include_in_schema=False)
def device_page(
    *,
    request: AnyRequest,
    db: NamedDependency[Database],
    options: NamedDependency[WebOptions],
    device: FromPath[str],
    window: FromQuery[str] = DEFAULT_WINDOW,
    sent: FromQuery[str] = "",
    published: FromQuery[str] = "",
    problem: FromQuery[str] = "",
) -> Response[str]:
    """One device: status, telemetry charts, jobs, logs, configuration; send commands."""
    window = window if window in WINDOWS else DEFAULT_WINDOW
    end = _now()
    start = end - WINDOWS[window]
    page = views.device_page(db, device, since=start)
    if page is None:
        return _message(request, 404, "Unknown device", f"No device {device!r} reached this hub.")
    charts = [line_chart(series, start=start, end=end) for series in _series(page)]
    return _html(
        request,
        "device.html",
        page=page,
        device=device,
        charts=charts,
        window=window,
        windows=list(WINDOWS),
        refresh_s=DEVICE_REFRESH_S,
        sending_problem=sending_problem(options.fleet_key, options.broker),
        expiries=list(EXPIRIES),
        default_expiry=DEFAULT_EXPIRY,
        sent=sent,
        published=published,
        problem=problem,
    )


@get("/devices/{device:str}/live", sync_to_thread=True, include_in_schema=False)
def device_live(
    request: AnyRequest, db: NamedDependency[Database], device: FromPath[str]
) -> Response[str]:
    """A device's status and jobs alone, for the page's refresh."""
    page = views.device_page(db, device, since=_now())
    if page is None:
        return _message(request, 404, "Unknown device", f"No device {device!r} reached this hub.")
    return _html(request, "device_live.html", page=page, device=device)


def _send(
    request: AnyRequest,
    sender: CommandSender,
    data: dict[str, str],
    devices: list[str],
    confirm_action: str,
) -> Response[str] | tuple[str, bool, str]:
    """Send the form's command to `devices`: a page to show, or (first job, published, why)."""
    if (refused := _form_checked(request, data)) is not None:
        return refused
    name, expiry = data.get("command", ""), data.get("expires", DEFAULT_EXPIRY)
    if name not in COMMANDS or expiry not in EXPIRIES:
        return _message(request, 400, "Unknown command", f"{name!r} for {expiry!r} is not sent.")
    choice = COMMANDS[name]
    if choice.confirm and data.get("confirm") != "yes":
        return _html(
            request,
            "confirm.html",
            command=choice,
            expiry=expiry,
            window=data.get("window", ""),
            devices=devices,
            action=confirm_action,
        )
    try:
        result = sender.send(devices, name, EXPIRIES[expiry])
    except ApplianceError as err:  # no key or broker configured, or the key unreadable
        return _message(request, 503, "Not sent", str(err))
    return result.commands[0].id, result.published, result.problem


@post("/devices/{device:str}/commands", sync_to_thread=True, include_in_schema=False)
def send_to_device(
    request: AnyRequest,
    data: Form,
    db: NamedDependency[Database],
    sender: NamedDependency[CommandSender],
    device: FromPath[str],
) -> Response[Any]:
    """Sign and send a command to one device (held for it while it is offline)."""
    if not views.known(db, device):
        return _message(request, 404, "Unknown device", f"No device {device!r} reached this hub.")
    outcome = _send(request, sender, data, [device], f"/devices/{quote(device)}/commands")
    if isinstance(outcome, Response):
        return outcome
    job, published, problem = outcome
    back = {"window": data["window"]} if data.get("window") in WINDOWS else {}
    query = urlencode({**back, "sent": job, "published": int(published), "problem": problem})
    return Redirect(f"/devices/{quote(device)}?{query}", status_code=303)


# --- one store ---------------------------------------------------------------------------


@get("/stores/{store:str}", sync_to_thread=True, include_in_schema=False)
def store_page(
    *,
    request: AnyRequest,
    db: NamedDependency[Database],
    options: NamedDependency[WebOptions],
    store: FromPath[str],
    day: FromQuery[str] = "",
    sent: FromQuery[int] = 0,
    published: FromQuery[str] = "",
    problem: FromQuery[str] = "",
) -> Response[str]:
    """A store: its sales of a day, its oversold products, its devices; send commands."""
    try:
        chosen = datetime.strptime(day, "%Y-%m-%d") if day else _now()
    except ValueError:
        chosen = _now()
    midnight = chosen.replace(hour=0, minute=0, second=0, microsecond=0)
    page = views.store_page(db, store, day=midnight)
    rows = views.fleet(db, store)
    latest = {job.device: job for row in rows for job in jobs(db, row.device, limit=1)}
    held = {job for row in rows for job in held_jobs(db, row.device)}
    return _html(
        request,
        "store.html",
        page=page,
        rows=rows,
        latest=latest,
        held=held,
        previous=f"{midnight - timedelta(days=1):%Y-%m-%d}",
        following=f"{midnight + timedelta(days=1):%Y-%m-%d}",
        sending_problem=sending_problem(options.fleet_key, options.broker),
        expiries=list(EXPIRIES),
        default_expiry=DEFAULT_EXPIRY,
        sent=sent,
        published=published,
        problem=problem,
    )


@post("/stores/{store:str}/commands", sync_to_thread=True, include_in_schema=False)
def send_to_store(
    request: AnyRequest,
    data: Form,
    db: NamedDependency[Database],
    sender: NamedDependency[CommandSender],
    store: FromPath[str],
) -> Response[Any]:
    """Sign and send a command to every device of a store."""
    devices = devices_of(db, store)
    if not devices:
        return _message(request, 404, "No devices", f"Store {store!r} has no devices.")
    outcome = _send(request, sender, data, devices, f"/stores/{quote(store)}/commands")
    if isinstance(outcome, Response):
        return outcome
    _job, published, problem = outcome
    query = urlencode({"sent": len(devices), "published": int(published), "problem": problem})
    return Redirect(f"/stores/{quote(store)}?{query}", status_code=303)


# --- the routes ---------------------------------------------------------------------------


def routes(db: Database, options: WebOptions) -> list[Any]:
    """The dashboard's route handlers: the login and static files open, the rest behind it."""
    sender = CommandSender(db, options.fleet_key, options.broker)

    def after(response: Response[Any]) -> Response[Any]:
        return _secured(response)

    public = Router(
        "/",
        route_handlers=[login_page, login],
        after_request=after,
        include_in_schema=False,
    )
    private = Router(
        "/",
        route_handlers=[
            home,
            logout,
            fleet_page,
            fleet_rows,
            device_page,
            device_live,
            send_to_device,
            store_page,
            send_to_store,
        ],
        before_request=_session_guard(db),
        after_request=after,
        dependencies={"sender": Provide(lambda: sender, sync_to_thread=False)},
        include_in_schema=False,
    )
    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[Path(__file__).parent / "static"],
        include_in_schema=False,
        after_request=after,
    )
    return [public, private, static]
