"""The real parts the tests run against (servers, programs, modules), and what a missing one does.

`make test` installs every one of them. Where one is missing anyway, a developer's run skips
the tests that need it with a message saying what to install; a CI run (`CI=true`) fails
them with the same message, so a missing part can never pass as green. The only skips left
are for hardware a test machine cannot have (`/dev/uinput`, USB devices).
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest


def under_ci() -> bool:
    """True in a CI run (`CI=true`), where nothing the tests need may be missing."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def cannot_run(message: str) -> NoReturn:
    """Fail under CI, skip elsewhere, saying why the test cannot run here."""
    if under_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def missing(what: str, install: str) -> NoReturn:
    """`what` is missing; `install` says how to get it."""
    cannot_run(f"{what} is missing; install it with: {install}")


def binary(name: str, package: str, *, also: tuple[str, ...] = ()) -> str:
    """The path of a program on PATH (or at one of `also`), or `missing` naming its package."""
    found = shutil.which(name)
    if found is None:
        found = next((path for path in also if Path(path).exists()), None)
    if found is None:
        missing(f"the program {name!r}", f"apt-get install {package}")
    return found


def module(name: str, requirement: str) -> ModuleType:
    """An importable Python module, or `missing` naming the pip requirement."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name!r}", f"pip install {requirement}")


def absent(path: Path, why: str) -> None:
    """`cannot_run` when `path` exists on this machine and would mislead the test."""
    if path.exists():
        cannot_run(f"{path} exists on this machine and {why}; move it away to run these tests")
