"""A staged rollout to a store's kiosks, through the real hub, broker and bundle server.

Real processes on loopback: mosquitto with the hub's mTLS listeners, `appliance-hub serve`
and `appliance-hub bundles` (HTTPS, fleet client certificates only), and four appliances
(`appliance run --headless --simulate`), each under the host firmware
(appliance.update.host_firmware) over slots kept as files. The boot tests prove the Pi's
slot switching under qemu; this test proves the fleet logic on top of it:

- release 2026.12.2 goes to half the store, then to all of it: each kiosk downloads it
  over mTLS with range requests, reboots into the try, passes the health gate, commits
  and reports the new release; a kiosk never gets the command twice; a sale made before
  and one after the update reach the hub exactly once;
- release 2026.12.3 does not boot: every kiosk it reaches falls back to its old slot by
  itself and reports the rollback with the reason, the rollout pauses once the rollbacks
  pass its threshold, and growing it while paused sends nothing more.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store.catalog import SqliteCatalog
from appliance.store.database import open_database
from appliance.update.slots import BOOT_PARTITIONS, read_autoboot, slot_of
from hub.db import open_hub_database
from hub.releases.models import DeviceUpdate
from tests.broker import free_port
from tests.e2e.conftest import Processes
from tests.mqtt.tls_broker import Pki, TlsBroker

BIN = Path(sys.executable).parent
STORE = "lisbon"
# Four: enough for two stages and a pause, and few enough that starting them all at once
# does not starve the tests running beside this one of CPU.
DEVICES = [f"kiosk-up-{n}" for n in range(1, 5)]
OLD, GOOD, BAD = "2026.12.1", "2026.12.2", "2026.12.3"
EAN = "4001234567891"
WAIT_S = 240.0  # a bound on what must happen, never a timing claim


def _until(check: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _image(release: str | None, size: int) -> bytes:
    """A slot image: the release it carries on its first line (none: it does not boot)."""
    head = f"appliance-release {release}\n".encode() if release else b"no system here\n"
    body = bytes(range(256)) * (size // 256)  # compresses, but not to nothing
    return head + body[: size - len(head)]


class Fleet:
    """The hub side and four kiosks, every process started and stopped by PID."""

    def __init__(self, tmp: Path, processes: Processes) -> None:
        self.tmp = tmp
        self.processes = processes
        self.pki = Pki.create(tmp / "pki")
        self.broker = TlsBroker(tmp / "broker", self.pki)
        self.db_url = f"sqlite:///{tmp / 'hub.db'}"
        self.keys = tmp / "keys"
        self.bundle_port = free_port()
        self.kiosks: dict[str, subprocess.Popen[bytes]] = {}

    def hub(self, *args: str, net: bool = False) -> str:
        """`appliance-hub ARGS` (with the hub's broker options when `net`); its stdout."""
        command = [str(BIN / "appliance-hub"), *args]
        if net:
            command += self._net()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"appliance-hub {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def _net(self) -> list[str]:
        hub = self.pki.client("hub")
        return [
            *("--host", "127.0.0.1", "--port", str(self.broker.hub_port)),
            *("--tls-ca", str(hub.ca_cert), "--tls-cert", str(hub.cert), "--tls-key", str(hub.key)),
        ]

    def start_hub(self) -> None:
        """Keys, the broker, the store's catalog, `serve` and `bundles`."""
        self.broker.start()
        self.hub("fleet", "keygen", str(self.keys))
        self.hub("release", "keygen", str(self.keys / "release.key"))
        self.processes.start(
            str(BIN / "appliance-hub"), "serve", "--db", self.db_url, *self._net(),
            log=self.tmp / "serve.log",
        )  # fmt: skip
        self.processes.start(
            str(BIN / "appliance-hub"), "bundles", "--db", self.db_url,
            "--listen", f"127.0.0.1:{self.bundle_port}",
            "--cert", str(self.pki.server_cert), "--key", str(self.pki.server_key),
            "--client-ca", str(self.pki.ca_cert),
            log=self.tmp / "bundles.log",
        )  # fmt: skip
        _until(self._serving, "serve to create the hub's tables")
        for device in DEVICES:
            self.hub("fleet", "assign", device, STORE, "--db", self.db_url)
        csv_file = self.tmp / "catalog.csv"
        csv_file.write_text(
            f"sku,name,price,tax_class,barcodes,stock\nTEA-1,Green tea,2.40,standard,{EAN},50\n"
        )
        self.hub("catalog", "import", str(csv_file), "--store", STORE, "--db", self.db_url,
                 net=True)  # fmt: skip

    def _serving(self) -> bool:
        listing = [str(BIN / "appliance-hub"), "fleet", "list", "--db", self.db_url]
        return subprocess.run(listing, capture_output=True, timeout=60, check=False).returncode == 0

    def add_release(self, version: str, *, boots: bool) -> None:
        """Build and sign a release at the release key, and add it at the hub."""
        folder = self.tmp / "releases" / version
        folder.mkdir(parents=True)
        (folder / "boot.img").write_bytes(_image(None, 96 * 1024)[::-1])
        (folder / "root.img").write_bytes(_image(version if boots else None, 1_500_000))
        bundle = folder / f"{version}.tar"
        self.hub(
            "release", "build", "--boot", str(folder / "boot.img"),
            "--root", str(folder / "root.img"), "--version", version, "--min-version", OLD,
            "--key", str(self.keys / "release.key"), "-o", str(bundle),
        )  # fmt: skip
        self.hub("release", "add", str(bundle), "--key", str(self.keys / "release.pub"),
                 "--releases", str(self.tmp / "hub-releases"), "--db", self.db_url)  # fmt: skip

    def rollout(self, action: str, version: str, *options: str) -> str:
        """`appliance-hub rollout ACTION VERSION ...`, signed and published like an admin's."""
        return self.hub(
            "rollout", action, version, *options, "--db", self.db_url,
            "--fleet-key", str(self.keys / "fleet.key"),
            "--bundle-url", f"https://localhost:{self.bundle_port}",
            net=True,
        )  # fmt: skip

    def status(self, version: str) -> dict[str, Any]:
        """The one rollout of `version`, as `rollout status --json` shows it."""
        (found,) = json.loads(self.hub("rollout", "status", version, "--json", "--db", self.db_url))
        return dict(found)

    def slots(self, device: str) -> Path:
        """The kiosk's slot folder (its "card")."""
        return self.tmp / device / "slots"

    def config(self, device: str) -> Path:
        """The kiosk's configuration: mTLS to the broker, both public keys, file slots."""
        path = self.tmp / device / "appliance.toml"
        client = self.pki.client(device)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f'[device]\nid = "{device}"\n'
            f'[database]\npath = "{self.tmp / device / "data" / "appliance.db"}"\n'
            f'[hub]\nhost = "localhost"\nport = {self.broker.device_port}\n'
            f'ca_file = "{client.ca_cert}"\ncert_file = "{client.cert}"\n'
            f'key_file = "{client.key}"\n'
            f'fleet_public_key = "{self.keys / "fleet.pub"}"\n'
            f'release_public_key = "{self.keys / "release.pub"}"\ntelemetry_seconds = 5\n'
            f'[update]\nslots = "directory:{self.slots(device)}"\n'
            "gate_timeout_s = 120\nidle_s = 1\n"
        )
        return path

    def start_kiosk(self, device: str) -> None:
        """Flash slot A with the old release and power the kiosk on."""
        slot_a = self.slots(device) / "slot-A"
        slot_a.mkdir(parents=True)
        (slot_a / "root.img").write_bytes(_image(OLD, 4096))
        self.kiosks[device] = self.processes.start(
            sys.executable, "-m", "appliance.update.host_firmware", str(self.slots(device)), "--",
            str(BIN / "appliance"), "run", "--headless", "--simulate",
            "--config", str(self.config(device)),
            log=self.tmp / device / "run.log",
        )  # fmt: skip

    def has_catalog(self, device: str) -> bool:
        """Whether the store's catalog reached the kiosk's own database."""
        path = self.tmp / device / "data" / "appliance.db"
        if not path.exists():
            return False
        db = open_database(path)
        try:
            return SqliteCatalog(db).by_sku("TEA-1") is not None
        finally:
            db.close()

    def sim(self, device: str, *args: str) -> int:
        """`appliance sim ARGS` at the kiosk; its exit status."""
        done = subprocess.run(
            [str(BIN / "appliance"), "sim", *args, "--config", str(self.config(device))],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        return done.returncode

    def sell(self, device: str) -> None:
        """Scan the tea and pay cash at the kiosk (its simulated scanner and buttons)."""
        _until(lambda: self.has_catalog(device), f"the catalog on {device}")
        _until(lambda: self._sell_once(device), f"a cash sale at {device}")
        assert self.sim(device, "drawer", "close") == 0

    def _sell_once(self, device: str) -> bool:
        # The code reaches the till over the simulated scanner's wire, so the cart fills a
        # moment later; a scan refused while the till's catalog was still loading is
        # scanned again.
        assert self.sim(device, "scan", EAN) == 0
        for _ in range(10):
            if self.sim(device, "pay", "cash") == 0:
                return True
            time.sleep(0.3)
        return False

    def booted(self, device: str) -> str:
        """What the host firmware last booted: "B 0" is slot B, not a try."""
        try:
            return (self.slots(device) / "booted").read_text().strip()
        except OSError:
            return ""

    def default_slot(self, device: str) -> str:
        """The slot autoboot.txt makes the default."""
        return slot_of(read_autoboot(self.slots(device)).default, BOOT_PARTITIONS)

    def device_update(self, device: str) -> tuple[str, str, str, str] | None:
        """(version, state, running, reason) the hub keeps for the kiosk."""
        db = open_hub_database(self.db_url, create=False)
        try:
            query = DeviceUpdate.select(
                DeviceUpdate.version, DeviceUpdate.state, DeviceUpdate.running, DeviceUpdate.reason
            ).where(DeviceUpdate.device == device)
            rows = query.tuples().execute(db)
            return tuple(str(v) for v in rows[0]) if rows else None  # type: ignore[return-value]
        finally:
            db.close()

    def online(self) -> set[str]:
        """The kiosks the hub sees online."""
        listing = json.loads(self.hub("fleet", "list", "--json", "--db", self.db_url))
        return {entry["device"] for entry in listing if entry["online"]}

    def sales_of(self, device: str) -> list[str]:
        """The sale ids the hub holds from the kiosk (duplicates would show twice)."""
        rows = csv.DictReader(io.StringIO(self.hub("sales", "export", "--db", self.db_url)))
        return [row["sale_id"] for row in rows if row["device"] == device]

    def update_commands(self, device: str) -> list[dict[str, Any]]:
        """The update jobs the hub sent the kiosk."""
        jobs = json.loads(self.hub("fleet", "jobs", device, "--json", "--db", self.db_url))
        return [job for job in jobs if job["name"] == "update"]


@pytest.fixture
def fleet(tmp_path: Path, processes: Processes) -> Iterator[Fleet]:
    """The hub side up, four kiosks on the old release, every one online."""
    fleet = Fleet(tmp_path, processes)
    try:
        fleet.start_hub()
        for device in DEVICES:
            fleet.start_kiosk(device)
        _until(lambda: fleet.online() == set(DEVICES), "every kiosk online")
        yield fleet
    finally:
        processes.stop_all()
        fleet.broker.stop()


def offered(fleet: Fleet, device: str, version: str) -> bool:
    """Whether the hub sent the kiosk an update command for `version`."""
    return any(job["args"]["version"] == version for job in fleet.update_commands(device))


def _committed(fleet: Fleet, devices: list[str], version: str) -> Callable[[], bool]:
    return lambda: all(
        fleet.device_update(d) == (version, "committed", version, "") for d in devices
    )


def test_a_release_rolls_out_in_stages_and_a_broken_one_rolls_back_and_pauses(
    fleet: Fleet,
) -> None:
    fleet.add_release(GOOD, boots=True)
    fleet.sell(DEVICES[0])
    _until(lambda: len(fleet.sales_of(DEVICES[0])) == 1, "the first sale at the hub")

    # Half the store first: two kiosks, in the release's own order.
    fleet.rollout("start", GOOD, "--store", STORE, "--percent", "50")
    first = [d for d in DEVICES if fleet.update_commands(d)]
    assert len(first) == 2
    _until(_committed(fleet, first, GOOD), f"{first} committed {GOOD}")
    # Committed in the try boot: slot B is now the default the firmware boots.
    assert all(fleet.default_slot(d) == "B" and fleet.booted(d) == "B 1" for d in first)
    rest = [d for d in DEVICES if d not in first]
    assert all(fleet.device_update(d) is None and fleet.default_slot(d) == "A" for d in rest)

    # Then all of it; the first two are never sent it again.
    fleet.rollout("start", GOOD, "--store", STORE, "--percent", "100")
    _until(_committed(fleet, DEVICES, GOOD), f"every kiosk committed {GOOD}")
    assert all(len(fleet.update_commands(d)) == 1 for d in DEVICES)
    status = fleet.status(GOOD)
    assert (status["state"], status["counts"]) == ("done", {"committed": 4})
    _until(lambda: fleet.online() == set(DEVICES), "every kiosk back online")

    # Sales go on after the update, and each reaches the hub once.
    fleet.sell(DEVICES[0])
    _until(lambda: len(fleet.sales_of(DEVICES[0])) == 2, "the second sale at the hub")
    time.sleep(2)  # a duplicate, if any, would land in this time
    sales = fleet.sales_of(DEVICES[0])
    assert len(sales) == len(set(sales)) == 2

    # A release that does not boot: each kiosk it reaches comes back on its slot by itself.
    fleet.add_release(BAD, boots=False)
    fleet.rollout("start", BAD, "--store", STORE, "--percent", "50", "--max-rollbacks", "0.2",
                  "--min-finished", "2")  # fmt: skip
    tried = [
        d for d in DEVICES if any(j["args"]["version"] == BAD for j in fleet.update_commands(d))
    ]
    assert len(tried) == 2
    _until(lambda: fleet.status(BAD)["state"] == "paused", "the rollout paused")
    status = fleet.status(BAD)
    assert "rolled back" in status["pause_reason"]
    assert status["counts"].get("rolled_back", 0) >= 2
    for device in tried:
        _until(
            lambda device=device: (
                (fleet.device_update(device) or ("",) * 4)[1:3] == ("rolled_back", GOOD)
            ),
            f"{device} rolled back",
        )
        version, _, _, reason = fleet.device_update(device)  # type: ignore[misc]
        assert version == BAD and "did not start" in reason, reason
        # Back on the slot it committed before, booted normally after the failed try.
        assert fleet.booted(device) == "B 0" and fleet.default_slot(device) == "B"

    # Growing a paused rollout sends nothing more.
    fleet.rollout("start", BAD, "--store", STORE, "--percent", "100")
    assert fleet.status(BAD)["targeted"] == 2
    untouched = [d for d in DEVICES if d not in tried]
    assert not any(offered(fleet, d, BAD) for d in untouched)
    _until(lambda: fleet.online() == set(DEVICES), "every kiosk online after the rollbacks")
