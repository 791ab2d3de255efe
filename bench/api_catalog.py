"""Hub API to device: a change made over HTTP reaching the store's device as a catalog delta.

Real processes, as a hub is deployed: mosquitto, one `appliance-hub serve` worker and
`appliance-hub web` on one SQLite hub database; a raw paho client plays the store's
device, subscribed to its catalog topic. Each sample is timed from just before the HTTP
request to the delta's arrival at the device: a price change (PUT with If-Match), then a
stock movement (POST), which the web process turns into a stock-only catalog version.
The serve worker pushes new versions every 0.25 s (hub/catalog_push.py), so a random
pause before each request lets it land anywhere in that period. Target: within a second.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from appliance.mqtt import topics
from bench.broker import BenchBroker, free_port, running_broker
from bench.hub_workers import SOURCE_ROOT, hub_workers
from bench.result import Row, Target
from bench.stats import percentile
from hub.api.access import issue_token
from hub.catalog_push import PERIOD
from hub.db import open_hub_database
from hub.migrations import migrate
from hub.stores import assign_device

NAME = "api_catalog"
log = logging.getLogger("bench")
STORE = "bench-store"
DEVICE = "bench-kiosk"
SKU = "BENCH-1"
READY_S = 30.0
WAIT_S = 10.0  # a delta that takes longer failed the run
TARGET_MS = 1000.0
SEED = 15
WEB_COMMAND = (sys.executable, "-c", "from hub.cli import main; main()", "web")


@dataclass(frozen=True, slots=True)
class Sizes:
    """Timed price changes and stock movements."""

    prices: int
    movements: int


FULL = Sizes(prices=40, movements=40)
QUICK = Sizes(prices=6, movements=6)

_PRODUCT = {
    "name": "Bench tin",
    "price": 100,
    "currency": "EUR",
    "tax_class": "standard",
    "description": "A tin the benchmark reprices.",
}


class _Device:
    """A bare paho client subscribed to the device's catalog topic."""

    def __init__(self, broker: BenchBroker) -> None:
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda _c, _u, m: self.inbox.put(json.loads(m.payload))
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.connect(broker.host, broker.port, clean_start=True)
        self.client.loop_start()
        self.client.subscribe(topics.catalog_down(DEVICE), qos=1)
        if not subscribed.wait(WAIT_S):
            raise RuntimeError("the broker did not grant the device's subscription")

    def until_version(self, version: int) -> float:
        """Wait for the message that brings `version`; the monotonic time it arrived."""
        deadline = time.monotonic() + WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            message = self.inbox.get(timeout=left)
            if message.get("to_version", message.get("version")) == version:
                return time.monotonic()
        raise TimeoutError(f"catalog v{version} did not reach the device in {WAIT_S:g} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def _web(workdir: Path, db_url: str, broker: BenchBroker) -> Iterator[str]:
    """`appliance-hub web` on a free loopback port; its base URL once it answers."""
    port = free_port()
    path = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
    command = [
        *WEB_COMMAND,
        *("--db", db_url, "--host", broker.host, "--port", str(broker.port)),
        *("--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"),
    ]
    with (workdir / "web.log").open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": path},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/v1/schema/openapi.json").status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the web process did not answer: see {workdir / 'web.log'}")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _timed(
    device: _Device, rng: random.Random, change: Callable[[], httpx.Response], version: int
) -> float:
    """Seconds from the request to the device holding `version`."""
    time.sleep(rng.uniform(0, PERIOD))  # anywhere in the worker's push period
    started = time.monotonic()
    response = change()
    response.raise_for_status()
    return device.until_version(version) - started


def _rows(metric: str, samples: list[float], details: dict[str, Any]) -> list[Row]:
    ms = [s * 1000 for s in samples]
    summary = {
        "n": len(ms),
        "median_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "max_ms": round(max(ms), 1),
        "push_period_ms": PERIOD * 1000,
        **details,
    }
    return [
        Row(NAME, f"{metric} p50", round(percentile(ms, 50), 1), "ms", details=summary),
        Row(
            NAME,
            f"{metric} max",
            round(max(ms), 1),
            "ms",
            target=Target(TARGET_MS, at_most=True),
            note=f"p90 {summary['p90_ms']} ms; the worker pushes every {PERIOD * 1000:g} ms",
        ),
    ]


def run(workdir: Path, *, quick: bool = False) -> list[Row]:
    """Price changes and stock movements through the API, timed to the device."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'hub.db'}"
    db = open_hub_database(db_url)
    migrate(db)
    token = issue_token(db, "bench", "admin").value
    assign_device(db, DEVICE, STORE)
    db.close()
    rng = random.Random(SEED)
    with (
        running_broker(workdir / "broker") as broker,
        hub_workers(workdir / "workers", broker, db_url, 1),
        _web(workdir, db_url, broker) as base,
        httpx.Client(base_url=f"{base}/api/v1/stores/{STORE}", timeout=WAIT_S) as http,
    ):
        http.headers["Authorization"] = f"Bearer {token}"
        device = _Device(broker)
        try:
            http.put(f"/products/{SKU}", json=_PRODUCT).raise_for_status()  # v1
            device.until_version(1)  # the worker runs and pushes: the chain is up
            http.post(f"/stock/{SKU}/count", json={"count": 10_000}).raise_for_status()
            device.until_version(2)
            version, record = 2, 1  # a count leaves the record's version as it was
            prices: list[float] = []
            for n in range(sizes.prices):
                body = {**_PRODUCT, "price": 101 + n}
                headers = {"If-Match": f'"{record}"'}
                version += 1
                put = partial(http.put, f"/products/{SKU}", json=body, headers=headers)
                prices.append(_timed(device, rng, put, version))
                record = version
            movements: list[float] = []
            for n in range(sizes.movements):
                body = {"delta": -1, "reason": "web_order", "reference": f"bench-{n}"}
                version += 1
                post = partial(http.post, f"/stock/{SKU}/movements", json=body)
                movements.append(_timed(device, rng, post, version))
        finally:
            device.close()
    log.info("api_catalog: %d price changes, %d movements", len(prices), len(movements))
    details = {"database": "sqlite", "processes": "mosquitto, 1 serve worker, web"}
    return [
        *_rows("price change -> device", prices, details),
        *_rows("stock movement -> device", movements, details),
    ]
