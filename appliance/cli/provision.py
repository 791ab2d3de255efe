"""`appliance provision`: check a provisioning file on a laptop, or apply it at first boot."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from appliance.provisioning.file import Provisioning


@click.command()
@click.option(
    "--check",
    "check_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Check FILE and say what it would write; change nothing.",
)
@click.option(
    "--apply",
    "apply_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Check FILE and put it in force in --data-dir (the boot service calls this).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The data partition's directory for the appliance (with --apply).",
)
@click.option(
    "--remove-source", is_flag=True, help="With --apply: delete FILE once it is in force."
)
@click.option(
    "--slots",
    type=click.Choice(["pi"]),
    help="With --apply: the machine's software slots ([update] slots) unless FILE sets them.",
)
def provision(
    check_path: Path | None,
    apply_path: Path | None,
    data_dir: Path | None,
    remove_source: bool,
    slots: str | None,
) -> None:
    """Check or apply a provisioning file (problems one per line, key path first; exit 1)."""
    if (check_path is None) == (apply_path is None):
        raise click.UsageError("give either --check FILE or --apply FILE")
    if check_path is not None:
        _check(check_path)
    else:
        assert apply_path is not None  # for mypy: one of the two is set, checked above
        if data_dir is None:
            raise click.UsageError("--apply needs --data-dir")
        _apply(apply_path, data_dir, remove_source, {"update": {"slots": slots}} if slots else {})


def _check(path: Path) -> None:
    # Imported here: `appliance --help` need not load cryptography.
    from appliance.provisioning.file import check_file

    checked = check_file(path)
    if checked.provisioning is None:
        for problem in checked.problems:
            click.echo(str(problem))
        raise SystemExit(1)
    click.echo(f"{path}: ok (sha256 {checked.sha256})")
    for label, text in summary(checked.provisioning):
        click.echo(f"  {label:<8} {text}")
    from appliance.provisioning.apply import targets

    click.echo("writes, in DATA_DIR/provisioning/:")
    for target in targets(checked.provisioning, directory=Path("DATA_DIR/provisioning")):
        click.echo(f"  {target.name:<18} {target.mode:04o}  from {target.key}")


def _apply(
    path: Path, data_dir: Path, remove_source: bool, defaults: dict[str, dict[str, str]]
) -> None:
    from appliance.errors import ConfigError
    from appliance.provisioning.apply import apply_provisioning, what_is_kept

    try:
        applied = apply_provisioning(path, data_dir, remove_source=remove_source, defaults=defaults)
    except ConfigError as err:
        # Every problem on its own line on the console; the boot service shows them too.
        click.echo(f"{path}: refused; {what_is_kept(data_dir)}", err=True)
        for line in str(err).splitlines():
            click.echo(line, err=True)
        raise SystemExit(1) from err
    if applied.changed:
        click.echo(f"provisioned from {path} (sha256 {applied.sha256}) in {applied.directory}")
    else:
        click.echo(f"already provisioned from this file (sha256 {applied.sha256}); no change")
    if remove_source and not applied.source_removed:
        # The file holds the device's private key: leaving it on the card is a failure.
        click.echo(f"cannot remove {path}: {applied.removal_error}", err=True)
        raise SystemExit(1)
    if applied.source_removed:
        click.echo(f"removed {path}")


def summary(provisioning: Provisioning) -> list[tuple[str, str]]:
    """What the file sets, for a person to confirm; never a private key or a Wi-Fi key."""
    hub, cert = provisioning.hub, provisioning.client_certificate()
    wifi = provisioning.wifi
    rows = [
        ("device", provisioning.device.id),
        ("hub", f"{hub.host}:{hub.port}"),
        ("cert", f"{cert.subject.rfc4514_string()}, until {cert.not_valid_after_utc:%Y-%m-%d}"),
        ("issuer", cert.issuer.rfc4514_string()),
        (
            "wifi",
            "none"
            if wifi is None
            else f"{wifi.ssid!r} ({'WPA key set' if wifi.psk else 'open'}, country {wifi.country})",
        ),
        ("system", f"{provisioning.system.timezone}, {provisioning.system.locale}"),
        ("ssh", f"{len(provisioning.ssh.authorized_keys)} key(s)"),
    ]
    rows += [("", _fingerprint(line)) for line in provisioning.ssh.authorized_keys]
    if provisioning.config_url:
        rows.append(("config", f"from {provisioning.config_url}"))
    else:
        inline = "inline [appliance] table" if provisioning.appliance else "defaults"
        rows.append(("config", f"{inline}, with the device, store and hub above"))
    return rows


def _fingerprint(line: str) -> str:
    """`type SHA256:... comment`, as `ssh-keygen -lf` prints it."""
    kind, blob, *comment = line.split(maxsplit=2)
    digest = base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode()
    return " ".join([kind, f"SHA256:{digest.rstrip('=')}", *comment])
