"""The boot test's shared parts: the built image, its emulated card, the fleet, the artifacts.

Run by `make image-test` (marker `image`), after `make image`. One card goes through the
whole story in file order: refused file, provisioning, selling, the fleet's reboot, a
power cut (test_boot.py), then software updates of its slots (test_update.py). Artifacts
(serial console, screenshots, timings) stay in build/image-test/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import real_parts
from tests.image.fleet import Fleet, running_fleet
from tests.image.vm import Disk, Vm, have_host_tools

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "image-test"
CARD_BYTES = 8 * 1024**3  # an 8 GB card (the image fills 4): the data partition must grow


def built_image() -> Path:
    """$APPLIANCE_IMAGE, or the newest image `make image` left in build/image/."""
    if named := os.environ.get("APPLIANCE_IMAGE"):
        return Path(named)
    images = sorted((ROOT / "build" / "image").glob("appliance-*-arm64.img"), key=os.path.getmtime)
    if not images:
        real_parts.missing("a built image in build/image/", "make image")
    return images[-1]


class Timings:
    """Measured moments of the run, written to build/image-test/timings.json for image-bench."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, float] = {}

    def record(self, name: str, seconds: float) -> None:
        """Keep one measurement (seconds) and rewrite the file."""
        self.values[name] = round(seconds, 2)
        self.path.write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """build/image-test/, emptied at the start of the run and kept afterwards."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def timings(artifacts: Path) -> Timings:
    """Where the run's timings go."""
    return Timings(artifacts / "timings.json")


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """CA, mosquitto (mTLS), PostgreSQL and the hub on loopback."""
    with running_fleet(tmp_path_factory.mktemp("fleet")) as running:
        yield running


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The field tech's SSH key pair (private key path; the public one beside it)."""
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tech@image-test", "-f", str(key)],
        check=True,
    )
    return key


@pytest.fixture(scope="session")
def vm(
    artifacts: Path, fleet: Fleet, ssh_key: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vm]:
    """The emulated Pi with a fresh copy of the image as its card (powered off)."""
    have_host_tools()
    disk = Disk.from_image(
        built_image(), tmp_path_factory.mktemp("card") / "card.img", size_bytes=CARD_BYTES
    )
    machine = Vm(
        disk,
        artifacts,
        hub_port=fleet.device_port,
        ssh_key=ssh_key,
        bundle_port=fleet.bundle_port,
    )
    try:
        yield machine
    finally:
        machine.stop()
