"""Desired vs reported configuration over a real mosquitto, and the file it rewrites.

The appliance side is the real PahoHubLink and Dispatcher feeding ConfigSync through the
bus on a main-loop thread; the hub side is the fleet CLI's client and `fleet config`.
"""

from __future__ import annotations

import stat
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.core.events import EventBus
from appliance.errors import ConfigError
from appliance.mqtt import topics
from appliance.mqtt.config_sync import ConfigSync, dump_toml, merge, write_atomically
from appliance.mqtt.link import PahoHubLink
from appliance.mqtt.payloads import DesiredConfig, DeviceStatus, ReportedConfig, decode, encode
from appliance.settings import Settings, load_settings
from appliance.store.database import open_database
from appliance.store.hub_session import SessionStore
from appliance.store.migrations import migrate
from hub.cli_command import BrokerOptions, FleetClient, config_command, push_config
from tests.broker import MosquittoBroker
from tests.mqtt.main_loop import start_main_loop

DEVICE = "kiosk-01"
WAIT = 10.0  # an upper bound on waiting for the broker, never asserted
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "appliance.toml"
ORIGINAL = """\
# installed by the field tech
[device]
id = "kiosk-01"
receipt_prefix = "K01"

[store]
name = "Corner Shop"
currency = "EUR"
"""


@dataclass
class Device:
    """The appliance side: link, a main loop draining the bus, ConfigSync on the file."""

    link: PahoHubLink
    sync: ConfigSync
    applied: list[Settings]
    stop: threading.Event
    loop: threading.Thread

    def close(self) -> None:
        self.link.close()
        self.stop.set()
        self.loop.join()


@dataclass
class Rig:
    """Broker, config file, the appliance (startable again) and a hub-side client."""

    broker: MosquittoBroker
    path: Path
    hub: FleetClient
    start: Callable[[], Device]
    device: Device | None = None

    def desire(self, version: int, config: dict[str, Any]) -> None:
        data = encode(DesiredConfig(version=version, config=config))
        self.hub.publish(topics.config_desired(DEVICE), data, retain=True)

    def reported(self) -> ReportedConfig:
        while (message := self.hub.next_message(WAIT)) is not None:
            if message[0] == topics.config_reported(DEVICE):
                return decode(message[1], ReportedConfig)
        raise AssertionError("no reported configuration arrived")


@pytest.fixture
def rig(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Rig]:
    db = open_database(tmp_path / "appliance.db")
    migrate(db, backup_dir=tmp_path / "backups")
    path = tmp_path / "etc" / "appliance.toml"
    path.parent.mkdir()
    path.write_text(ORIGINAL)
    path.chmod(0o640)
    hub = FleetClient(BrokerOptions(broker.host, broker.port), timeout=WAIT)
    started: list[Device] = []

    def start() -> Device:
        bus = EventBus()
        link = PahoHubLink(
            DEVICE, broker.host, broker.port, bus=bus, session_store=SessionStore(db)
        )
        applied: list[Settings] = []
        sync = ConfigSync(
            path,
            publish_reported=lambda r: link.publish(
                topics.config_reported(DEVICE), encode(r), qos=1, retain=True
            ),
            on_applied=applied.append,
        )
        sync.route(DEVICE, link.dispatcher, bus)
        stop = threading.Event()
        loop = start_main_loop(bus, stop)
        link.open()
        device = Device(link, sync, applied, stop, loop)
        started.append(device)
        wait_for_birth(hub)
        return device

    with hub:
        hub.subscribe(topics.status(DEVICE), topics.config_reported(DEVICE))
        rig = Rig(broker, path, hub, start)
        rig.device = start()
        try:
            yield rig
        finally:
            for device in started:
                device.close()
    db.close()


def wait_for_birth(hub: FleetClient) -> None:
    """The birth follows the device's SUBSCRIBE on its connection: after it, messages land."""
    while (message := hub.next_message(WAIT)) is not None:
        if message[0] == topics.status(DEVICE) and decode(message[1], DeviceStatus).online:
            return
    raise AssertionError("the appliance never came online")


def test_a_valid_desired_config_is_written_and_its_version_reported(rig: Rig) -> None:
    rig.desire(1, {"store": {"name": "Corner Shop Berlin", "tax_classes": {"standard": 1900}}})
    assert rig.reported() == ReportedConfig(version=1)
    settings = load_settings(rig.path)
    assert settings.store.name == "Corner Shop Berlin"
    assert settings.store.currency == "EUR"  # merged onto the file, not replacing it
    assert dict(settings.store.tax_classes) == {"standard": 1900}
    assert (rig.path.parent / "appliance.toml.bak").read_text() == ORIGINAL
    assert stat.S_IMODE(rig.path.stat().st_mode) == 0o640
    assert rig.device is not None and rig.device.applied[0].store.name == "Corner Shop Berlin"


def test_an_invalid_desired_config_is_rejected_with_every_reason_and_the_file_stays(
    rig: Rig,
) -> None:
    rig.desire(1, {"store": {"currency": "EURO"}, "hub": {"host": "hub", "port": 0}})
    reported = rig.reported()
    assert (reported.version, reported.rejected_version) == (0, 1)
    assert [e.split(":")[0] for e in reported.errors] == ["store.currency", "hub.port"]
    assert "ISO 4217" in reported.errors[0]
    assert rig.path.read_text() == ORIGINAL
    assert not (rig.path.parent / "appliance.toml.bak").exists()


def test_the_device_id_and_database_path_cannot_be_changed_remotely(rig: Rig) -> None:
    rig.desire(1, {"device": {"id": "kiosk-02"}, "database": {"path": "/tmp/elsewhere.db"}})
    reported = rig.reported()
    assert reported.rejected_version == 1
    assert reported.errors == [
        "device.id: cannot be changed remotely",
        "database.path: cannot be changed remotely",
    ]
    assert rig.path.read_text() == ORIGINAL


def test_a_stale_desired_version_is_ignored(rig: Rig) -> None:
    rig.desire(2, {"store": {"name": "Two"}})
    assert rig.reported().version == 2
    rig.desire(1, {"store": {"name": "One"}})  # older than what is in force: no answer
    rig.desire(3, {"store": {"name": "Three"}})
    assert rig.reported() == ReportedConfig(version=3)  # the very next report
    assert load_settings(rig.path).store.name == "Three"


def test_a_desired_config_set_while_offline_is_applied_on_the_next_start(rig: Rig) -> None:
    assert rig.device is not None
    rig.device.close()
    rig.desire(1, {"logging": {"level": "DEBUG"}})  # retained: the broker keeps it
    rig.device = rig.start()
    assert rig.reported() == ReportedConfig(version=1)
    assert load_settings(rig.path).logging.level == "DEBUG"
    # The reported version survives a restart, so the retained desired is not re-applied.
    rig.device.close()
    rig.device = rig.start()
    assert rig.device.sync.reported == ReportedConfig(version=1)
    assert rig.device.applied == []


def test_fleet_config_publishes_the_next_version_and_prints_the_outcome(
    rig: Rig, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[store]\nname = "Via the CLI"\n')
    bad.write_text('[store]\nlocale = "xx_NOPE"\n')
    where = ["--host", rig.broker.host, "--port", str(rig.broker.port), "--wait", str(WAIT)]
    result = CliRunner().invoke(config_command, [DEVICE, str(good), *where])
    assert result.exit_code == 0, result.output
    assert "reports version 1: in force" in result.output
    result = CliRunner().invoke(config_command, [DEVICE, str(bad), *where])
    assert result.exit_code == 1, result.output
    assert "rejected version 2; version 1 stays" in result.output
    assert "store.locale" in result.output
    # The next version counts past the rejected one too.
    result = CliRunner().invoke(config_command, [DEVICE, str(good), *where])
    assert "reports version 3: in force" in result.output
    assert load_settings(rig.path).store.name == "Via the CLI"


def test_push_config_gives_up_with_status_2_when_nobody_answers(rig: Rig) -> None:
    output: list[str] = []

    class Clock:
        def monotonic(self) -> float:
            return time.monotonic()

    status = push_config(rig.hub, "kiosk-99", {}, wait=0.2, clock=Clock(), echo=output.append)  # type: ignore[arg-type]
    assert status == 2
    assert output[0] == "desired configuration version 1 -> kiosk-99"


# --- ConfigSync, the TOML writer and the atomic write, without a broker.


def sync_on(path: Path, sent: list[ReportedConfig]) -> ConfigSync:
    return ConfigSync(path, publish_reported=sent.append)


def test_apply_defaults_to_the_next_version_and_refuses_an_old_one(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(ORIGINAL)
    sent: list[ReportedConfig] = []
    sync = sync_on(path, sent)
    assert sync.apply({"store": {"name": "A"}}) == ReportedConfig(version=1)
    assert sync.apply({"store": {"name": "B"}}, 5) == ReportedConfig(version=5)
    with pytest.raises(ConfigError, match="version: 4 is not newer than 5"):
        sync.apply({"store": {"name": "C"}}, 4)
    assert sent == [ReportedConfig(version=1), ReportedConfig(version=5)]
    sync.report()
    assert sent[-1] == ReportedConfig(version=5)
    assert sync_on(path, []).reported == ReportedConfig(version=5)  # kept beside the file


def test_a_null_in_the_desired_config_removes_the_key(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(ORIGINAL)
    sync_on(path, []).apply({"store": {"name": None}})
    assert "name" not in tomllib.loads(path.read_text())["store"]
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}


def test_an_unreadable_config_file_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text("this is = = not toml")
    sent: list[ReportedConfig] = []
    reported = sync_on(path, sent).handle(DesiredConfig(version=1, config={}))
    assert reported is not None and reported.rejected_version == 1
    assert reported.errors[0].startswith("(file): cannot read appliance.toml")
    assert path.read_text() == "this is = = not toml"


def test_a_repeated_rejected_version_is_not_evaluated_again(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(ORIGINAL)
    sent: list[ReportedConfig] = []
    sync = sync_on(path, sent)
    bad = DesiredConfig(version=1, config={"store": {"currency": "?"}})
    assert sync.handle(bad) is not None
    assert sync.handle(bad) is None  # retained, so it is redelivered on every reconnect
    assert len(sent) == 1


def test_dump_toml_round_trips_the_full_example_configuration() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    text = dump_toml(data)
    assert tomllib.loads(text) == data
    assert "[[store.variable_measure]]" in text
    assert "[devices.cash-drawer]" in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"a": {"b": 2**70}}, "a.b: 1180591620717411303424 is too large for TOML"),
        ({"a": [1, None]}, "a: a NoneType cannot be written as TOML"),
        ({"s": "\udc80"}, "a lone surrogate cannot be written as TOML"),
    ],
)
def test_dump_toml_names_a_value_toml_cannot_hold(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dump_toml(data)


toml_keys = st.text(min_size=1, max_size=8)
toml_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
toml_values = st.recursive(
    toml_scalars | st.lists(toml_scalars, max_size=3),
    lambda inner: (
        st.dictionaries(toml_keys, inner, max_size=3)
        | st.lists(st.dictionaries(toml_keys, inner, max_size=3), min_size=1, max_size=2)
    ),
    max_leaves=10,
)


@settings(max_examples=50, deadline=None)
@given(data=st.dictionaries(toml_keys, toml_values, max_size=4))
def test_dump_toml_writes_exactly_what_tomllib_reads_back(data: dict[str, Any]) -> None:
    try:
        text = dump_toml(data)
    except ValueError as err:
        assert "surrogate" in str(err)  # the only thing a str TOML cannot hold
        return
    assert tomllib.loads(text) == data


def test_write_atomically_keeps_the_mode_and_the_old_file_as_bak(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text("old = 1\n")
    path.chmod(0o600)
    write_atomically(path, "new = 2\n")
    assert path.read_text() == "new = 2\n"
    assert (tmp_path / "appliance.toml.bak").read_text() == "old = 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["appliance.toml", "appliance.toml.bak"]
