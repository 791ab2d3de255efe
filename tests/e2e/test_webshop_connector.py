"""End to end, real processes: the example web-shop connector keeps a JSON file of a store's
stock in step with the hub from signed webhooks, and its web orders reach the appliance.

Mosquitto, `appliance-hub serve`, `appliance-hub web`, `appliance run --headless --simulate`
and examples/webshop_connector/connector.py all run as their own processes, on loopback.
The connector speaks only the published HTTP API and webhooks. How long a sale took to reach
the shop's file is printed, never asserted: a shared machine's timing is no test result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import peewee
import pytest

from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from tests.broker import MosquittoBroker, free_port
from tests.e2e.conftest import Processes

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
CONNECTOR = ROOT / "examples" / "webshop_connector" / "connector.py"
DEVICE = "kiosk-shop"
STORE = "berlin"
SKU = "MUG-1"
BARCODE = "4012345678901"
COUNTED = 20
ORDERED = 3
BOUND = 60.0  # seconds: a generous bound for anything to arrive; nothing here is timed


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)


def _hub(*args: str) -> subprocess.CompletedProcess[str]:
    return _run(str(BIN / "appliance-hub"), *args)


def _connector(*args: str) -> subprocess.CompletedProcess[str]:
    return _run(sys.executable, str(CONNECTOR), *args)


def _until(check: Callable[[], Any], what: str, timeout: float = BOUND) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Rig:
    """The running parts: where they listen and what they keep."""

    tmp: Path
    broker_port: int
    hub_db: str
    api: str  # the hub's base URL
    device_db: Path
    config: Path  # the appliance's

    def token(self, name: str, scope: str) -> str:
        """A new API token of this scope, limited to the store."""
        made = _hub(
            "token", "create", name, "--scope", scope, "--store", STORE, "--db", self.hub_db
        )
        assert made.returncode == 0, made.stdout + made.stderr
        return made.stdout.strip()

    def device_stock(self) -> int | None:
        """The appliance's own stock of the product, from its database (None: not there yet)."""
        if not self.device_db.exists():
            return None
        db = open_database(self.device_db)
        try:
            return SqliteCatalog(db).stock_of(SKU)
        except peewee.OperationalError:
            return None  # the appliance is still creating its tables
        finally:
            db.close()

    def sim(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`appliance sim ...` against the running appliance."""
        return _run(str(BIN / "appliance"), "sim", *args, "--config", str(self.config))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running_store(tmp_path: Path, processes: Processes) -> Iterator[Rig]:
    """Broker, hub worker, hub web and an appliance of the store holding a counted product."""
    port = free_port()
    broker = MosquittoBroker(tmp_path / "broker", port=port)
    broker.start()
    hub_db = f"sqlite:///{tmp_path / 'hub.db'}"
    net = ("--host", "127.0.0.1", "--port", str(port))
    web_port = free_port()
    rig = Rig(
        tmp=tmp_path,
        broker_port=port,
        hub_db=hub_db,
        api=f"http://127.0.0.1:{web_port}",
        device_db=tmp_path / "device" / "appliance.db",
        config=tmp_path / "appliance.toml",
    )
    try:
        hub = str(BIN / "appliance-hub")
        processes.start(hub, "serve", "--db", hub_db, *net, log=tmp_path / "hub.log")
        _until(lambda: _hub("fleet", "list", "--db", hub_db).returncode == 0, "the hub")
        processes.start(
            *(hub, "web", "--db", hub_db, *net, "--listen", f"127.0.0.1:{web_port}"),
            log=tmp_path / "web.log",
        )
        _until(lambda: _answers(f"{rig.api}/api/v1/schema/openapi.json"), "the hub's API")
        assert _hub("fleet", "assign", DEVICE, STORE, "--db", hub_db).returncode == 0
        csv = tmp_path / "berlin.csv"
        csv.write_text(
            "sku,name,price,tax_class,stock_tracked,barcodes,stock\n"
            f"{SKU},Enamel mug,12.50,standard,yes,{BARCODE},{COUNTED}\n"
        )
        imported = _hub("catalog", "import", str(csv), "--store", STORE, "--db", hub_db, *net)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        rig.config.write_text(
            f'[device]\nid = "{DEVICE}"\n[database]\npath = "{rig.device_db}"\n'
            f'[hub]\nhost = "127.0.0.1"\nport = {port}\n'
        )
        processes.start(
            *(str(BIN / "appliance"), "run", "--headless", "--simulate"),
            *("--config", str(rig.config)),
            log=tmp_path / "appliance.log",
        )
        _until(lambda: rig.device_stock() == COUNTED, "the counted product on the appliance")
        yield rig
    finally:
        processes.stop_all()
        broker.stop()


def _shop(path: Path) -> dict[str, Any]:
    """The connector's file; empty until it first wrote it (it is replaced whole, never torn)."""
    return json.loads(path.read_text()) if path.exists() else {}


def _shop_stock(path: Path) -> int | None:
    """The web shop's stock of the product (None: not there yet)."""
    stock: int | None = _shop(path).get("products", {}).get(SKU, {}).get("stock")
    return stock


def _signed(secret: str, msg_id: str, body: bytes, stamp: int) -> dict[str, str]:
    """Standard Webhooks headers made by hand, as the hub makes them."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        "content-type": "application/json",
    }


def test_a_sale_reaches_the_web_shop_and_a_web_order_reaches_the_appliance(
    tmp_path: Path, processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))
    with running_store(tmp_path, processes) as rig:
        admin, shop_token = rig.token("webhooks", "admin"), rig.token("webshop", "write")
        hub_args = ("--hub", rig.api, "--store", STORE)
        receiver = f"127.0.0.1:{free_port()}"
        registered = _connector(
            "register", *hub_args, "--token", admin, "--url", f"http://{receiver}/webhooks"
        )
        assert registered.returncode == 0, registered.stderr
        secret = registered.stdout.strip()
        assert secret.startswith("whsec_")

        state = tmp_path / "webshop-stock.json"
        processes.start(
            *(sys.executable, str(CONNECTOR), "serve", *hub_args, "--token", shop_token),
            *("--state", str(state), "--listen", receiver, "--secret", secret),
            log=tmp_path / "connector.log",
        )
        _until(lambda: _shop_stock(state) == COUNTED, "the connector's first sync")
        synced = _shop(state)["products"][SKU]
        assert (synced["name"], synced["price"], synced["currency"]) == ("Enamel mug", 1250, "EUR")

        _sell_one_at_the_till(rig)
        _until(lambda: _shop_stock(state) == COUNTED - 1, "the sale's level in the web shop")
        written = _moment(_shop(state)["products"][SKU]["written_at"])
        with httpx.Client(
            base_url=f"{rig.api}/api/v1", headers={"Authorization": f"Bearer {shop_token}"}
        ) as api:
            [sale] = api.get("/sales", params={"store": STORE}).json()["items"]
            received, made = _moment(sale["received_at"]), _moment(sale["created_at"])
            print(
                f"\nsale stored at the hub -> web shop file written: "
                f"{(written - received).total_seconds() * 1000:.0f} ms; "
                f"sale made on the device -> written: "
                f"{(written - made).total_seconds() * 1000:.0f} ms"
            )

            # A web order of three mugs: the hub's level and the appliance's stock go down.
            order = ("order", *hub_args, "--token", shop_token, SKU, str(ORDERED))
            first = _connector(*order, "--order-id", "WEB-1001")
            assert first.returncode == 0, first.stderr
            answer = json.loads(first.stdout)
            assert (answer["status"], answer["level"]) == (201, COUNTED - 1 - ORDERED)
            level = COUNTED - 1 - ORDERED
            _until(lambda: rig.device_stock() == level, "the web order at the appliance")
            _until(lambda: _shop_stock(state) == level, "the web order in the web shop file")

            # The same order sent again (a retry) is the movement already recorded.
            again = _connector(*order, "--order-id", "WEB-1001")
            assert again.returncode == 0, again.stderr
            repeated = json.loads(again.stdout)
            assert (repeated["status"], repeated["id"]) == (200, answer["id"])
            assert api.get(f"/stores/{STORE}/stock/{SKU}").json()["level"] == level
            moves = api.get(f"/stores/{STORE}/stock/{SKU}/movements").json()["items"]
            assert [(m["delta"], m["reason"], m["reference"]) for m in moves] == [
                (-ORDERED, "web_order", "WEB-1001")
            ]
            _describe_the_product(api, state)

        _check_the_receiver(receiver, secret, state, level)
        assert rig.device_stock() == level, "the repeated order moved the appliance's stock"


def _sell_one_at_the_till(rig: Rig) -> None:
    """A customer buys one mug at the appliance's checkout: scanned, paid cash."""
    log = rig.tmp / "appliance.log"
    accepted, refused = f"scanned {BARCODE} on scanner", f"scan {BARCODE} on scanner refused"
    deadline = time.monotonic() + BOUND
    # The device database has the product a moment before the till's catalog in memory
    # does: a scan in between is refused, as at a real till; the customer scans again.
    while accepted not in log.read_text():
        assert time.monotonic() < deadline, "the till never took the scan"
        tries = log.read_text().count(refused)
        assert rig.sim("scan", BARCODE).returncode == 0

        def answered(before: int = tries) -> bool:
            text = log.read_text()
            return accepted in text or text.count(refused) > before

        _until(answered, "the till's answer to the scan")
    paid = rig.sim("pay", "cash")
    assert paid.returncode == 0, paid.stdout + paid.stderr
    assert rig.device_stock() == COUNTED - 1


def _check_the_receiver(receiver: str, secret: str, state: Path, level: int) -> None:
    """A message applied already changes nothing; a stale or wrongly signed one is refused."""
    seen = _shop(state)["seen"][-1]
    now = int(time.time())
    forged = json.dumps(
        {
            "type": "stock.changed",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "data": {"store": STORE, "sku": SKU, "level": 999, "cause": "sale"},
        }
    ).encode()
    url = f"http://{receiver}/webhooks"
    repeated = httpx.post(url, content=forged, headers=_signed(secret, seen, forged, now))
    stale = _signed(secret, "msg_stale", forged, now - 301)
    other = _signed("whsec_" + base64.b64encode(b"k" * 32).decode(), "msg_other", forged, now)
    assert repeated.status_code == 204
    assert httpx.post(url, content=forged, headers=stale).status_code == 401
    assert httpx.post(url, content=forged, headers=other).status_code == 401
    assert _shop_stock(state) == level


def _describe_the_product(api: httpx.Client, state: Path) -> None:
    """A description written at the hub reaches the shop's page, with the stock kept."""
    product = api.get(f"/stores/{STORE}/products/{SKU}").json()
    text = "Hand-dipped enamel, 350 ml."
    changed = api.put(
        f"/stores/{STORE}/products/{SKU}",
        json={**product, "description": text},
        headers={"If-Match": f'"{product["version"]}"'},
    )
    assert changed.status_code == 200, changed.text
    shown = _until(
        lambda: (entry := _shop(state)["products"][SKU])["description"] == text and entry,
        "the product's description in the web shop file",
    )
    assert shown["version"] == changed.json()["version"] > product["version"]
    assert shown["stock"] == COUNTED - 1 - ORDERED
