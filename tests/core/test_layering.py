"""The core imports no I/O library and nothing of the appliance outside the core and its errors."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import appliance.core

CORE_DIR = Path(appliance.core.__file__).parent
PACKAGE_DIR = CORE_DIR.parent
FORBIDDEN = frozenset(
    {
        "kivy",
        "paho",
        "serial",
        "escpos",
        "nfc",
        "gpiozero",
        "peewee",
        "evdev",
        "msgspec",
        "sqlite3",
        "socket",
        "requests",
        "systemd",
    }
)
ALLOWED_APPLIANCE = ("appliance.core", "appliance.errors")


def core_modules() -> list[tuple[str, Path]]:
    """(dotted name, path) of every module under appliance/core/."""
    found = []
    for path in sorted(CORE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def imported_names(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, dotted name) of everything `source` imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.append((node.lineno, base))
            # `from appliance import store` imports the module appliance.store.
            names.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append((node.lineno, node.args[0].value))
    return sorted(names, key=lambda found: found[0])  # ast.walk is breadth-first


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """Why each import in `source` breaks the layering rule."""
    found = []
    for line, name in imported_names(source, module, is_package):
        top = name.split(".")[0]
        if top in FORBIDDEN:
            found.append(f"{module}:{line} imports {name} (I/O library {top})")
        elif (
            top == "appliance"
            # `from appliance import errors` also records the bare "appliance" base; skip it.
            and name != "appliance"
            and not any(
                name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED_APPLIANCE
            )
        ):
            found.append(f"{module}:{line} imports {name} (outside the core and errors)")
    return found


def forbidden_loaded(modules: list[str]) -> list[str]:
    """The loaded modules that belong to a forbidden library (C parts like _socket included)."""
    return sorted(m for m in modules if m.split(".")[0].lstrip("_") in FORBIDDEN)


def import_chain(importtime_log: str, target: str) -> str:
    """'a -> b -> target' from `python -X importtime` output: who first imported `target`."""
    entries = []
    for row in importtime_log.splitlines():
        if not row.startswith("import time:") or "|" not in row:
            continue
        name_field = row.rsplit("|", 1)[1]
        stripped = name_field.lstrip(" ")
        if stripped == "imported package":
            continue
        entries.append(((len(name_field) - len(stripped)) // 2, stripped))
    index = next((i for i, (_, name) in enumerate(entries) if name == target), None)
    if index is None:
        return target
    depth, chain = entries[index][0], [target]
    # Children are logged before their parent, one level deeper.
    for level, name in entries[index + 1 :]:
        if level < depth:
            chain.append(name)
            depth = level
    return " -> ".join(reversed(chain))


# The root package's __init__ is not the core; load the core without running it.
ISOLATED_IMPORT = """
import importlib, json, sys, types
root = types.ModuleType("appliance")
root.__path__ = [{package_dir!r}]
sys.modules["appliance"] = root
importlib.import_module({module!r})
print(json.dumps(sorted(sys.modules)))
"""


def run_python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """`python -I <flags> -c code` with this interpreter."""
    return subprocess.run(
        [sys.executable, "-I", *flags, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


# --- the checker itself --------------------------------------------------------------------------


def test_the_checker_flags_every_kind_of_forbidden_import() -> None:
    source = "\n".join(
        [
            "import serial.tools.list_ports",
            "from sqlite3 import connect",
            "from appliance.store.catalog import SqliteCatalog",
            "from appliance import settings",
            "from ..service import notify",
            "from .. import cli",
            "import importlib; importlib.import_module('kivy.app')",
            "__import__('paho.mqtt.client')",
            "import appliance.store",
        ]
    )
    found = violations(source, "appliance.core.fake")
    assert found == [
        "appliance.core.fake:1 imports serial.tools.list_ports (I/O library serial)",
        "appliance.core.fake:2 imports sqlite3 (I/O library sqlite3)",
        "appliance.core.fake:2 imports sqlite3.connect (I/O library sqlite3)",
        "appliance.core.fake:3 imports appliance.store.catalog (outside the core and errors)",
        "appliance.core.fake:3 imports appliance.store.catalog.SqliteCatalog"
        " (outside the core and errors)",
        "appliance.core.fake:4 imports appliance.settings (outside the core and errors)",
        "appliance.core.fake:5 imports appliance.service (outside the core and errors)",
        "appliance.core.fake:5 imports appliance.service.notify (outside the core and errors)",
        "appliance.core.fake:6 imports appliance.cli (outside the core and errors)",
        "appliance.core.fake:7 imports kivy.app (I/O library kivy)",
        "appliance.core.fake:8 imports paho.mqtt.client (I/O library paho)",
        "appliance.core.fake:9 imports appliance.store (outside the core and errors)",
    ]


def test_the_checker_allows_the_core_its_errors_and_the_standard_library() -> None:
    source = "\n".join(
        [
            "from appliance.core.money import Money",
            "from appliance.errors import CartError",
            "from appliance import errors",
            "from . import tax",
            "from .money import round_half_up",
            "import logging, threading, queue",
            "from babel.numbers import format_currency",
        ]
    )
    assert violations(source, "appliance.core.fake") == []


def test_import_chain_names_who_pulled_a_module_in() -> None:
    log = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:        1 |          1 |         _socket",
            "import time:        1 |          1 |       socket",
            "import time:        1 |          1 |     email.utils",
            "import time:        1 |          1 |   importlib.metadata",
            "import time:        1 |          1 | uuid6",
        ]
    )
    assert import_chain(log, "socket") == "uuid6 -> importlib.metadata -> email.utils -> socket"


# --- the core ------------------------------------------------------------------------------------


def test_the_walk_sees_every_core_module() -> None:
    names = {name for name, _ in core_modules()}
    assert {
        "appliance.core",
        "appliance.core.barcode",
        "appliance.core.cart",
        "appliance.core.catalog",
        "appliance.core.clock",
        "appliance.core.discount",
        "appliance.core.events",
        "appliance.core.ids",
        "appliance.core.money",
        "appliance.core.sale",
        "appliance.core.tax",
        "appliance.core.tender",
    } <= names


def test_no_core_module_imports_an_io_library_or_the_outer_appliance() -> None:
    found = []
    for name, path in core_modules():
        found.extend(violations(path.read_text(), name, is_package=path.name == "__init__.py"))
    assert not found, "the core must stay pure:\n" + "\n".join(found)


def test_no_core_module_loads_an_io_library_transitively() -> None:
    problems = []
    for name, _ in core_modules():
        code = ISOLATED_IMPORT.format(package_dir=str(PACKAGE_DIR), module=name)
        loaded = json.loads(run_python(code).stdout)
        bad = forbidden_loaded(loaded)
        if bad:
            log = run_python(code, "-X", "importtime").stderr
            chains = ", ".join(import_chain(log, m) for m in bad if not m.startswith("_"))
            problems.append(f"importing {name} loads {', '.join(bad)}: {chains}")
    assert not problems, "\n".join(problems)


def test_importing_the_core_through_the_package_loads_no_io_library() -> None:
    modules = [name for name, _ in core_modules()]
    code = "; ".join(f"import {m}" for m in modules) + "; import sys; print(sorted(sys.modules))"
    loaded = run_python(code).stdout
    bad = forbidden_loaded(ast.literal_eval(loaded))
    if bad:
        log = run_python(code, "-X", "importtime").stderr
        chains = ", ".join(import_chain(log, m) for m in bad if not m.startswith("_"))
        pytest.fail(f"importing the core loads {', '.join(bad)}: {chains}")
