"""Rendering the dashboard: the Jinja2 templates, their filters, and the response headers.

No page has inline script or style, so the Content-Security-Policy forbids both; every
response says not to be cached (pages show live state and carry a session's CSRF token).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from litestar import MediaType, Request, Response

from appliance.core.money import Money
from hub.dashboard.sending import COMMANDS
from hub.dashboard.sessions import Session
from hub.device_answers import SENT, JobView
from hub.ingest import utc_naive

STATIC_PATH = "/dashboard/static"
MiB = 1024 * 1024
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

AnyRequest = Request[Any, Any, Any]


def now() -> datetime:
    """The time now, naive UTC like the hub's tables."""
    return utc_naive(datetime.now(UTC))


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
    seconds = int((now() - moment).total_seconds())
    if seconds < 90:
        return f"{max(seconds, 0)} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 36 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _job_state(
    job: JobView, held: set[str], online: bool, unsent: set[str] | None = None
) -> tuple[str, str]:
    """A job's state as the page shows it, and a CSS class.

    `held`: the device's commands held at the hub; `unsent`: those of them not sent in the
    device's current session.
    """
    if job.expired_unanswered(datetime.now(UTC)):
        return "expired", "bad"
    if job.delivered_only():
        return "delivered, outcome unknown", "wait"
    if job.state == SENT and job.id in held:
        if not online:
            return "held at the hub until the device connects", "wait"
        return ("not published yet" if job.id in (unsent or set()) else "sent"), "wait"
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


def html(request: AnyRequest, template: str, *, status: int = 200, **context: Any) -> Response[str]:
    """A template rendered for the request's session (if any)."""
    session: Session | None = request.state.get("session")
    text = _TEMPLATES.get_template(template).render(
        session=session, csrf=session.csrf if session else "", now=now(), **context
    )
    return Response(text, status_code=status, media_type=MediaType.HTML)


def message(request: AnyRequest, status: int, title: str, text: str) -> Response[str]:
    """A page that says one thing: an error, a refusal."""
    return html(request, "message.html", status=status, title=title, text=text)


def secured(response: Response[Any]) -> Response[Any]:
    """The response with the dashboard's security headers (an after_request hook)."""
    response.headers.update(HEADERS)
    return response
