"""Fixtures for hub-link tests: a real mosquitto broker per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker import MosquittoBroker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh mosquitto on a free loopback port, stopped after the test."""
    running = MosquittoBroker(tmp_path / "broker")
    running.start()
    try:
        yield running
    finally:
        running.stop()
