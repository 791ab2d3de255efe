"""`appliance-hub fleet command|config|logs|keygen`: talk to one appliance over MQTT v5.

Each call is a short-lived MQTT client with the hub's identity: it subscribes to the
device's answers first (so none is missed), publishes, then prints what comes back until
the job is final or `--wait` runs out. Exit status: 0 done, 1 refused or failed, 2 no
final answer in time (the device may be offline: a serving hub holds the command and sends
it again when the device next connects, until it expires; see hub/command_hold.py).
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast, get_args

import click
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from appliance.core.clock import Clock, SystemClock
from appliance.core.closing import Closing
from appliance.errors import ApplianceError, DecodeError, SyncError
from appliance.mqtt import topics
from appliance.mqtt.client import TlsFiles, paho_client
from appliance.mqtt.commands import TERMINAL_STATES
from appliance.mqtt.device_logs import DEFAULT_LOG_LINES, MAX_LOG_LINES
from appliance.mqtt.payloads import (
    Command,
    CommandName,
    CommandUpdate,
    DesiredConfig,
    LogLines,
    ReportedConfig,
    decode,
    encode,
)
from hub.cli_options import broker_options, tls_files
from hub.fleet_keys import generate_fleet_keys, load_fleet_key, new_command

log = logging.getLogger(__name__)

EXIT_REFUSED = 1
EXIT_NO_ANSWER = 2
SUBACK_FAILURE = 0x80
MAX_EXPIRES_S = 7 * 24 * 3600  # a week: longer-lived commands are a replay risk, not a help
# approve_help is the hub's own, for a staff member a staff device vouched for (with its
# role checked): an admin's hand-made one would bypass that.
ADMIN_COMMANDS = tuple(name for name in get_args(CommandName) if name != "approve_help")


class FleetClientError(SyncError):
    """The fleet CLI cannot reach the broker or is refused by it."""


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Where the hub's broker is; TLS with `ca_file`, mTLS with the hub's cert and key too."""

    host: str = "127.0.0.1"
    port: int = 1883
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def tls(self) -> TlsFiles | None:
        """The TLS files, or None for plain MQTT."""
        if self.ca_file is None:
            return None
        return TlsFiles(self.ca_file, self.cert_file, self.key_file)


class FleetClient(Closing):
    """One MQTT v5 client for one CLI call; paho's thread only fills queues."""

    def __init__(self, broker: BrokerOptions, *, timeout: float = 10.0) -> None:
        self._broker = broker
        self._timeout = timeout
        self._messages: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._acks: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._client = paho_client(tls=broker.tls)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = lambda _c, _u, message: self._messages.put(
            (message.topic, bytes(message.payload))
        )

    def __enter__(self) -> FleetClient:
        try:
            self._client.connect(self._broker.host, self._broker.port, clean_start=True)
        except (OSError, ssl.SSLError) as err:
            raise FleetClientError(
                f"cannot reach the broker at {self._broker.host}:{self._broker.port}: {err}"
            ) from err
        self._client.loop_start()
        try:
            kind, code = self._next_ack()
        except FleetClientError:
            self.close()  # or paho's network thread outlives the failed connection
            raise
        if kind != "connack" or code.is_failure:
            self.close()
            raise FleetClientError(f"the broker refused the connection: {code}")
        return self

    def close(self) -> None:
        """Disconnect and stop paho's thread; safe twice."""
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, *filters: str) -> None:
        """Subscribe (QoS 1) and wait for the SUBACK; retained messages follow it."""
        self._client.subscribe([(f, 1) for f in filters])
        kind, codes = self._next_ack()
        refused = [f for f, c in zip(filters, codes, strict=False) if c.value >= SUBACK_FAILURE]
        if kind != "suback" or refused:
            raise FleetClientError(f"the broker refused the subscription to {refused or filters}")

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publish QoS 1 and wait until the broker has it."""
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        info.wait_for_publish(self._timeout)
        if not info.is_published():
            raise FleetClientError(f"the broker did not take the message on {topic}")

    def next_message(self, timeout: float) -> tuple[str, bytes] | None:
        """The next message on a subscribed topic, or None after `timeout` seconds."""
        try:
            return self._messages.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def _next_ack(self) -> tuple[str, Any]:
        try:
            return self._acks.get(timeout=self._timeout)
        except queue.Empty:
            raise FleetClientError("the broker did not answer in time") from None

    def _on_connect(self, _c: Any, _u: Any, _f: Any, code: ReasonCode, _p: Any) -> None:
        self._acks.put(("connack", code))

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self._acks.put(("suback", codes))


def broker_and_wait_options(function: Any) -> Any:
    """The broker options, and how long to wait for answers."""
    wait = click.option(
        "--wait", default=30.0, show_default=True, help="Seconds to wait for answers."
    )
    return broker_options(wait(function))


def fleet_key_option(function: Any) -> Any:
    """The fleet private key that signs commands."""
    return click.option(
        "--fleet-key",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="APPLIANCE_HUB_FLEET_KEY",
        required=True,
        help="The fleet Ed25519 private key (fleet.key).",
    )(function)


@contextmanager
def _errors_as_click() -> Iterator[None]:
    """Our errors become a one-line message and exit status 1, not a traceback."""
    try:
        yield
    except ApplianceError as err:
        raise click.ClickException(str(err)) from err


def _broker(options: dict[str, Any]) -> BrokerOptions:
    ca, cert, key = options["tls_ca"], options["tls_cert"], options["tls_key"]
    tls_files(ca, cert, key)  # refuses a certificate without a key, or either without a CA
    return BrokerOptions(options["host"], options["port"], ca, cert, key)


def _parse_arg(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected key=value, got {text!r}", param_hint="--arg")
    try:
        return key, json.loads(raw)  # numbers, booleans and tables as JSON; else a string
    except json.JSONDecodeError:
        return key, raw


def run_command(
    client: FleetClient,
    command: Command,
    *,
    wait: float,
    clock: Clock,
    echo: Callable[[str], None] = click.echo,
    expect_logs: bool = False,
) -> int:
    """Publish a signed command, print its updates (and logs) until final; the exit status."""
    device = command.device
    client.subscribe(topics.command_update(device), topics.logs_up(device))
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    expires_in = max(1, int(_seconds_left(command)))
    properties.MessageExpiryInterval = expires_in  # the broker drops it when the job expires
    properties.ResponseTopic = topics.command_update(device)
    properties.CorrelationData = command.id.encode()
    client.publish(topics.command(device), encode(command), properties=properties)
    echo(f"{command.id} {command.name} -> {device} (expires {command.expires_at})")
    final: CommandUpdate | None = None
    logs_done = not expect_logs
    deadline = clock.monotonic() + wait
    while final is None or not logs_done:
        message = client.next_message(deadline - clock.monotonic())
        if message is None:
            echo(
                f"no final answer within {wait:g} s; a serving hub (appliance-hub serve) "
                f"holds it and sends it again when {device} next connects, until it expires, "
                f"and the hub records later answers (appliance-hub fleet jobs {device})"
            )
            return EXIT_NO_ANSWER
        topic, data = message
        try:
            if topic == topics.command_update(device):
                update = decode(data, CommandUpdate)
                if update.id != command.id:
                    continue
                echo(f"{update.state}{': ' + update.reason if update.reason else ''}")
                if update.state in TERMINAL_STATES:
                    final = update
                    logs_done = logs_done or update.state != "SUCCEEDED"
            elif topic == topics.logs_up(device):
                lines = decode(data, LogLines)
                if lines.command_id == command.id:
                    echo(f"--- {len(lines.lines)} lines from the {lines.source} of {device} ---")
                    for line in lines.lines:
                        echo(line)
                    logs_done = True
        except DecodeError as err:
            log.warning("malformed message on %s: %s", topic, err)
    return 0 if final is not None and final.state == "SUCCEEDED" else EXIT_REFUSED


def _seconds_left(command: Command) -> float:
    issued = datetime.fromisoformat(command.issued_at)
    return (datetime.fromisoformat(command.expires_at) - issued).total_seconds()


def push_config(
    client: FleetClient,
    device: str,
    config: dict[str, Any],
    *,
    wait: float,
    clock: Clock,
    echo: Callable[[str], None],
) -> int:
    """Publish `config` as the next desired version (retained); wait for the device's report."""
    client.subscribe(topics.config_desired(device), topics.config_reported(device))
    # Retained messages of the first subscription are queued before the second SUBACK
    # (brokers answer one client's packets in order): after it, all of them are here.
    client.subscribe(topics.logs_up(device))
    latest = 0
    while (message := client.next_message(0)) is not None:
        topic, data = message
        try:
            if topic == topics.config_desired(device):
                latest = max(latest, decode(data, DesiredConfig).version)
            elif topic == topics.config_reported(device):
                reported = decode(data, ReportedConfig)
                latest = max(latest, reported.version, reported.rejected_version or 0)
        except DecodeError as err:
            log.warning("malformed retained message on %s: %s", topic, err)
    version = latest + 1
    desired = DesiredConfig(version=version, config=config)
    client.publish(topics.config_desired(device), encode(desired), retain=True)
    echo(f"desired configuration version {version} -> {device}")
    deadline = clock.monotonic() + wait
    while (message := client.next_message(deadline - clock.monotonic())) is not None:
        topic, data = message
        if topic != topics.config_reported(device):
            continue
        try:
            reported = decode(data, ReportedConfig)
        except DecodeError as err:
            log.warning("malformed report from %s: %s", device, err)
            continue
        if reported.version == version:
            echo(f"{device} reports version {version}: in force")
            return 0
        if reported.rejected_version == version:
            echo(f"{device} rejected version {version}; version {reported.version} stays:")
            for error in reported.errors:
                echo(f"  {error}")
            return EXIT_REFUSED
    echo(
        f"no report within {wait:g} s; the device applies it when it next connects, "
        f"and the hub records its report (appliance-hub fleet show {device})"
    )
    return EXIT_NO_ANSWER


@click.command("command")
@click.argument("device")
@click.argument("name", type=click.Choice(ADMIN_COMMANDS))
@click.option("--arg", "args", multiple=True, help="key=value (value as JSON when it parses).")
@click.option(
    "--expires",
    type=click.IntRange(1, MAX_EXPIRES_S),
    default=300,
    show_default=True,
    help="Seconds the command is valid.",
)
@fleet_key_option
@broker_and_wait_options
def command_command(
    device: str, name: str, args: tuple[str, ...], expires: int, **options: Any
) -> None:
    """Sign and send a command to DEVICE, and print its job states."""
    with _errors_as_click():
        key = load_fleet_key(options.pop("fleet_key"))
        command = new_command(
            key,
            device,
            cast(CommandName, name),
            dict(_parse_arg(a) for a in args),
            expires_in=timedelta(seconds=expires),
        )
        with FleetClient(_broker(options)) as client:
            status = run_command(client, command, wait=options["wait"], clock=SystemClock())
    sys.exit(status)


@click.command("logs")
@click.argument("device")
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(1, MAX_LOG_LINES),
    default=DEFAULT_LOG_LINES,
    show_default=True,
    help=f"How many of the last lines (at most {MAX_LOG_LINES}, one message).",
)
@click.option(
    "--expires",
    type=click.IntRange(1, MAX_EXPIRES_S),
    default=120,
    show_default=True,
    help="Seconds the request is valid.",
)
@fleet_key_option
@broker_and_wait_options
def logs_command(device: str, lines: int, expires: int, **options: Any) -> None:
    """Ask DEVICE for its last log lines and print them."""
    with _errors_as_click():
        key = load_fleet_key(options.pop("fleet_key"))
        command = new_command(
            key, device, "collect_logs", {"lines": lines}, expires_in=timedelta(seconds=expires)
        )
        with FleetClient(_broker(options)) as client:
            status = run_command(
                client, command, wait=options["wait"], clock=SystemClock(), expect_logs=True
            )
    sys.exit(status)


@click.command("config")
@click.argument("device")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@broker_and_wait_options
def config_command(device: str, file: Path, **options: Any) -> None:
    """Make FILE.toml (merged onto the device's file) DEVICE's desired configuration."""
    try:
        config = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise click.ClickException(f"{file}: {err}") from err
    if (key := datetime_key(config)) is not None:
        # JSON has no date type: it would reach the device as a string no setting expects.
        raise click.ClickException(
            f"{file}: {key} is a TOML date or time; no setting takes one (quote it if a "
            "string is meant)"
        )
    with _errors_as_click(), FleetClient(_broker(options)) as client:
        status = push_config(
            client, device, config, wait=options["wait"], clock=SystemClock(), echo=click.echo
        )
    sys.exit(status)


def datetime_key(value: Any, path: str = "") -> str | None:
    """The dotted key of the first TOML date, time or datetime in `value`, or None."""
    if isinstance(value, datetime | date | time):
        return path
    if isinstance(value, dict):
        items: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for key, inner in items:
        if (found := datetime_key(inner, key)) is not None:
            return found
    return None


@click.command("keygen")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Replace an existing key pair.")
def keygen_command(directory: Path, force: bool) -> None:
    """Make the fleet signing key pair (fleet.key, fleet.pub) in DIRECTORY."""
    with _errors_as_click():
        private, public = generate_fleet_keys(directory, force=force)
    click.echo(f"private key {private} (keep it with the fleet admins)")
    click.echo(f"public key  {public} (every appliance's [hub] fleet_public_key)")


FLEET_COMMANDS: tuple[click.Command, ...] = (
    command_command,
    config_command,
    logs_command,
    keygen_command,
)
"""The commands the lead adds under `appliance-hub fleet`."""
