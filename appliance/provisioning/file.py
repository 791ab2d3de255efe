"""The provisioning file: one TOML document, every key checked, every problem named by its path."""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import re
import tomllib
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
from babel import Locale, UnknownLocaleError
from cryptography import x509

from appliance.errors import ConfigError
from appliance.provisioning.credentials import ssh_key_problem, tls_problems

# settings' own explainer, so the two files word msgspec's errors alike.
from appliance.settings import Identifier, _explain, parse_settings

FORMAT_VERSION = 1
FILE_KEY = "(file)"  # the "key" of a problem with the file as a whole
# Where the appliance's settings keep the TLS files, by the provisioning key that fills them.
TLS_SETTINGS = {
    "ca_file": "hub.ca",
    "cert_file": "hub.client_cert",
    "key_file": "hub.client_key",
    "fleet_public_key": "hub.fleet_public_key",
    "release_public_key": "hub.release_public_key",
}
# The image has no password logins at all, so a field that looks like one is refused by
# name (with a hint) rather than as a mere unknown key.
_PASSWORD_LIKE = re.compile(r"(?i)(^|_)(password|passwd|passphrase|pwd|pass)(_|$)")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_POSIX_LOCALE = re.compile(r"^(C|[a-z]{2,3}_[A-Z]{2})\.UTF-8$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a provisioning file: the dotted key, and what is wrong there."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class _Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A table of the file: unknown keys are refused, so a typo never passes silently."""


class DeviceTable(_Table, frozen=True):
    """Who the appliance is; the hub knows it by its certificate's CN, which must match."""

    id: Identifier


class StoreTable(_Table, frozen=True):
    """The shop, where the file names it (else the [appliance] table or the defaults do)."""

    name: str | None = None
    currency: str | None = None
    locale: str | None = None


class HubTable(_Table, frozen=True):
    """The hub link and its mutual-TLS material, as PEM text."""

    host: str
    ca: str
    client_cert: str
    client_key: str
    port: int = 8883
    fleet_public_key: str = ""  # Ed25519 public key (PEM) that signs fleet commands
    release_public_key: str = ""  # Ed25519 public key (PEM) that signs release bundles


class WifiTable(_Table, frozen=True):
    """A Wi-Fi network for the boot scripts to join; no psk means an open network."""

    ssid: str
    country: str  # the regulatory domain: the radio stays off until it is set
    psk: str | None = None
    hidden: bool = False


class SystemTable(_Table, frozen=True):
    """The operating system's time zone and locale, applied by the boot scripts."""

    timezone: str = "UTC"
    locale: str = "en_GB.UTF-8"


class SshTable(_Table, frozen=True):
    """Who may log in: OpenSSH public keys only (there are no passwords to set)."""

    authorized_keys: tuple[str, ...] = ()


class Provisioning(_Table, frozen=True):
    """A provisioning file that passed every check."""

    device: DeviceTable
    hub: HubTable
    version: int = FORMAT_VERSION
    store: StoreTable = msgspec.field(default_factory=StoreTable)
    wifi: WifiTable | None = None
    system: SystemTable = msgspec.field(default_factory=SystemTable)
    ssh: SshTable = msgspec.field(default_factory=SshTable)
    appliance: dict[str, Any] | None = None  # the appliance's own settings, inline
    config_url: str = ""  # ...or where the hub serves them (fetched later, not at boot)

    def appliance_config(
        self, files: Mapping[str, str], defaults: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The appliance's settings: the [appliance] table, with what this file sets laid over.

        `files` maps a TLS_SETTINGS key (ca_file, ...) to where that file will be; `defaults`
        ({table: {key: value}}) fills in what the [appliance] table leaves out.
        """
        config = copy.deepcopy(self.appliance or {})
        for table, values in (defaults or {}).items():
            for key, value in values.items():
                config.setdefault(table, {}).setdefault(key, value)
        config.setdefault("device", {})["id"] = self.device.id
        named = {k: getattr(self.store, k) for k in ("name", "currency", "locale")}
        store = {k: v for k, v in named.items() if v is not None}
        if store:
            config.setdefault("store", {}).update(store)
        config["hub"] = {
            **config.get("hub", {}),
            "host": self.hub.host,
            "port": self.hub.port,
            **files,
        }
        return config

    def client_certificate(self) -> x509.Certificate:
        """The device's certificate (checked to parse, so this never fails)."""
        return x509.load_pem_x509_certificates(self.hub.client_cert.encode())[0]


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of a check: the provisioning, or every problem found; and the file's hash."""

    provisioning: Provisioning | None
    problems: tuple[Problem, ...]
    sha256: str


_TABLES: dict[str, type[_Table]] = {
    "device": DeviceTable,
    "store": StoreTable,
    "hub": HubTable,
    "wifi": WifiTable,
    "system": SystemTable,
    "ssh": SshTable,
}
_REQUIRED = ("device", "hub")


def check_file(path: Path, *, now: datetime | None = None) -> Checked:
    """Read and check a provisioning file; an unreadable file is one problem, not an exception."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        return Checked(None, (Problem(FILE_KEY, f"cannot read {path}: {err.strerror}"),), "")
    return check_bytes(raw, now=now)


def check_bytes(raw: bytes, *, now: datetime | None = None) -> Checked:
    """Check a provisioning file's bytes (the hash is of these exact bytes)."""
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return Checked(None, (Problem(FILE_KEY, "not UTF-8 text"),), sha256)
    except tomllib.TOMLDecodeError as err:
        return Checked(None, (Problem(FILE_KEY, f"not valid TOML: {err}"),), sha256)
    provisioning, problems = _check(data, now or datetime.now(UTC))
    return Checked(provisioning, tuple(problems), sha256)


def parse_provisioning(raw: bytes, *, now: datetime | None = None) -> Provisioning:
    """A checked provisioning, or ConfigError listing every problem, one per line."""
    checked = check_bytes(raw, now=now)
    if checked.provisioning is None:
        raise ConfigError("\n".join(str(problem) for problem in checked.problems))
    return checked.provisioning


def _check(data: dict[str, Any], now: datetime) -> tuple[Provisioning | None, list[Problem]]:
    problems = list(_password_like(data))
    refused = {problem.key for problem in problems}
    fields = {f.name for f in msgspec.structs.fields(Provisioning)}
    problems += [
        Problem(key, "unknown key (check its spelling)")
        for key in data
        if key not in fields and key not in refused
    ]
    version = data.get("version", FORMAT_VERSION)
    if type(version) is not int or version != FORMAT_VERSION:
        problems.append(Problem("version", f"this appliance reads version {FORMAT_VERSION} files"))
    tables: dict[str, Any] = {}
    for name, cls in _TABLES.items():
        if name not in data:
            if name in _REQUIRED:
                problems.append(Problem(name, "required table is missing"))
            continue
        found, table_problems = _convert_table(name, data[name], cls, refused)
        problems += table_problems
        if found is not None:
            tables[name] = found
    problems += _check_values(tables, now)
    problems += _check_reference(data)
    if problems:
        return None, problems
    try:
        provisioning = msgspec.convert(data, Provisioning)
    except msgspec.ValidationError as err:  # every part passed on its own, so not expected
        key, _, message = _explain(str(err)).partition(": ")
        return None, [Problem(key, message)]
    problems += _check_appliance(provisioning)
    return (None if problems else provisioning), problems


def _password_like(data: Mapping[str, Any]) -> Iterator[Problem]:
    """Every key that looks like a password, outside the appliance's own settings."""
    for key, value in data.items():
        if key == "appliance":
            continue  # a ZVT terminal's protocol `password` is a setting, not a login
        if _PASSWORD_LIKE.search(key):
            yield Problem(key, "passwords are refused: the appliance has no password logins")
        elif isinstance(value, Mapping):
            hint = "the network's key is wifi.psk" if key == "wifi" else "use ssh.authorized_keys"
            for inner in value:
                if _PASSWORD_LIKE.search(inner):
                    yield Problem(f"{key}.{inner}", f"passwords are refused ({hint})")


def _convert_table(
    name: str, table: object, cls: type[_Table], refused: set[str]
) -> tuple[Any, list[Problem]]:
    """The typed table (of its known keys), or why not; and every unknown key."""
    if not isinstance(table, dict):
        return None, [Problem(name, f"expected a table, got {type(table).__name__}")]
    fields = {f.name for f in msgspec.structs.fields(cls)}
    unknown = [f"{name}.{key}" for key in table if key not in fields]
    problems = [Problem(k, "unknown key (check its spelling)") for k in unknown if k not in refused]
    try:
        # The known keys are still checked, so one typo does not hide the other problems.
        known = {key: value for key, value in table.items() if key in fields}
        return msgspec.convert(known, cls), problems
    except msgspec.ValidationError as err:
        key, _, message = _explain(str(err), name).partition(": ")
        return None, [*problems, Problem(key, message)]


def _check_values(tables: Mapping[str, Any], now: datetime) -> Iterator[Problem]:
    """The checks msgspec's types cannot make, table by table."""
    if (hub := tables.get("hub")) is not None:
        device = tables.get("device")
        yield from _check_hub(hub, device.id if device else None, now)
    if (wifi := tables.get("wifi")) is not None:
        yield from _check_wifi(wifi)
    if (system := tables.get("system")) is not None:
        yield from _check_system(system)
    if (ssh := tables.get("ssh")) is not None:
        for index, line in enumerate(ssh.authorized_keys):
            if message := ssh_key_problem(line):
                yield Problem(f"ssh.authorized_keys.{index}", message)


def _check_hub(hub: HubTable, device_id: str | None, now: datetime) -> Iterator[Problem]:
    """Host and port, then the TLS material: parses, matches, chains, names this device."""
    if not _is_host(hub.host):
        yield Problem("hub.host", "expected a host name or an IP address")
    if not 1 <= hub.port <= 65_535:
        yield Problem("hub.port", "expected a TCP port from 1 to 65535")
    credentials = tls_problems(
        hub.ca,
        hub.client_cert,
        hub.client_key,
        fleet_pem=hub.fleet_public_key,
        release_pem=hub.release_public_key,
        device_id=device_id,
        now=now,
    )
    for key, problem in credentials:
        yield Problem(f"hub.{key}", problem)


def _check_wifi(wifi: WifiTable) -> Iterator[Problem]:
    if not 1 <= len(wifi.ssid.encode()) <= 32:
        yield Problem("wifi.ssid", "expected 1 to 32 bytes")
    psk = wifi.psk
    if psk is not None and not (
        (8 <= len(psk) <= 63 and all(" " <= c <= "~" for c in psk))
        or re.fullmatch(r"[0-9A-Fa-f]{64}", psk)
    ):
        # Never echo the value: it is the network's secret.
        yield Problem("wifi.psk", "expected 8 to 63 printable ASCII characters or 64 hex digits")
    if not (re.fullmatch(r"[A-Z]{2}", wifi.country) and wifi.country in Locale("en").territories):
        yield Problem("wifi.country", f"expected a country code like DE, got {wifi.country!r}")


def _check_system(system: SystemTable) -> Iterator[Problem]:
    try:
        zoneinfo.ZoneInfo(system.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        yield Problem(
            "system.timezone", f"expected a time zone like Europe/Berlin, got {system.timezone!r}"
        )
    found = _POSIX_LOCALE.match(system.locale)
    if found is None or (found[1] != "C" and not _is_babel_locale(found[1])):
        yield Problem(
            "system.locale", f"expected a UTF-8 locale like de_DE.UTF-8, got {system.locale!r}"
        )


def _check_reference(data: Mapping[str, Any]) -> Iterator[Problem]:
    """The appliance's settings come inline or from a URL: one or the other."""
    url, appliance = data.get("config_url"), data.get("appliance")
    if appliance is not None and not isinstance(appliance, dict):
        yield Problem("appliance", f"expected a table, got {type(appliance).__name__}")
    if url is None:
        return
    if not isinstance(url, str) or urlsplit(url).scheme != "https" or not urlsplit(url).netloc:
        yield Problem("config_url", "expected an https:// URL")
    elif appliance is not None:
        yield Problem("config_url", "give either an [appliance] table or config_url, not both")


def _check_appliance(provisioning: Provisioning) -> list[Problem]:
    """The appliance's own parser on the settings this file makes; keys named as in the file."""
    inline = provisioning.appliance or {}
    problems = [
        Problem(f"appliance.{name}", "expected a table")
        for name in ("device", "store", "hub")
        if not isinstance(inline.get(name, {}), dict)
    ]
    if problems:
        return problems
    given = _given_here(provisioning)
    for path, value in given.items():
        section, _, key = path.partition(".")
        if key in inline.get(section, {}) and inline[section][key] != value:
            problems.append(Problem(f"appliance.{path}", f"differs from {path}; give it once"))
    for key, origin in TLS_SETTINGS.items():
        if key in inline.get("hub", {}):
            problems.append(Problem(f"appliance.hub.{key}", f"set from {origin}; remove it here"))
    if problems:
        return problems
    placeholder = {key: f"/provisioned/{key}" for key in TLS_SETTINGS}
    try:
        parse_settings(provisioning.appliance_config(placeholder), source="appliance")
    except ConfigError as err:
        key, _, message = str(err).removeprefix("appliance: ").partition(": ")
        # A value this file set is named where the file set it, not inside [appliance].
        return [Problem(key if key in given else f"appliance.{key}", message)]
    return []


def _given_here(provisioning: Provisioning) -> dict[str, object]:
    """The appliance settings this file's own tables set, by their dotted key."""
    given: dict[str, object] = {
        "device.id": provisioning.device.id,
        "hub.host": provisioning.hub.host,
        "hub.port": provisioning.hub.port,
    }
    for key in ("name", "currency", "locale"):
        if (value := getattr(provisioning.store, key)) is not None:
            given[f"store.{key}"] = value
    return given


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_DNS_NAME.match(host))
    return True


def _is_babel_locale(name: str) -> bool:
    try:
        Locale.parse(name)
    except (ValueError, UnknownLocaleError):
        return False
    return True
