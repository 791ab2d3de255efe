"""Screens keep to their rules: no database handle, store objects handed in, one file layout."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import appliance.screens

SCREENS_DIR = Path(appliance.screens.__file__).parent
SCREEN_FOLDERS = ("customer", "staff")
# What a screen may take from the store: values and a pure reading of the ledger it is given.
STORE_NAMES_ALLOWED = frozenset({"ParkedCart", "DayTotals", "day_totals", "QuarantinedSale"})
# The raw database, by the names it goes under.
DATABASE_NAMES = frozenset({"db", "SqliteDatabase", "execute_sql", "connection_context"})


def screen_modules() -> Iterator[tuple[Path, ast.Module]]:
    """Every Python module of the screens, parsed."""
    for path in sorted(SCREENS_DIR.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def where(path: Path, node: ast.AST) -> str:
    """A module and line, for a failure message."""
    return f"{path.relative_to(SCREENS_DIR)}:{getattr(node, 'lineno', 0)}"


def database_uses(tree: ast.Module) -> Iterator[ast.AST]:
    """Imports of peewee, and names or attributes that are the raw database."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            modules = []
        if any(module.split(".")[0] == "peewee" for module in modules):
            yield node
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if name in DATABASE_NAMES:
            yield node


def test_no_screen_module_touches_the_database_handle() -> None:
    """No view or presenter imports peewee or reaches for `db`: the assembly hands them stores."""
    found = [where(path, node) for path, tree in screen_modules() for node in database_uses(tree)]
    assert found == []


def test_screens_build_no_store_objects() -> None:
    """From the store, screens import values only; store objects come built from the assembly."""
    found = [
        f"{where(path, node)} {alias.name}"
        for path, tree in screen_modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("appliance.store")
        for alias in node.names
        if alias.name not in STORE_NAMES_ALLOWED
    ]
    assert found == []


def test_every_screen_presenter_lies_beside_its_view_and_rules() -> None:
    """`<screen>_presenter.py` beside `<screen>.py` and `<screen>.kv`; no presenters subfolder."""
    for folder in SCREEN_FOLDERS:
        here = SCREENS_DIR / folder
        assert not (here / "presenters").exists()
        presenters = sorted(here.glob("*_presenter.py"))
        assert presenters
        for presenter in presenters:
            screen = presenter.name.removesuffix("_presenter.py")
            assert (here / f"{screen}.py").exists(), f"{presenter.name} has no view beside it"
            assert (here / f"{screen}.kv").exists(), f"{presenter.name} has no rules beside it"
