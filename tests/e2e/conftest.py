"""Real processes for end-to-end tests, each stopped by PID at the end, and the browser."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import real_parts
from tests.screens.kivy_setup import prepare_offscreen_kivy

# Before a test module here imports Kivy (the receipt page test makes the kiosk's QR link):
# each worker's own Kivy home, or two workers race to create ~/.kivy on a fresh machine.
prepare_offscreen_kivy()


class Processes:
    """Child processes this test started, stopped by PID at the end."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        process = subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ}
        )
        handle.close()
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.stop_all()


CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through playwright (never a downloaded browser)."""
    sync_api = real_parts.module("playwright.sync_api", "playwright")
    executable = real_parts.binary("chromium", "chromium", also=("/usr/bin/chromium",))
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield launched
        finally:
            launched.close()
