"""The real kiosk app, offscreen, over a simulated appliance (pty scanner, TCP printer, ...)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.screens.kivy_setup import prepare_offscreen_kivy

prepare_offscreen_kivy()

from tests.screens.harness import Kiosk, open_kiosk  # noqa: E402  (after Kivy's environment)


@pytest.fixture
def kiosk(tmp_path: Path) -> Iterator[Kiosk]:
    """A self-checkout kiosk at 800x480 with every simulator running."""
    with open_kiosk(tmp_path) as harness:
        yield harness


@pytest.fixture
def staff_till(tmp_path: Path) -> Iterator[Kiosk]:
    """A staffed till (tablet, 1280x800) with every simulator running."""
    with open_kiosk(tmp_path, screen={"mode": "staff", "width": 1280, "height": 800}) as harness:
        yield harness
