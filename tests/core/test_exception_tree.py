"""One exception tree: every exception class of `appliance` and `hub` derives from ApplianceError.

The modules are imported in a fresh interpreter (the screens need Kivy set up offscreen
before its first import), and each exception class they define is checked there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import appliance.errors

ROOT = Path(appliance.errors.__file__).parents[1]

# "module.Class": why it may stand outside the tree. Empty: none needs to.
OUTSIDE_THE_TREE: dict[str, str] = {}

WALK = """
import importlib, inspect, json, pkgutil
from tests.screens.kivy_setup import prepare_offscreen_kivy

prepare_offscreen_kivy()
from appliance.errors import ApplianceError

found, broken = [], []
for package in ("appliance", "hub"):
    root = importlib.import_module(package)
    # A __main__ module runs its command when imported; it defines no class.
    names = [package] + [
        m.name for m in pkgutil.walk_packages(root.__path__, package + ".")
        if not m.name.endswith(".__main__")
    ]
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception as err:
            broken.append(f"{name}: {type(err).__name__}: {err}")
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                found.append([f"{name}.{cls.__qualname__}", issubclass(cls, ApplianceError),
                              bool((cls.__doc__ or "").strip())])
print(json.dumps({"found": found, "broken": broken}))
"""


@dataclass(frozen=True, slots=True)
class Walk:
    """Every exception class the modules define, and the modules that would not import."""

    in_tree: dict[str, bool]  # qualified name -> derives from ApplianceError
    documented: dict[str, bool]  # qualified name -> has a docstring
    broken: list[str]


@pytest.fixture(scope="module")
def walk() -> Walk:
    """The walk, run once in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", WALK],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Walk(
        {name: in_tree for name, in_tree, _ in result["found"]},
        {name: documented for name, _, documented in result["found"]},
        result["broken"],
    )


def test_the_walk_imports_every_module_and_reaches_module_local_classes(walk: Walk) -> None:
    assert walk.broken == []
    assert {
        "appliance.errors.ApplianceError",
        "appliance.errors.DecodeError",
        "appliance.catalog_import.BadRowsError",
        "hub.db.HubDatabaseError",
    } <= set(walk.in_tree)


def test_every_exception_class_derives_from_appliance_error(walk: Walk) -> None:
    outside = sorted(
        f"{name} does not derive from appliance.errors.ApplianceError"
        for name, in_tree in walk.in_tree.items()
        if not in_tree and name not in OUTSIDE_THE_TREE
    )
    assert not outside, "\n".join(outside)


def test_every_exception_class_has_a_docstring(walk: Walk) -> None:
    assert sorted(name for name, documented in walk.documented.items() if not documented) == []


def test_the_tree_names_every_exception_class_kept_outside_it(walk: Walk) -> None:
    local = {name for name in walk.in_tree if not name.startswith("appliance.errors.")}
    unlisted = sorted(name for name in local if name not in (appliance.errors.__doc__ or ""))
    assert not unlisted, "appliance/errors.py's docstring should say where these live"


def test_the_allowances_name_classes_that_still_exist(walk: Walk) -> None:
    assert set(OUTSIDE_THE_TREE) <= set(walk.in_tree)
