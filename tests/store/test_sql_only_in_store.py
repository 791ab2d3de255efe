"""SQL lives in appliance/store/ only: no other module of the appliance runs or holds any.

Every table is a migration and every query a store method, so a schema change is made
in one package. The hub has its own database layer and is not checked here.
"""

from __future__ import annotations

from pathlib import Path

import appliance

PACKAGE_DIR = Path(appliance.__file__).parent
STORE_DIR = PACKAGE_DIR / "store"
# Upper case on purpose: "SELECT " is SQL, "select " is English (or a peewee query,
# which the models import catches).
SQL_MARKS = ("execute_sql(", "CREATE TABLE", "SELECT ", "store.models import")


def sql_lines(source: str) -> list[tuple[int, str]]:
    """(line, mark) of every SQL mark in `source`."""
    return [
        (number, mark)
        for number, line in enumerate(source.splitlines(), start=1)
        for mark in SQL_MARKS
        if mark in line
    ]


def modules_outside_the_store() -> list[Path]:
    """Every Python file of the appliance package that is not under store/."""
    return [p for p in sorted(PACKAGE_DIR.rglob("*.py")) if STORE_DIR not in p.parents]


def test_the_checker_finds_each_mark() -> None:
    source = "\n".join(
        [
            'db.execute_sql("PRAGMA user_version")',
            '_DDL = "CREATE TABLE IF NOT EXISTS seen (id TEXT)"',
            '_READ = "SELECT value FROM meta WHERE key = ?"',
            "from appliance.store.models import Outbox",
            "# the user may select a line; nothing here is SQL",
        ]
    )
    assert sql_lines(source) == [
        (1, "execute_sql("),
        (2, "CREATE TABLE"),
        (3, "SELECT "),
        (4, "store.models import"),
    ]


def test_the_walk_sees_the_packages_around_the_store() -> None:
    walked = {p.relative_to(PACKAGE_DIR).parts[0] for p in modules_outside_the_store()}
    assert {"mqtt", "service", "cli", "core", "drivers", "screens"} <= walked
    assert "store" not in walked


def test_no_module_outside_the_store_holds_sql() -> None:
    found = [
        f"{path.relative_to(PACKAGE_DIR.parent)}:{line}: {mark.strip()}"
        for path in modules_outside_the_store()
        for line, mark in sql_lines(path.read_text(encoding="utf-8"))
    ]
    assert not found, "SQL belongs in appliance/store/ (a migration or a store class):\n" + (
        "\n".join(found)
    )
