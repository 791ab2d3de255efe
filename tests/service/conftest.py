"""A simulated till with what follows a sale, for the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.service.after_sale import AfterSale
from appliance.service.assembly import Appliance
from appliance.service.demo import seed_demo_catalog
from appliance.settings import simulated_settings


@pytest.fixture
def till(tmp_path: Path) -> Iterator[tuple[Appliance, AfterSale]]:
    """The demo store opened with its simulated devices, and AfterSale listening."""
    settings = simulated_settings(tmp_path / "state")
    app = Appliance.open(settings)
    seed_demo_catalog(app.catalog, settings.store)
    devices = app.open_devices(simulate=True)
    after = AfterSale(app, devices)
    after.open()
    try:
        yield app, after
    finally:
        after.close()
        app.close_devices()
        app.close()
