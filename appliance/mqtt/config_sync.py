"""Desired vs reported configuration on the device, with versions (a device shadow).

The hub keeps the desired configuration retained on config-desired; after every
(re)connect the device receives it again, so a change made while it was offline is not
lost. A desired version newer than the reported one is merged onto the current file,
validated with parse_settings and, when valid, written atomically (the old file kept as
.bak); the device then reports that version. An invalid one is reported as rejected with
its dotted-key errors and the old file stays. The new settings take effect through
`on_applied` (the service restarts itself: settings are loaded once).
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.core.events import Event, EventBus
from appliance.errors import ConfigError, DecodeError
from appliance.mqtt import topics
from appliance.mqtt.dispatch import Dispatcher
from appliance.mqtt.payloads import DesiredConfig, ReportedConfig, decode, encode
from appliance.settings import Settings, parse_settings

log = logging.getLogger(__name__)

SOURCE = "desired"
# Keys a fleet admin may not change remotely: the device id is its certificate's CN, and
# a new database path would leave every unsent sale behind in the old file.
PINNED_KEYS = (("device", "id"), ("database", "path"))
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # used with fullmatch
_INT64 = 2**63


@dataclass(frozen=True, slots=True)
class DesiredConfigReceived(Event):
    """A desired configuration decoded on paho's thread, for the main loop to apply."""

    desired: DesiredConfig


class ConfigSync:
    """Applies desired configurations to the config file and reports the one in force.

    Thread-safe: `handle` (main loop) and `apply` (the set_config command's worker) are
    serialised, and `publish_reported` is called in version order under that lock.
    """

    def __init__(
        self,
        config_path: Path,
        *,
        publish_reported: Callable[[ReportedConfig], None],
        on_applied: Callable[[Settings], None] | None = None,
    ) -> None:
        self._path = config_path
        self._state_path = config_path.with_name(config_path.name + ".reported")
        self._publish = publish_reported
        self._on_applied = on_applied
        self._lock = threading.Lock()
        self._reported = self._load_state()

    @property
    def reported(self) -> ReportedConfig:
        """What this device last reported (version 0 before any desired config)."""
        return self._reported

    def route(self, device_id: str, dispatcher: Dispatcher, bus: EventBus) -> None:
        """Take desired configs from the dispatcher (paho's thread) through the bus to `handle`."""
        dispatcher.on(
            topics.config_desired(device_id), lambda d: bus.post(DesiredConfigReceived(d))
        )
        bus.subscribe(DesiredConfigReceived, self._received)

    def _received(self, event: DesiredConfigReceived) -> None:
        self.handle(event.desired)

    def report(self) -> None:
        """Publish the reported state again (after a reconnect: the hub may have missed it)."""
        with self._lock:
            self._publish(self._reported)

    def on_message(self, data: bytes) -> ReportedConfig | None:
        """Decode and handle a config-desired message; DecodeError when malformed."""
        return self.handle(decode(data, DesiredConfig))

    def handle(self, desired: DesiredConfig) -> ReportedConfig | None:
        """Apply a desired config newer than the reported one; None when it is ignored."""
        with self._lock:
            current = self._reported
            if desired.version <= current.version or desired.version == current.rejected_version:
                # Retained, so it comes back on every reconnect: only news is acted on.
                log.debug(
                    "desired config %d ignored (reported %d)", desired.version, current.version
                )
                return None
            return self._apply(desired.config, desired.version)

    def apply(self, config: Mapping[str, Any], version: int | None = None) -> ReportedConfig:
        """Apply a config (set_config command); version defaults to the reported one + 1."""
        with self._lock:
            old = self._reported.version
            version = old + 1 if version is None else version
            if version <= old:
                raise ConfigError(f"version: {version} is not newer than {old}")
            return self._apply(config, version)

    def _apply(self, config: Mapping[str, Any], version: int) -> ReportedConfig:
        old = self._reported.version
        try:
            current = tomllib.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            return self._reject(version, [f"(file): cannot read {self._path.name}: {err}"])
        merged = merge(current, config)
        errors = self._validate(current, config, merged)
        text = ""
        if not errors:
            try:
                text = dump_toml(merged)
            except ValueError as err:
                errors = [str(err)]
        if errors:
            return self._reject(version, errors)
        try:
            write_atomically(self._path, text)
        except OSError as err:
            return self._reject(version, [f"(file): cannot write {self._path.name}: {err}"])
        self._set(ReportedConfig(version=version))
        log.info("configuration version %d written (was %d)", version, old)
        if self._on_applied is not None:
            self._on_applied(parse_settings(merged, source=SOURCE))
        return self._reported

    def _validate(
        self, current: Mapping[str, Any], desired: Mapping[str, Any], merged: dict[str, Any]
    ) -> list[str]:
        errors = [
            f"{'.'.join(key)}: cannot be changed remotely"
            for key in PINNED_KEYS
            if _lookup(current, key) != _lookup(merged, key)
        ]
        try:
            parse_settings(merged, source=SOURCE)
        except ConfigError as err:
            # msgspec stops at the first error: validate each changed table on its own as
            # well, so the admin sees every broken table in one round trip.
            found = [_reason(err)]
            for table, value in desired.items():
                try:
                    parse_settings(merge(current, {table: value}), source=SOURCE)
                except ConfigError as table_err:
                    found.append(_reason(table_err))
            errors.extend(dict.fromkeys(found))
        return errors

    def _reject(self, version: int, errors: list[str]) -> ReportedConfig:
        log.warning("desired configuration %d rejected: %s", version, "; ".join(errors))
        self._set(
            ReportedConfig(version=self._reported.version, rejected_version=version, errors=errors)
        )
        return self._reported

    def _set(self, reported: ReportedConfig) -> None:
        try:
            write_atomically(self._state_path, encode(reported).decode())
        except OSError as err:
            # The file is what matters; a lost version only makes the next desired re-apply.
            log.error("cannot store the reported configuration version: %s", err)
        self._reported = reported
        self._publish(reported)

    def _load_state(self) -> ReportedConfig:
        try:
            return decode(self._state_path.read_bytes(), ReportedConfig)
        except FileNotFoundError:
            return ReportedConfig(version=0)
        except (OSError, DecodeError) as err:
            log.error("%s unreadable (%s); reporting version 0", self._state_path, err)
            return ReportedConfig(version=0)


def merge(base: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """`change` laid over `base`, tables merged key by key; a None value deletes the key."""
    merged = dict(base)
    for key, value in change.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` by `text` so a power cut leaves the old or the new file, never half.

    The old file is kept as `path.bak`, and the new one keeps the old one's mode.
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    if path.exists():
        shutil.copymode(path, tmp)
        backup = path.with_name(path.name + ".bak")
        backup_tmp = path.with_name(path.name + ".bak.tmp")
        shutil.copy2(path, backup_tmp)
        os.replace(backup_tmp, backup)
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself must survive the power cut too
    finally:
        os.close(directory)


def dump_toml(data: Mapping[str, Any]) -> str:
    """TOML text for a settings-shaped mapping; ValueError names a key TOML cannot hold."""
    lines: list[str] = []
    _dump_table(lines, (), data, header="")
    text = "\n".join(lines).strip() + "\n"
    try:
        if tomllib.loads(text) != data:
            raise ValueError("(top level): does not survive a TOML round trip")
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"(top level): cannot be written as TOML: {err}") from err
    return text


def _dump_table(
    lines: list[str], path: tuple[str, ...], table: Mapping[str, Any], header: str
) -> None:
    scalars = {k: v for k, v in table.items() if not _is_table(v) and not _is_table_array(v)}
    if header and (scalars or not table):
        lines.extend(["", header])
    for key, value in scalars.items():
        lines.append(f"{_key(key)} = {_value(value, (*path, key))}")
    for key, value in table.items():
        sub = (*path, key)
        if _is_table(value):
            _dump_table(lines, sub, value, header=f"[{_dotted(sub)}]")
        elif _is_table_array(value):
            for item in value:
                lines.extend(["", f"[[{_dotted(sub)}]]"])
                _dump_table(lines, sub, item, header="")


def _is_table(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _value(value: object, path: tuple[str, ...]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise ValueError(f"{_dotted(path)}: {value} is too large for TOML")
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # inf, -inf, nan
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, path) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{_key(k)} = {_value(v, (*path, k))}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ValueError(f"{_dotted(path)}: a {type(value).__name__} cannot be written as TOML")


def _string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:
            raise ValueError(f"{text!r}: a lone surrogate cannot be written as TOML")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_key(part) for part in path)


def _lookup(data: Mapping[str, Any], key: tuple[str, ...]) -> object:
    node: object = data
    for part in key:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def _reason(err: ConfigError) -> str:
    """`dotted.key: message` from parse_settings' `source: dotted.key: message`."""
    return str(err).removeprefix(f"{SOURCE}: ")
