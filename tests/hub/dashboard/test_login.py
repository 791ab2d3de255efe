"""The dashboard's login: every page behind it, hashed passwords, sessions, CSRF, throttling.

Litestar's test client on the app `appliance-hub web` serves, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from peewee import Database

from hub.command_hold import HeldCommand
from hub.dashboard.accounts import (
    MAX_FAILURES,
    MAX_FAILURES_PER_NAME,
    AdminError,
    add_admin,
    attempt_login,
    remove_admin,
)
from hub.dashboard.models import DashboardAdmin, DashboardSession, LoginFailure
from hub.dashboard.sessions import SESSION_COOKIE, open_session, session_for
from hub.ingest import utc_naive
from hub.models import CommandJob
from hub.stores import assign_device
from tests.hub.dashboard.conftest import (
    ADMIN,
    PASSWORD,
    TEST_COST,
    Client,
    MakeClient,
    csrf_of,
    hidden,
    log_in,
)

NOW = datetime(2026, 3, 2, 12, 0)
PAGES = ["/", "/fleet", "/fleet/rows?store=x", "/devices/kiosk-1", "/devices/kiosk-1/live",
         "/stores/berlin"]  # fmt: skip


def test_every_page_but_the_login_sends_a_stranger_to_the_login_form(web: MakeClient) -> None:
    client = web()
    for page in PAGES:
        response = client.get(page, follow_redirects=False)
        assert response.status_code == 303, page
        assert response.headers["location"].startswith("/login?next=/"), page
    for form in ("/devices/kiosk-1/commands", "/stores/berlin/commands", "/logout"):
        response = client.post(form, data={"command": "lock"}, follow_redirects=False)
        assert (response.status_code, response.headers["location"][:7]) == (303, "/login?"), form
    login = client.get("/login?next=/devices/kiosk-1")
    assert login.status_code == 200
    assert hidden(login.text, "next") == "/devices/kiosk-1"
    assert "default-src 'self'" in login.headers["content-security-policy"]


def test_the_right_password_opens_a_session_in_a_strict_http_only_cookie(
    web: MakeClient, admin: str
) -> None:
    client = web()
    response = log_in(client, to="/devices/kiosk-1")
    assert (response.status_code, response.headers["location"]) == (303, "/devices/kiosk-1")
    cookie = next(c for c in response.headers.get_list("set-cookie") if SESSION_COOKIE in c)
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain HTTP here; --secure-cookies sets it (below)
    page = client.get("/fleet")
    assert page.status_code == 200 and f">{ADMIN}<" in page.text

    behind_https = web(base_url="https://hub.test", secure_cookies=True, session_hours=1.5)
    response = log_in(behind_https)
    cookie = next(c for c in response.headers.get_list("set-cookie") if SESSION_COOKIE in c)
    assert "secure" in cookie.lower() and "max-age=5400" in cookie.lower()


def test_a_wrong_password_or_an_unknown_name_is_refused_alike(
    web: MakeClient, admin: str, dash_db: Database
) -> None:
    client = web()
    for name, password in ((ADMIN, "not the password"), ("nobody", PASSWORD)):
        response = log_in(client, name, password)
        assert response.status_code == 401
        assert "Wrong name or password." in response.text
        assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert client.get("/fleet", follow_redirects=False).status_code == 303
    # Only a salted scrypt hash is kept; the same password gets another salt each time.
    stored = DashboardAdmin.select().where(DashboardAdmin.name == ADMIN).get(dash_db)
    assert PASSWORD.encode() not in bytes(stored.password_hash)
    add_admin(dash_db, "bob", PASSWORD, now=NOW, cost=TEST_COST)
    other = DashboardAdmin.select().where(DashboardAdmin.name == "bob").get(dash_db)
    assert bytes(other.salt) != bytes(stored.salt)
    assert bytes(other.password_hash) != bytes(stored.password_hash)


def test_a_login_form_not_from_this_browser_is_refused(web: MakeClient, admin: str) -> None:
    client = web()
    # No login cookie (another site's form posting here): refused before the password.
    response = client.post(
        "/login",
        data={"csrf": "made-up", "name": ADMIN, "password": PASSWORD, "next": "/fleet"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_a_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    web: MakeClient, admin: str, dash_db: Database
) -> None:
    client = web()
    log_in(client)
    for token in ("", "0" * 43):
        response = client.post("/logout", data={"csrf": token}, follow_redirects=False)
        assert response.status_code == 403 and "Form refused" in response.text
    assert client.get("/fleet").status_code == 200  # still logged in
    assign_device(dash_db, "kiosk-1", "berlin")  # a store with a device: only CSRF refuses
    for form in ("/stores/berlin/commands", "/devices/kiosk-1/commands"):
        response = client.post(
            form, data={"csrf": "wrong", "command": "lock"}, follow_redirects=False
        )
        assert response.status_code == 403 and "Form refused" in response.text, form
    assert CommandJob.select().count(dash_db) == 0
    assert HeldCommand.select().count(dash_db) == 0

    response = client.post("/logout", data={"csrf": csrf_of(client)}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert client.get("/fleet", follow_redirects=False).status_code == 303
    assert DashboardSession.select().count(dash_db) == 0


def test_repeated_failures_lock_the_name_out_even_for_the_right_password(
    web: MakeClient, admin: str
) -> None:
    client = web()
    for _ in range(MAX_FAILURES):
        assert log_in(client, ADMIN, "guess").status_code == 401
    response = log_in(client, ADMIN, PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.text
    assert 0 < int(response.headers["retry-after"]) <= 15 * 60
    assert client.get("/fleet", follow_redirects=False).status_code == 303


def test_throttling_ends_when_the_failures_leave_the_window(dash_db: Database) -> None:
    add_admin(dash_db, ADMIN, PASSWORD, now=NOW, cost=TEST_COST)
    for minute in range(MAX_FAILURES):
        at = NOW + timedelta(minutes=minute)
        assert attempt_login(dash_db, ADMIN, "guess", address="a", now=at).outcome == "wrong"
    later = NOW + timedelta(minutes=10)
    throttled = attempt_login(dash_db, ADMIN, PASSWORD, address="a", now=later)
    assert (throttled.outcome, throttled.retry_after) == ("throttled", 5 * 60 + 1)
    free = attempt_login(dash_db, ADMIN, PASSWORD, address="a", now=NOW + timedelta(minutes=16))
    assert free.outcome == "ok"


def test_a_stranger_cannot_lock_the_admin_out_with_a_few_guesses(dash_db: Database) -> None:
    add_admin(dash_db, ADMIN, PASSWORD, now=NOW, cost=TEST_COST)
    for _ in range(MAX_FAILURES):
        assert attempt_login(dash_db, ADMIN, "guess", address="x", now=NOW).outcome == "wrong"
    assert attempt_login(dash_db, ADMIN, PASSWORD, address="x", now=NOW).outcome == "throttled"
    # The admin's own browser, elsewhere, still gets in; the stranger's guesses stay counted.
    assert attempt_login(dash_db, ADMIN, PASSWORD, address="home", now=NOW).outcome == "ok"
    assert LoginFailure.select().where(LoginFailure.address == "x").count(dash_db) == MAX_FAILURES
    # Guesses from many addresses do lock the name, at a much higher count.
    for n in range(MAX_FAILURES_PER_NAME - MAX_FAILURES):
        result = attempt_login(dash_db, ADMIN, "guess", address=f"y{n // 4}", now=NOW)
        assert result.outcome == "wrong"
    locked = attempt_login(dash_db, ADMIN, PASSWORD, address="home", now=NOW)
    assert locked.outcome == "throttled"


def test_parallel_guesses_are_counted_before_they_are_checked(dash_db: Database) -> None:
    add_admin(dash_db, ADMIN, PASSWORD, now=NOW, cost=TEST_COST)
    start = threading.Barrier(20)

    def guess(n: int) -> str:
        start.wait()
        return attempt_login(dash_db, ADMIN, f"guess {n}", address="a", now=NOW).outcome

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(guess, range(20)))
    assert outcomes.count("wrong") == MAX_FAILURES
    assert outcomes.count("throttled") == 20 - MAX_FAILURES
    assert LoginFailure.select().count(dash_db) == MAX_FAILURES


def test_parallel_logins_through_the_web_app_are_throttled_alike(
    web: MakeClient, admin: str
) -> None:
    clients = [web() for _ in range(12)]
    start = threading.Barrier(len(clients))

    def guess(client: Client) -> int:
        form = client.get("/login?next=/fleet")
        start.wait()
        data = {"csrf": hidden(form.text, "csrf"), "next": "/fleet", "name": ADMIN,
                "password": "guess"}  # fmt: skip
        return client.post("/login", data=data, follow_redirects=False).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        codes = list(pool.map(guess, clients))
    assert sorted(codes) == [401] * MAX_FAILURES + [429] * (len(clients) - MAX_FAILURES)


def test_a_session_ends_at_its_expiry_and_when_its_admin_is_removed(dash_db: Database) -> None:
    add_admin(dash_db, ADMIN, PASSWORD, now=NOW, cost=TEST_COST)
    cookie, session = open_session(dash_db, ADMIN, hours=2, now=NOW)
    assert session_for(dash_db, cookie, now=NOW + timedelta(hours=1)) == session
    assert session_for(dash_db, cookie, now=NOW + timedelta(hours=2)) is None
    assert session_for(dash_db, cookie + "x", now=NOW) is None
    cookie, _ = open_session(dash_db, ADMIN, hours=2, now=NOW)
    assert remove_admin(dash_db, ADMIN)
    assert session_for(dash_db, cookie, now=NOW) is None


@pytest.mark.parametrize("password", ["short", " " * 3])
def test_a_short_password_is_refused(dash_db: Database, password: str) -> None:
    with pytest.raises(AdminError, match="at least 12 characters"):
        add_admin(dash_db, ADMIN, password, now=utc_naive(datetime.now(UTC)))
