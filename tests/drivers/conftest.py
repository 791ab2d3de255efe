"""Shared fixtures of the driver tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Every simulator, probe and worker thread a test starts is joined by its end."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, leaked
