"""The fleet side of the boot test, on the host: CA, mosquitto with mTLS, the hub on PostgreSQL.

The guest reaches the broker as HUB_ADDRESS:HUB_PORT (a qemu guestfwd to the device
listener on 127.0.0.1), so the device listener's certificate names that address; the hub
connects to its own listener as localhost. The bundle server (`appliance-hub bundles`)
serves release payloads to the guest as HUB_ADDRESS:BUNDLE_PORT with the same certificate.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub import ca
from hub.db import open_hub_database
from hub.releases.models import DeviceUpdate
from tests.broker import MosquittoBroker, free_port
from tests.image.vm import BUNDLE_PORT, HUB_ADDRESS, HUB_PORT
from tests.mqtt.tls_broker import SHIPPED_ACL
from tests.postgres import running_postgres

BIN = Path(sys.executable).parent
DEVICE = "kiosk-image-01"
STORE = "image-store"


@dataclass
class Fleet:
    """Everything the hub side holds: files, ports, the hub's database URL."""

    root: Path
    ca_dir: Path
    device_port: int
    hub_port: int
    bundle_port: int  # appliance-hub bundles on 127.0.0.1
    db_url: str

    @property
    def bundle_url(self) -> str:
        """The bundle server as the guest reaches it."""
        return f"https://{HUB_ADDRESS}:{BUNDLE_PORT}"

    def _tls(self) -> tuple[str, ...]:
        hub = self.root / "hub-client"
        return (
            *("--host", "127.0.0.1", "--port", str(self.hub_port)),
            *("--tls-ca", str(hub / ca.CA_CERT)),
            *("--tls-cert", str(hub / "hub.crt"), "--tls-key", str(hub / "hub.key")),
        )

    def hub(self, *args: str, net: bool = False, timeout: float = 120, check: bool = True) -> str:
        """Run `appliance-hub ARGS` (with the broker options when `net`); its stdout."""
        command = [str(BIN / "appliance-hub"), *args]
        if net:
            command += self._tls()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"appliance-hub {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def device_online(self) -> bool:
        """Whether the hub has the device's birth (and no will since)."""
        listing = json.loads(self.hub("fleet", "list", "--json", "--db", self.db_url))
        return any(entry["device"] == DEVICE and entry["online"] for entry in listing)

    def device_update(self) -> dict[str, Any] | None:
        """The update report the hub keeps for the device (version, state, running, ...)."""
        db = open_hub_database(self.db_url, create=False)
        try:
            found = DeviceUpdate.select().where(DeviceUpdate.device == DEVICE).dicts().execute(db)
            return dict(found[0]) if found else None
        finally:
            db.close()

    def sales(self) -> list[dict[str, str]]:
        """Every document the hub stored from the device, as CSV rows."""
        rows = csv.DictReader(io.StringIO(self.hub("sales", "export", "--db", self.db_url)))
        return [row for row in rows if DEVICE in row.values()]

    def provisioning_file(self, *, ssh_public_key: str, extra: str = "") -> str:
        """A complete provisioning.toml for the device, as a fleet admin would write it."""
        device = self.root / "device"
        pem = {name: (device / name).read_text() for name in ("ca.crt", f"{DEVICE}.crt")}
        key = (device / f"{DEVICE}.key").read_text()
        fleet_pub = (self.root / "keys" / "fleet.pub").read_text()
        release_pub = (self.root / "keys" / "release.pub").read_text()
        return (
            "version = 1\n"
            f'[device]\nid = "{DEVICE}"\n'
            '[store]\nname = "Image Test Shop"\ncurrency = "EUR"\nlocale = "de_DE"\n'
            f'[hub]\nhost = "{HUB_ADDRESS}"\nport = {HUB_PORT}\n'
            f"ca = '''\n{pem['ca.crt']}'''\n"
            f"client_cert = '''\n{pem[f'{DEVICE}.crt']}'''\n"
            f"client_key = '''\n{key}'''\n"
            f"fleet_public_key = '''\n{fleet_pub}'''\n"
            f"release_public_key = '''\n{release_pub}'''\n"
            '[system]\ntimezone = "Europe/Berlin"\nlocale = "de_DE.UTF-8"\n'
            f'[ssh]\nauthorized_keys = ["{ssh_public_key}"]\n'
            "[appliance.screen]\nfullscreen = true\n"  # the size comes from the display
            # Updates: the image makes slots "pi" the default. The gate's time bounds how
            # long a try boot that never commits lasts (plus the watchdog's margin).
            "[appliance.update]\ngate_timeout_s = 240\nidle_s = 5\n"
            f"{extra}"
        )


def _broker_config(fleet_root: Path, device_port: int, hub_port: int) -> str:
    """mTLS listeners as hub/mosquitto/mosquitto.conf has them, one server name each."""
    lines = [f"acl_file {SHIPPED_ACL}", "user root"]
    # Devices' listener trusts the fleet CA, the hub workers' the hub CA only.
    for port, server, trusted, client_id_from_cert in (
        (device_port, "server-device", ca.CA_CERT, True),
        (hub_port, "server-hub", ca.HUB_CA_CERT, False),
    ):
        folder = fleet_root / server
        lines += [
            f"listener {port} 127.0.0.1",
            f"cafile {fleet_root / 'ca' / trusted}",
            f"certfile {folder / ca.SERVER_CERT}",
            f"keyfile {folder / ca.SERVER_KEY}",
            "require_certificate true",
            "use_identity_as_username true",
        ]
        if client_id_from_cert:
            lines.append("use_username_as_clientid true")
    return "\n".join(lines) + "\n"


@contextmanager
def running_fleet(root: Path) -> Iterator[Fleet]:
    """CA and certificates, mosquitto, PostgreSQL and `appliance-hub serve`, all on loopback."""
    ca_dir = root / "ca"
    ca.init_ca(ca_dir)
    ca.issue_server(ca_dir, HUB_ADDRESS, root / "server-device")
    ca.issue_server(ca_dir, "localhost", root / "server-hub")
    ca.issue_hub(ca_dir, root / "hub-client")
    ca.issue_device(ca_dir, DEVICE, root / "device")
    device_port, hub_port, bundle_port = free_port(), free_port(), free_port()
    with ExitStack() as stack:
        broker = MosquittoBroker(
            root / "broker", extra_config=_broker_config(root, device_port, hub_port)
        )
        broker.start()
        stack.callback(broker.stop)
        postgres = stack.enter_context(running_postgres(root / "pg"))
        fleet = Fleet(root, ca_dir, device_port, hub_port, bundle_port, postgres.new_database())
        fleet.hub("fleet", "keygen", str(root / "keys"))
        fleet.hub("release", "keygen", str(root / "keys" / "release.key"))
        with (root / "hub.log").open("ab") as log:
            serve = subprocess.Popen(
                [str(BIN / "appliance-hub"), "serve", "--db", fleet.db_url, *fleet._tls()],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stack.callback(_stop, serve)
        with (root / "bundles.log").open("ab") as log:
            bundles = subprocess.Popen(
                [
                    *(str(BIN / "appliance-hub"), "bundles", "--db", fleet.db_url),
                    *("--listen", f"127.0.0.1:{bundle_port}"),
                    *("--cert", str(root / "server-device" / ca.SERVER_CERT)),
                    *("--key", str(root / "server-device" / ca.SERVER_KEY)),
                    *("--client-ca", str(ca_dir / ca.CA_CERT)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stack.callback(_stop, bundles)
        deadline = time.monotonic() + 60
        while True:
            try:
                fleet.hub("fleet", "assign", DEVICE, STORE, "--db", fleet.db_url)
                break
            except AssertionError:
                if time.monotonic() > deadline or serve.poll() is not None:
                    raise
                time.sleep(1)
        yield fleet


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM our hub, SIGKILL if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
