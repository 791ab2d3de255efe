"""The dashboard's pages: fleet, device and store, and sending commands from them.

Server-rendered Jinja2 templates (hub/dashboard/rendering.py); a small script
(static/dashboard.js) reloads the parts that change (the fleet table, a device's status
and jobs) every few seconds, and every page works without it. Every page but the login
needs a session (hub/dashboard/login.py). Handlers are synchronous (peewee) and run in
worker threads.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from litestar import Response, Router, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from peewee import Database

from appliance.errors import ApplianceError
from hub.api.app import WebOptions
from hub.command_hold import held_jobs, unsent_jobs
from hub.dashboard import views
from hub.dashboard.charts import Series, line_chart
from hub.dashboard.login import Form, form_checked, login, login_page, logout, session_guard
from hub.dashboard.rendering import STATIC_PATH, AnyRequest, MiB, html, message, now, secured
from hub.dashboard.sending import (
    COMMANDS,
    DEFAULT_EXPIRY,
    EXPIRIES,
    CommandSender,
    sending_problem,
)
from hub.device_answers import jobs
from hub.stores import devices_of

FLEET_REFRESH_S = 3
DEVICE_REFRESH_S = 3
WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6),
           "24h": timedelta(days=1), "7d": timedelta(days=7)}  # fmt: skip
DEFAULT_WINDOW = "6h"


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
    return html(
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
    return html(request, "fleet_rows.html", **_fleet_context(db, store))


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
    end = now()
    start = end - WINDOWS[window]
    page = views.device_page(db, device, since=start)
    if page is None:
        return message(request, 404, "Unknown device", f"No device {device!r} reached this hub.")
    charts = [line_chart(series, start=start, end=end) for series in _series(page)]
    return html(
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
    page = views.device_page(db, device, since=now())
    if page is None:
        return message(request, 404, "Unknown device", f"No device {device!r} reached this hub.")
    return html(request, "device_live.html", page=page, device=device)


def _send(
    request: AnyRequest,
    sender: CommandSender,
    data: dict[str, str],
    devices: list[str],
    confirm_action: str,
) -> Response[str] | tuple[str, bool, str]:
    """Send the form's command to `devices`: a page to show, or (first job, published, why)."""
    if (refused := form_checked(request, data)) is not None:
        return refused
    name, expiry = data.get("command", ""), data.get("expires", DEFAULT_EXPIRY)
    if name not in COMMANDS or expiry not in EXPIRIES:
        return message(request, 400, "Unknown command", f"{name!r} for {expiry!r} is not sent.")
    choice = COMMANDS[name]
    if choice.confirm and data.get("confirm") != "yes":
        return html(
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
        return message(request, 503, "Not sent", str(err))
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
    if (refused := form_checked(request, data)) is not None:
        return refused  # before anything about the device is told
    if not views.known(db, device):
        return message(request, 404, "Unknown device", f"No device {device!r} reached this hub.")
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
        chosen = datetime.strptime(day, "%Y-%m-%d") if day else now()
    except ValueError:
        chosen = now()
    midnight = chosen.replace(hour=0, minute=0, second=0, microsecond=0)
    page = views.store_page(db, store, day=midnight)
    rows = views.fleet(db, store)
    latest = {job.device: job for row in rows for job in jobs(db, row.device, limit=1)}
    held = {job for row in rows for job in held_jobs(db, row.device)}
    unsent = {job for row in rows for job in unsent_jobs(db, row.device)}
    return html(
        request,
        "store.html",
        page=page,
        rows=rows,
        latest=latest,
        held=held,
        unsent=unsent,
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
    if (refused := form_checked(request, data)) is not None:
        return refused  # before anything about the store is told
    devices = devices_of(db, store)
    if not devices:
        return message(request, 404, "No devices", f"Store {store!r} has no devices.")
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

    public = Router(
        "/",
        route_handlers=[login_page, login],
        after_request=secured,
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
        before_request=session_guard(db),
        after_request=secured,
        dependencies={"sender": Provide(lambda: sender, sync_to_thread=False)},
        include_in_schema=False,
    )
    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[Path(__file__).parent / "static"],
        include_in_schema=False,
        after_request=secured,
    )
    return [public, private, static]
