"""Migration 9 on SQLite and PostgreSQL: its tables exist, and running it again changes nothing."""

from __future__ import annotations

from datetime import datetime

from peewee import Database

from hub.dashboard.accounts import add_admin, list_admins
from hub.dashboard.models import migrate_dashboard
from hub.migrations import schema_version
from tests.hub.dashboard.conftest import ADMIN, PASSWORD, TEST_COST

TABLES = {"dashboard_admin", "dashboard_session", "login_failure", "held_command",
          "telemetry_point"}  # fmt: skip


def test_migration_9_makes_the_dashboards_tables_and_can_run_again(dash_db: Database) -> None:
    assert schema_version(dash_db) >= 9
    assert set(dash_db.get_tables()) >= TABLES
    add_admin(dash_db, ADMIN, PASSWORD, now=datetime(2026, 3, 2), cost=TEST_COST)
    with dash_db.atomic():
        migrate_dashboard(dash_db)
    assert [admin.name for admin in list_admins(dash_db)] == [ADMIN]
