"""Remote approval end to end: a kiosk and a staff till of one store, through the real hub.

The kiosk is the real KioskApp offscreen with its real hub link and fleet commands; the
staff till is a second appliance process, `appliance run --headless --simulate` in staff
mode with its own device id and database, whose StaffHelp asks the approvals; the hub is
the `appliance-hub serve` process with the fleet key; the broker is a real mosquitto. The
staff till is driven as a field tech would drive it: `appliance sim help-calls` and
`appliance sim approve-help CALL ACTION --staff-pin PIN` on its control socket.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from appliance.cli.main import cli
from appliance.core.remote_approval import RemoteAction
from appliance.core.tender import Tender
from appliance.screens.i18n import tr
from appliance.service.demo import DEMO_CASHIER_PIN, DEMO_SUPERVISOR_PIN
from appliance.settings import load_settings
from hub.db import open_hub_database
from hub.fleet_keys import generate_fleet_keys
from hub.help_board import grant_staff_device
from hub.migrations import migrate
from hub.stores import assign_device
from tests.broker import MosquittoBroker
from tests.screens.customer_steps import scan_and_wait
from tests.screens.harness import Kiosk, open_kiosk
from tests.screens.test_customer_bagging import TEA_GRAMS, bag, desk, scan_tea_and_bag_it

BIN = Path(sys.executable).parent
KIOSK = "kiosk-1"
TABLET = "till-1"
STORE = "berlin"
WINE = "8000320010149"  # 18+ in the demo store
# The first start of the staff till imports, migrates and seeds before its link is up.
WAIT_SECONDS = 60.0
# Variables a developer's shell or a systemd unit may carry into the staff till.
OUTSIDE_VARIABLES = ("APPLIANCE_CONFIG", "APPLIANCE_SIMULATE", "NOTIFY_SOCKET", "WATCHDOG_USEC")


@contextmanager
def hub_serving(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Path]:
    """`appliance-hub serve --fleet-key` on the broker, both devices in one store; yields the
    fleet key pair's folder. The process is stopped by its PID."""
    keys = tmp_path / "keys"
    generate_fleet_keys(keys)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    db = open_hub_database(url)
    migrate(db)
    assign_device(db, KIOSK, STORE)
    assign_device(db, TABLET, STORE)
    grant_staff_device(db, TABLET)
    db.close()
    log = (tmp_path / "hub.log").open("wb")
    process = subprocess.Popen(
        [
            *(str(BIN / "appliance-hub"), "serve", "--db", url),
            *("--host", broker.host, "--port", str(broker.port)),
            *("--fleet-key", str(keys / "fleet.key")),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        yield keys
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def kiosk_config(tmp_path: Path, broker: MosquittoBroker, keys: Path) -> Path:
    """The kiosk's configuration file: a bagging check that decides quickly, the hub link."""
    path = tmp_path / "kiosk.toml"
    path.write_text(
        f'[device]\nid = "{KIOSK}"\nreceipt_prefix = "K1"\n'
        f'[database]\npath = "{tmp_path / "state" / "appliance.db"}"\n'
        '[store]\nname = "Demo Store"\ncurrency = "EUR"\nlocale = "de_DE"\n'
        '[bagging]\nmode = "enforce"\nalert_seconds = 0.5\n'
        f'[hub]\nhost = "{broker.host}"\nport = {broker.port}\n'
        f'fleet_public_key = "{keys / "fleet.pub"}"\n'
    )
    return path


def staff_config(tmp_path: Path, broker: MosquittoBroker) -> Path:
    """The staff till's configuration file: staff mode, its own device and database."""
    path = tmp_path / "till.toml"
    path.write_text(
        f'[device]\nid = "{TABLET}"\nreceipt_prefix = "T1"\n'
        f'[database]\npath = "{tmp_path / "till" / "appliance.db"}"\n'
        '[store]\nname = "Demo Store"\ncurrency = "EUR"\nlocale = "de_DE"\n'
        '[screen]\nmode = "staff"\n'
        f'[hub]\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    return path


class StaffTill:
    """The staff till's process, driven through `appliance sim`; every wait pumps the kiosk.

    Started headless and simulated (the demo staff: Alex the cashier, Sam the supervisor);
    stopped by its PID.
    """

    def __init__(self, config: Path, kiosk: Kiosk, log: Path) -> None:
        self.config = config
        self.kiosk = kiosk
        self.log = log
        env = {k: v for k, v in os.environ.items() if k not in OUTSIDE_VARIABLES}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(BIN / "appliance"),
                    "run",
                    "--headless",
                    "--simulate",
                    "--config",
                    str(config),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )

    def stop(self) -> None:
        """SIGTERM, then kill if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def sim(self, *args: str) -> Result:
        """`appliance sim ARGS --config till.toml`, in this process (the socket is the wire)."""
        assert self.process.poll() is None, self.log.read_text(errors="replace")
        return CliRunner().invoke(cli, ["sim", *args, "--config", str(self.config)])

    def help_calls(self) -> dict[str, Any] | None:
        """`sim help-calls`; None while the till does not answer it yet (still starting)."""
        result = self.sim("help-calls")
        if result.exit_code != 0:
            return None
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def board_where(self, wanted: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Wait until the till's view of the store's calls satisfies `wanted`."""

        def shown() -> dict[str, Any] | None:
            seen = self.help_calls()
            return seen if seen is not None and wanted(seen) else None

        found: dict[str, Any] = self.kiosk.wait_for(shown, timeout=WAIT_SECONDS, what=what)
        return found

    def approve(self, call: str, action: RemoteAction, pin: str) -> dict[str, Any]:
        """`sim approve-help CALL ACTION --staff-pin PIN`, which must be asked."""
        result = self.sim("approve-help", call, action, "--staff-pin", pin)
        assert result.exit_code == 0, result.output
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def refusal(self, call: str, action: RemoteAction, pin: str) -> str:
        """`sim approve-help`, which must be refused: the till's words."""
        result = self.sim("approve-help", call, action, "--staff-pin", pin)
        assert result.exit_code == 1, result.output
        return result.output.strip().removeprefix("Error: approve-help: ")

    def approval(self, approval: str, step: str) -> dict[str, Any]:
        """Wait until the approval with this id is at `step` (its call may be gone by then)."""

        def reached(seen: dict[str, Any]) -> bool:
            return any(a["id"] == approval and a["step"] == step for a in seen["approvals"])

        seen = self.board_where(reached, f"approval {approval} {step}")
        found: dict[str, Any] = next(a for a in seen["approvals"] if a["id"] == approval)
        return found


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Kiosk, StaffTill]]:
    """A kiosk and a staff till of one store, both online at the serving hub."""
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        with hub_serving(tmp_path, broker) as keys:
            config = kiosk_config(tmp_path, broker, keys)
            with open_kiosk(tmp_path, settings=load_settings(config), config_path=config) as kiosk:
                hub = kiosk.services.hub
                assert hub is not None and hub.fleet is not None
                kiosk.wait_for(lambda: hub.link.state.ready, what="the kiosk's hub link")
                till = StaffTill(staff_config(tmp_path, broker), kiosk, tmp_path / "till.log")
                try:
                    till.board_where(
                        lambda seen: seen["online"] and seen["store"] == STORE,
                        "the staff till's first board",
                    )
                    yield kiosk, till
                finally:
                    till.stop()
    finally:
        broker.stop()


def test_a_bagging_alert_is_cleared_from_the_staff_till_through_the_hub(
    store: tuple[Kiosk, StaffTill], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.service.bagging_desk")
    kiosk, till = store
    scan_tea_and_bag_it(kiosk)
    bag(kiosk).put(TEA_GRAMS + 5 + 700)  # something unscanned put in the bag
    kiosk.wait_for_screen("bagging")
    help_desk = kiosk.services.app.help_desk
    assert help_desk is not None
    [call] = help_desk.active
    seen = till.board_where(lambda seen: bool(seen["calls"]), "the call on the staff till")
    [listed] = seen["calls"]
    assert (listed["kiosk"], listed["id"], listed["reason"]) == (KIOSK, call.id, "bagging")
    assert listed["actions"] == ["clear", "skip_item", "skip_sale"]
    assert listed["approval"] is None

    # A cashier may not skip the check for the whole sale from a distance, nor may a
    # wrong PIN ask anything: the till refuses, and nothing reaches the kiosk.
    refused = till.refusal(call.id, "skip_sale", DEMO_CASHIER_PIN)
    assert refused == "only a supervisor may skip sale remotely"
    assert till.refusal(call.id, "clear", "9999") == "no member of staff has this PIN"
    assert till.board_where(bool, "the calls")["approvals"] == []
    assert kiosk.screen == "bagging" and help_desk.active == (call,)

    asked = till.approve(call.id, "clear", DEMO_CASHIER_PIN)
    assert asked["approval"]["step"] == "asking"
    assert (asked["staff"]["name"], asked["staff"]["role"]) == ("Alex", "cashier")
    kiosk.wait_for_screen("shop")
    done = till.approval(asked["approval"]["id"], "succeeded")

    assert (done["call"], done["kiosk"], done["action"]) == (call.id, KIOSK, "clear")
    assert done["reason"] == "bagging unexpected item: clear"
    assert help_desk.active == ()
    assert desk(kiosk).counts() == {"unexpected_item": 1, "clear": 1}
    assert desk(kiosk).status.accepted == TEA_GRAMS + 5 + 700  # staff accepted the bag
    staff_id = asked["staff"]["staff_id"]
    logged = [r.getMessage() for r in caplog.records]
    assert any(
        f"bagging: clear by staff {staff_id} (Alex, cashier) remotely from {TABLET}" in m
        for m in logged
    )
    # The sale to be records who dealt with its bagging area, and from where.
    assert kiosk.services.app.checkout.cart.approvals == (
        f"bagging clear: Alex ({staff_id}, cashier) from {TABLET}",
    )
    till.board_where(lambda seen: not seen["calls"], "the call gone from the staff till")


def test_an_age_check_is_approved_remotely_and_the_sale_records_the_approver(
    store: tuple[Kiosk, StaffTill],
) -> None:
    kiosk, till = store
    kiosk.wait_for(lambda: desk(kiosk).status.weight == 0, what="the empty bag weighed")
    scan_and_wait(kiosk, WINE, 1)
    bag(kiosk).put(1250)  # the bottle in the bag: Pay no longer waits for it
    kiosk.wait_for(lambda: not kiosk.app.bagging.waiting, what="the wine bagged")
    kiosk.tap_text(tr._("Pay"))
    kiosk.wait_for_screen("age_check")
    help_desk = kiosk.services.app.help_desk
    assert help_desk is not None
    [call] = help_desk.active
    seen = till.board_where(
        lambda seen: [c["id"] for c in seen["calls"]] == [call.id], "the age check shown"
    )
    assert seen["calls"][0]["actions"] == ["approve"]

    asked = till.approve(call.id, "approve", DEMO_SUPERVISOR_PIN)

    kiosk.wait_for_screen("payment")
    done = till.approval(asked["approval"]["id"], "succeeded")
    assert done["reason"] == "age check approved for 1 line(s)"
    assert help_desk.active == ()
    checkout = kiosk.services.app.checkout
    sale = checkout.pay([Tender.cash(5000, checkout.totals().total)])
    staff_id = asked["staff"]["staff_id"]
    assert sale.approved_by == f"Sam ({staff_id}, supervisor) from {TABLET}"


def test_with_the_kiosk_offline_the_staff_till_says_walk_over(
    store: tuple[Kiosk, StaffTill],
) -> None:
    kiosk, till = store
    scan_and_wait(kiosk, WINE, 1)
    help_desk = kiosk.services.app.help_desk
    assert help_desk is not None
    [call] = help_desk.active
    till.board_where(lambda seen: bool(seen["calls"]), "the age check shown")
    hub = kiosk.services.hub
    assert hub is not None

    hub.link.close()  # the kiosk loses the hub: its will says so

    seen = till.board_where(lambda seen: KIOSK in seen["offline"], "the kiosk offline")
    [listed] = seen["calls"]
    assert (listed["kiosk_online"], listed["actions"]) == (False, [])
    refused = till.refusal(call.id, "approve", DEMO_CASHIER_PIN)
    assert refused == f"{KIOSK} is offline: walk over to it"
    assert till.board_where(bool, "the calls")["approvals"] == []
    assert len(kiosk.services.app.checkout.cart.pending_age_checks) == 1
