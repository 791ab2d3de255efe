"""`appliance-hub ca`: make the fleet CA and the certificates of devices, hub and broker."""

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
    help="Folder holding ca.key and ca.crt (keep it off the broker host).",
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
    """Fleet certificate authority: the device id is the CN of its certificate."""


@ca_group.command(name="init")
@_CA_DIR
@click.option("--name", default="Appliance fleet CA", show_default=True, help="The CA's CN.")
@_FORCE
def init_command(ca_dir: Path, name: str, force: bool) -> None:
    """Create the CA key and self-signed certificate (EC P-256, ten years)."""
    try:
        cert = ca.init_ca(ca_dir, name=name, force=force)
    except ca.CaError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"CA certificate: {cert}")
    click.echo(f"CA key:         {ca_dir / ca.CA_KEY} (keep it secret and backed up)")


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
    """Issue the hub workers' client certificate (CN=hub, two years)."""
    target = out if out is not None else ca_dir / "hub"
    try:
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
    """Issue the broker's server certificate for HOSTNAME (two years)."""
    target = out if out is not None else ca_dir / "server"
    try:
        cert, key = ca.issue_server(ca_dir, hostname, target, force=force)
    except ca.CaError as err:
        raise click.ClickException(str(err)) from err
    _report(cert, key)


def _report(cert: Path, key: Path) -> None:
    click.echo(f"certificate: {cert}")
    click.echo(f"key:         {key}")
    click.echo(f"CA:          {cert.parent / ca.CA_CERT}")
