"""Remote approval at the hub: boards to staff devices, approvals as signed kiosk commands.

The worker `appliance-hub serve` runs (with a fleet key) on a real mosquitto; raw MQTT
clients play a kiosk and a staff tablet of one store. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.mqtt import topics
from appliance.mqtt.payloads import (
    Command,
    CommandUpdate,
    DeviceStatus,
    HelpApproval,
    HelpApprovalAnswer,
    HelpBoard,
    HelpCall,
    RemoteAction,
    decode,
    encode,
)
from appliance.mqtt.signing import verify_command
from hub.cli_serve import catalog_serving_hub
from hub.db import open_hub_database
from hub.help_board import grant_staff_device, staff_devices
from hub.migrations import migrate
from hub.models import CommandJob
from hub.server import BrokerEndpoint, HubServer
from hub.stores import assign_device
from tests.broker import MosquittoBroker
from tests.hub.databases import KINDS
from tests.hub.test_server import DeviceClient
from tests.postgres import PostgresCluster

KIOSK = "kiosk-1"
TABLET = "till-1"
ELSEWHERE = "till-9"  # a staff tablet of another store
STORE = "berlin"
CALL = "0190c0de-0000-7000-8000-000000000001"


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated hub database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        server: PostgresCluster = request.getfixturevalue("postgres")
        url = server.new_database()
    opened = open_hub_database(url)
    migrate(opened)
    yield opened
    opened.close()


@pytest.fixture
def fleet_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def serve(broker: MosquittoBroker, db: Database, key: Ed25519PrivateKey | None) -> HubServer:
    server = catalog_serving_hub(db, BrokerEndpoint(broker.host, broker.port), "w1", fleet_key=key)
    server.start(timeout=10.0)
    return server


@pytest.fixture
def hub(broker: MosquittoBroker, db: Database, fleet_key: Ed25519PrivateKey) -> Iterator[HubServer]:
    server = serve(broker, db, fleet_key)
    yield server
    server.stop()


def device(broker: MosquittoBroker, name: str) -> DeviceClient:
    """A raw client reading the device's down topics."""
    return DeviceClient(broker, name, [f"{topics.device_root(name)}/down/#"])


def born(client: DeviceClient, name: str, screen: str, *, online: bool = True) -> None:
    status = DeviceStatus(device=name, online=online, bd_seq=1, screen=screen)  # type: ignore[arg-type]
    client.publish(topics.status(name), encode(status), retain=True)


def board(client: DeviceClient, name: str) -> HelpBoard:
    return decode(client.next(topics.help_board(name)).payload, HelpBoard)


def board_where(client: DeviceClient, name: str, wanted: object) -> HelpBoard:
    """The first board that shows what `wanted(board)` looks for (boards come at each change)."""
    while True:
        shown = board(client, name)
        if wanted(shown):  # type: ignore[operator]
            return shown


def call(state: str = "open", reason: str = "bagging") -> bytes:
    return encode(
        HelpCall(
            device=KIOSK,
            id=CALL,
            reason=reason,  # type: ignore[arg-type]
            urgency="help",
            state=state,  # type: ignore[arg-type]
            opened_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC).isoformat(),
            detail="unexpected item: 835 g on the scale, 135 g expected",
        )
    )


def approval(
    request: str, action: RemoteAction, role: str, *, sender: str = TABLET, reason: str = "bagging"
) -> bytes:
    return encode(
        HelpApproval(
            id=request,
            device=sender,
            kiosk=KIOSK,
            call=CALL,
            reason=reason,  # type: ignore[arg-type]
            action=action,
            staff_id="S1",
            staff_name="Alex",
            role=role,  # type: ignore[arg-type]
        )
    )


def answer(client: DeviceClient, name: str = TABLET) -> HelpApprovalAnswer:
    return decode(client.next(topics.help_approval_answer(name)).payload, HelpApprovalAnswer)


@pytest.fixture
def store(
    broker: MosquittoBroker, db: Database, hub: HubServer
) -> Iterator[tuple[DeviceClient, DeviceClient]]:
    """A kiosk with an open bagging call and a staff tablet that sees it, both online."""
    assign_device(db, KIOSK, STORE)
    assign_device(db, TABLET, STORE)
    grant_staff_device(db, TABLET)
    kiosk, tablet = device(broker, KIOSK), device(broker, TABLET)
    born(tablet, TABLET, "staff")
    assert board(tablet, TABLET).calls == []  # a fresh board at its birth
    born(kiosk, KIOSK, "kiosk")
    kiosk.publish(topics.help_up(KIOSK), call())
    shown = board_where(tablet, TABLET, lambda b: b.calls)
    assert [(c.device, c.id, c.reason, c.state) for c in shown.calls] == [
        (KIOSK, CALL, "bagging", "open")
    ]
    assert shown.store == STORE and KIOSK not in shown.offline
    yield kiosk, tablet
    kiosk.close()
    tablet.close()


def test_an_approval_becomes_a_signed_command_whose_outcome_the_tablet_hears(
    store: tuple[DeviceClient, DeviceClient], db: Database, fleet_key: Ed25519PrivateKey
) -> None:
    kiosk, tablet = store

    tablet.publish(topics.help_approval_up(TABLET), approval("req-1", "clear", "cashier"))

    sent = answer(tablet)
    assert (sent.id, sent.state) == ("req-1", "sent") and sent.command and sent.expires_at
    command = decode(kiosk.next(topics.command(KIOSK)).payload, Command)
    verify_command(command, fleet_key.public_key())  # signed by the fleet key
    assert (command.id, command.device, command.name) == (sent.command, KIOSK, "approve_help")
    assert command.args == {
        "call": CALL,
        "reason": "bagging",
        "action": "clear",
        "staff_id": "S1",
        "staff_name": "Alex",
        "role": "cashier",
        "via": TABLET,
        "request": "req-1",
    }
    lifetime = datetime.fromisoformat(command.expires_at) - datetime.fromisoformat(
        command.issued_at
    )
    assert lifetime.total_seconds() == 60

    for state in ("QUEUED", "IN_PROGRESS", "SUCCEEDED"):
        update = CommandUpdate(id=command.id, state=state, reason="bagging unexpected item: clear")  # type: ignore[arg-type]
        kiosk.publish(topics.command_update(KIOSK), encode(update))

    done = answer(tablet)  # QUEUED and IN_PROGRESS are not outcomes: the next is the end
    assert (done.id, done.state, done.command) == ("req-1", "succeeded", command.id)
    assert done.reason == "bagging unexpected item: clear"
    job = CommandJob.select().where(CommandJob.id == command.id).get(db)
    assert (job.name, job.state) == ("approve_help", "SUCCEEDED")
    assert json.loads(job.args)["via"] == TABLET


def test_a_kiosk_that_could_not_apply_it_is_told_to_the_tablet(
    store: tuple[DeviceClient, DeviceClient],
) -> None:
    kiosk, tablet = store
    tablet.publish(topics.help_approval_up(TABLET), approval("req-2", "clear", "supervisor"))
    assert answer(tablet).state == "sent"
    command = decode(kiosk.next(topics.command(KIOSK)).payload, Command)

    failed = CommandUpdate(id=command.id, state="FAILED", reason="the call is no longer open")
    kiosk.publish(topics.command_update(KIOSK), encode(failed))

    told = answer(tablet)
    assert (told.id, told.state, told.reason) == ("req-2", "failed", "the call is no longer open")


REFUSALS = [
    ("skip_sale", "cashier", TABLET, "bagging", "only a supervisor may skip sale remotely"),
    ("approve", "supervisor", TABLET, "bagging", "a bagging call cannot be answered with"),
    ("approve", "supervisor", TABLET, "age_check", "the call is for bagging, not age_check"),
    ("clear", "supervisor", ELSEWHERE, "bagging", f"{KIOSK} is not a kiosk of this store"),
]


@pytest.mark.parametrize("case", REFUSALS)
def test_a_request_the_rules_forbid_is_refused_and_nothing_reaches_the_kiosk(
    store: tuple[DeviceClient, DeviceClient],
    broker: MosquittoBroker,
    db: Database,
    case: tuple[RemoteAction, str, str, str, str],
) -> None:
    action, role, sender, reason, why = case
    kiosk, _tablet = store
    assign_device(db, ELSEWHERE, "hamburg")
    grant_staff_device(db, ELSEWHERE)  # another store's staff tablet
    asking = device(broker, sender)
    try:
        born(asking, sender, "staff")
        request = approval("req-3", action, role, sender=sender, reason=reason)
        asking.publish(topics.help_approval_up(sender), request)

        refused = answer(asking, sender)
    finally:
        asking.close()

    assert (refused.id, refused.state) == ("req-3", "refused")
    assert why in refused.reason
    assert kiosk.messages.empty() or all(
        m.topic != topics.command(KIOSK) for m in list(kiosk.messages.queue)
    )
    assert CommandJob.select().count(db) == 0


def test_a_kiosk_device_cannot_ask_and_a_cleared_call_or_an_offline_kiosk_is_walked_to(
    store: tuple[DeviceClient, DeviceClient], db: Database
) -> None:
    kiosk, tablet = store

    kiosk.publish(
        topics.help_approval_up(KIOSK), approval("req-4", "clear", "cashier", sender=KIOSK)
    )
    assert answer(kiosk, KIOSK).reason == f"{KIOSK} is not a staff till or tablet"

    born(kiosk, KIOSK, "kiosk", online=False)  # its will: the kiosk is gone
    assert KIOSK in board_where(tablet, TABLET, lambda b: KIOSK in b.offline).offline
    tablet.publish(topics.help_approval_up(TABLET), approval("req-5", "clear", "cashier"))
    assert answer(tablet).reason == f"{KIOSK} is offline: walk over to it"

    born(kiosk, KIOSK, "kiosk")
    kiosk.publish(topics.help_up(KIOSK), call("cleared"))
    assert board_where(tablet, TABLET, lambda b: not b.calls).calls == []
    tablet.publish(topics.help_approval_up(TABLET), approval("req-6", "clear", "cashier"))
    assert answer(tablet).reason == "the call is no longer open"
    assert CommandJob.select().count(db) == 0


def test_a_hub_without_the_fleet_key_tells_staff_to_walk_over(
    broker: MosquittoBroker, db: Database
) -> None:
    server = serve(broker, db, None)
    assign_device(db, TABLET, STORE)
    grant_staff_device(db, TABLET)
    tablet = device(broker, TABLET)
    try:
        born(tablet, TABLET, "staff")
        board(tablet, TABLET)
        tablet.publish(topics.help_approval_up(TABLET), approval("req-7", "clear", "cashier"))
        refused = answer(tablet)
    finally:
        tablet.close()
        server.stop()
    assert (refused.state, refused.reason) == (
        "refused",
        "this hub signs no commands: walk over to the kiosk",
    )


def test_a_device_that_only_says_it_is_staff_sees_no_calls_and_approves_nothing(
    store: tuple[DeviceClient, DeviceClient], db: Database
) -> None:
    kiosk, tablet = store
    born(kiosk, KIOSK, "staff")  # a kiosk's certificate in a device claiming to be a tablet

    kiosk.publish(
        topics.help_approval_up(KIOSK), approval("req-8", "skip_sale", "supervisor", sender=KIOSK)
    )
    assert answer(kiosk, KIOSK).reason == f"{KIOSK} is not a staff till or tablet"
    assert staff_devices(db, STORE) == [TABLET]  # the board goes to the granted one only
    assert CommandJob.select().count(db) == 0

    grant_staff_device(db, TABLET, granted=False)  # the admin takes it back
    tablet.publish(topics.help_approval_up(TABLET), approval("req-9", "clear", "cashier"))
    assert answer(tablet).reason == f"{TABLET} is not a staff till or tablet"
    assert staff_devices(db, STORE) == []


def test_a_repeated_request_is_answered_again_and_signs_no_second_command(
    store: tuple[DeviceClient, DeviceClient], db: Database
) -> None:
    kiosk, tablet = store
    request = approval("req-10", "clear", "cashier")
    tablet.publish(topics.help_approval_up(TABLET), request)
    first = answer(tablet)
    tablet.publish(topics.help_approval_up(TABLET), request)  # QoS 1 delivered it again
    again = answer(tablet)
    assert (again.state, again.command, again.expires_at) == (
        "sent", first.command, first.expires_at
    )  # fmt: skip
    assert CommandJob.select().count(db) == 1
    command = decode(kiosk.next(topics.command(KIOSK)).payload, Command)
    assert command.id == first.command
