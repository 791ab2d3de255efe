"""`appliance-hub ca`: the fleet and hub CAs, and the certificates of devices, hub and broker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hub import ca

_F = TypeVar("_F", bound=Callable[..., Any])

_CA_DIR = click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("ca"),
    show_default=True,
    envvar="APPLIANCE_HUB_CA_DIR",
    help="Folder holding both CAs (ca.*, hub-ca.*); keep it off the broker host.",
)
_FORCE = click.option("--force", is_flag=True, help="Overwrite an existing key and certificate.")


def _out_option(default_help: str) -> Callable[[_F], _F]:
    return click.option(
        "--out",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Folder for the new files [default: {default_help}].",
    )


@click.group(name="ca")
def ca_group() -> None:
    """Fleet and hub certificate authorities: the device id is the CN of its certificate."""


@ca_group.command(name="init")
@_CA_DIR
@click.option("--name", default=ca.FLEET_CA_NAME, show_default=True, help="The fleet CA's CN.")
@click.option("--hub-name", default=ca.HUB_CA_NAME, show_default=True, help="The hub CA's CN.")
@_FORCE
def init_command(ca_dir: Path, name: str, hub_name: str, force: bool) -> None:
    """Create the fleet CA (devices, broker) and the hub CA (hub workers): EC P-256, ten years."""
    try:
        cert = ca.init_ca(ca_dir, name=name, hub_name=hub_name, force=force)
    except ca.CaError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"fleet CA certificate: {cert}")
    click.echo(f"hub CA certificate:   {ca_dir / ca.HUB_CA_CERT}")
    click.echo(
        f"CA keys:              {ca_dir / ca.CA_KEY}, {ca_dir / ca.HUB_CA_KEY}"
        " (keep them secret and backed up)"
    )


@ca_group.command(name="issue")
@click.argument("device_id")
@_CA_DIR
@_out_option("CA_DIR/devices/DEVICE_ID")
@_FORCE
def issue_command(device_id: str, ca_dir: Path, out: Path | None, force: bool) -> None:
    """Issue DEVICE_ID's client certificate (CN=DEVICE_ID, two years)."""
    target = out if out is not None else ca_dir / "devices" / device_id
    try:
        cert, key = ca.issue_device(ca_dir, device_id, target, force=force)
    except ca.CaError as err:
        raise click.ClickException(str(err)) from err
    _report(cert, key)


@ca_group.command(name="hub")
@_CA_DIR
@_out_option("CA_DIR/hub")
@_FORCE
def hub_command(ca_dir: Path, out: Path | None, force: bool) -> None:
    """Issue the hub workers' client certificate from the hub CA (CN=hub, two years)."""
    target = out if out is not None else ca_dir / "hub"
    try:
        _made_hub_ca(ca_dir)
        cert, key = ca.issue_hub(ca_dir, target, force=force)
    except ca.CaError as err:
        raise click.ClickException(str(err)) from err
    _report(cert, key)


@ca_group.command(name="server")
@click.argument("hostname")
@_CA_DIR
@_out_option("CA_DIR/server")
@_FORCE
def server_command(hostname: str, ca_dir: Path, out: Path | None, force: bool) -> None:
    """Issue the broker's server certificate for HOSTNAME (two years), with both CA certificates."""
    target = out if out is not None else ca_dir / "server"
    try:
        _made_hub_ca(ca_dir)
        cert, key = ca.issue_server(ca_dir, hostname, target, force=force)
    except ca.CaError as err:
        raise click.ClickException(str(err)) from err
    _report(cert, key)
    click.echo(f"hub CA:      {cert.parent / ca.HUB_CA_CERT} (the hub workers' listener trusts it)")


def _report(cert: Path, key: Path) -> None:
    click.echo(f"certificate: {cert}")
    click.echo(f"key:         {key}")
    click.echo(f"CA:          {cert.parent / ca.CA_CERT}")


def _made_hub_ca(ca_dir: Path) -> None:
    """Make the hub CA of a folder from before it existed, and say so."""
    if ca.ensure_hub_ca(ca_dir):
        click.echo(f"hub CA:      {ca_dir / ca.HUB_CA_CERT} (new: this CA folder had none)")
