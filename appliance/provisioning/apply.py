"""Applying a provisioning file: every target written aside, then swapped in with one rename.

The data directory holds `provisioning -> provisioning.d/<version>/`, a symbolic link. A new
version is written and fsynced in full beside the current one, and the link is replaced
with `rename(2)`, which is atomic: after a power cut the link names the old version or the
new one, never a mixture. Only then is the source file removed from the boot partition.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.errors import ConfigError
from appliance.provisioning.file import FILE_KEY, TLS_SETTINGS, Provisioning, parse_provisioning

log = logging.getLogger(__name__)

CURRENT = "provisioning"  # the link the appliance and the boot scripts read through
VERSIONS = "provisioning.d"
RECORD = "provisioned.json"
REJECTED = "provisioning-rejected.txt"  # why the last file was refused, for screen and console
_LOCK = ".provisioning.lock"
_NEW_LINK = ".provisioning.new"
# Settings of the machine itself ({table: {key: value}}) that a file's [appliance] may override.
Defaults = Mapping[str, Mapping[str, Any]]

SECRET, PUBLIC = 0o600, 0o644


@dataclass(frozen=True, slots=True)
class Target:
    """One file provisioning writes: its name, its mode, the key it comes from, its bytes."""

    name: str
    mode: int
    key: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Applied:
    """What an apply did: whether anything changed, and whether the source is gone."""

    changed: bool
    sha256: str
    directory: Path
    source_removed: bool
    removal_error: str = ""


def targets(
    provisioning: Provisioning,
    *,
    directory: Path,
    source: bytes = b"",
    applied_at: datetime | None = None,
    defaults: Defaults | None = None,
) -> list[Target]:
    """Every file provisioning writes, as it will be read through `directory` (the link).

    `defaults` are settings of the machine it runs on ({table: {key: value}}) that the
    file's [appliance] table may override: the image's software slots.
    """
    hub, system = provisioning.hub, provisioning.system
    ssh_keys = provisioning.ssh.authorized_keys
    tls = [
        Target("ca.crt", PUBLIC, "hub.ca", _text(hub.ca)),
        Target("client.crt", SECRET, "hub.client_cert", _text(hub.client_cert)),
        Target("client.key", SECRET, "hub.client_key", _text(hub.client_key)),
    ]
    if hub.fleet_public_key:
        tls.append(Target("fleet.pub", PUBLIC, "hub.fleet_public_key", _text(hub.fleet_public_key)))
    if hub.release_public_key:
        release = _text(hub.release_public_key)
        tls.append(Target("release.pub", PUBLIC, "hub.release_public_key", release))
    by_key = {t.key: str(directory / t.name) for t in tls}
    files = {name: by_key[key] for name, key in TLS_SETTINGS.items() if key in by_key}
    config = provisioning.appliance_config(files, defaults)
    found = [
        # It may hold a terminal's protocol password: readable by its owner only.
        Target("appliance.toml", SECRET, "appliance", _settings_toml(config).encode()),
        *tls,
        # Written even when empty, so re-provisioning without keys takes the old ones away.
        Target("authorized_keys", SECRET, "ssh.authorized_keys", _lines(ssh_keys)),
        Target("timezone", PUBLIC, "system.timezone", _text(system.timezone)),
        Target("locale", PUBLIC, "system.locale", _text(system.locale)),
    ]
    if (wifi := provisioning.wifi) is not None:
        # Shell-quoted KEY=value lines: a boot script can source them without a parser.
        fields = {"SSID": wifi.ssid, "PSK": wifi.psk or "", "COUNTRY": wifi.country}
        fields["HIDDEN"] = "yes" if wifi.hidden else "no"
        lines = (f"WIFI_{key}={_sh(value)}" for key, value in fields.items())
        found.append(Target("wifi", SECRET, "wifi", _lines(lines)))
    found.append(Target("provisioning.toml", SECRET, FILE_KEY, source))  # kept, for the record
    record = {
        "sha256": hashlib.sha256(source).hexdigest(),
        "applied_at": (applied_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "device_id": provisioning.device.id,
        "config_url": provisioning.config_url or None,
        "files": sorted(t.name for t in found),
    }
    found.append(Target(RECORD, PUBLIC, FILE_KEY, (json.dumps(record, indent=2) + "\n").encode()))
    return found


def applied_record(data_dir: Path) -> dict[str, Any] | None:
    """The record of the provisioning in force, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads((data_dir / CURRENT / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def what_is_kept(data_dir: Path) -> str:
    """What a refusal leaves in force, in words for the console and the screen."""
    if applied_record(data_dir) is None:
        return "the device stays unprovisioned"
    return "the device keeps its provisioning"


def apply_provisioning(
    source: Path,
    data_dir: Path,
    *,
    remove_source: bool = False,
    now: datetime | None = None,
    defaults: Defaults | None = None,
) -> Applied:
    """Check `source` and put it in force in `data_dir`; ConfigError names every problem.

    The same file again changes nothing. On any failure the provisioning in force and the
    source stay as they were, and REJECTED in `data_dir` says why.
    """
    try:
        raw = source.read_bytes()
    except OSError as err:
        raise ConfigError(f"{FILE_KEY}: cannot read {source}: {err.strerror}") from err
    sha256 = hashlib.sha256(raw).hexdigest()
    data_dir = data_dir.absolute()  # the settings name their files by absolute paths
    link = data_dir / CURRENT
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with _locked(data_dir):
            record = applied_record(data_dir)
            changed = record is None or record.get("sha256") != sha256
            if changed:
                _put_in_force(source, raw, data_dir, sha256, now=now, defaults=defaults)
            (data_dir / REJECTED).unlink(missing_ok=True)
    except OSError as err:
        raise ConfigError(f"{FILE_KEY}: cannot provision in {data_dir}: {err}") from err
    removed, error = _remove(source) if remove_source else (False, "")
    return Applied(changed, sha256, link, removed, error)


def _put_in_force(
    source: Path,
    raw: bytes,
    data_dir: Path,
    sha256: str,
    *,
    now: datetime | None,
    defaults: Defaults | None,
) -> None:
    """Check, write and swap in; on any failure say why in REJECTED, and raise."""
    try:
        provisioning = parse_provisioning(raw, now=now)
        planned = targets(
            provisioning,
            directory=data_dir / CURRENT,
            source=raw,
            applied_at=now,
            defaults=defaults,
        )
        _swap_in(data_dir, planned, sha256)
    except ConfigError as err:
        _report_rejected(data_dir, source, sha256, str(err))
        raise
    except OSError as err:
        error = ConfigError(f"{FILE_KEY}: cannot put it in place in {data_dir}: {err}")
        _report_rejected(data_dir, source, sha256, str(error))
        raise error from err
    log.info("provisioned %s from %s (sha256 %s)", provisioning.device.id, source, sha256)


def _swap_in(data_dir: Path, planned: list[Target], sha256: str) -> None:
    """Write a complete new version, then point the link at it in one rename."""
    link = data_dir / CURRENT
    if link.exists() and not link.is_symlink():
        raise ConfigError(f"{FILE_KEY}: {link} is not a link this command made; move it away")
    versions = data_dir / VERSIONS
    versions.mkdir(mode=0o755, exist_ok=True)
    previous = data_dir / os.readlink(link) if link.is_symlink() else None
    _clean(versions, keep=previous)  # what a power cut left half-written
    staging = Path(tempfile.mkdtemp(prefix=f"{sha256[:12]}-", dir=versions))
    new_link = data_dir / _NEW_LINK
    try:
        for target in planned:
            try:
                _write(staging / target.name, target.content, target.mode)
            except OSError as err:
                raise ConfigError(
                    f"{target.key}: cannot write {target.name}: {err.strerror or err}"
                ) from err
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the CA; the keys keep 0600
        _fsync_dir(staging)
        new_link.unlink(missing_ok=True)
        os.symlink(Path(VERSIONS) / staging.name, new_link)  # relative: any mount point
        os.replace(new_link, link)  # the one step
        _fsync_dir(data_dir)
    except BaseException:
        new_link.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)


def _write(path: Path, content: bytes, mode: int) -> None:
    """Create `path` with exactly `mode` (whatever the umask) and put it on the disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean(versions: Path, keep: Path | None) -> None:
    for entry in versions.iterdir():
        if keep is None or entry.name != keep.name:
            shutil.rmtree(entry, ignore_errors=True)


def _report_rejected(data_dir: Path, source: Path, sha256: str, problems: str) -> None:
    """Leave the reasons where the screen and the console can show them."""
    text = f"{source} (sha256 {sha256}) was refused; {what_is_kept(data_dir)}:\n"
    try:
        staging = data_dir / f".{REJECTED}.new"
        staging.unlink(missing_ok=True)
        _write(staging, (text + problems + "\n").encode(), PUBLIC)
        os.replace(staging, data_dir / REJECTED)
    except OSError as err:
        log.warning("cannot write %s: %s", data_dir / REJECTED, err)


def _remove(source: Path) -> tuple[bool, str]:
    """Take the source off the boot partition (it holds the private key)."""
    try:
        source.unlink()
    except FileNotFoundError:
        return True, ""
    except OSError as err:
        log.error("provisioned, but cannot remove %s: %s", source, err)
        return False, str(err.strerror or err)
    with suppress(OSError):  # a FAT driver may refuse a directory fsync; the removal stands
        _fsync_dir(source.parent)
    return True, ""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One provisioning at a time (a boot service and a technician's shell may overlap)."""
    import fcntl  # POSIX only; a laptop running --check never gets here

    with open(data_dir / _LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- the appliance's settings as TOML (the standard library reads TOML but cannot write it) ---


def _settings_toml(config: Mapping[str, Any]) -> str:
    """The appliance's settings file, with a line saying where it comes from."""
    try:
        text = toml_text(config)
    except ValueError as err:
        raise ConfigError(f"appliance: {err}") from err
    return "# Written by `appliance provision`; change the provisioning file, not this.\n" + text


def toml_text(data: Mapping[str, Any]) -> str:
    """`data` (as tomllib reads it) as a TOML document; ValueError unless it reads back equal."""
    lines: list[str] = []
    _table(lines, (), data)
    text = "\n".join(lines).lstrip("\n") + "\n"
    if tomllib.loads(text) != data:
        raise ValueError("cannot be written as TOML and read back the same")
    return text


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    inner = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and (len(inner) < len(table) or not inner):
        lines.extend(["", f"[{'.'.join(_key(p) for p in path)}]"])
    lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items() if k not in inner)
    for key, value in inner.items():
        _table(lines, (*path, key), value)


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)  # inf, -inf, nan
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    return str(value.isoformat())  # TOML's own dates and times, as tomllib read them


def _string(text: str) -> str:
    # JSON's string escapes are TOML's, except that TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _text(text: str) -> bytes:
    return (text.strip() + "\n").encode()


def _lines(lines: Iterator[str] | tuple[str, ...]) -> bytes:
    return "".join(f"{line.strip()}\n" for line in lines).encode()


def _sh(value: str) -> str:
    """Single-quoted for POSIX sh: nothing inside is expanded."""
    return "'" + value.replace("'", "'\"'\"'") + "'"
