"""The options several hub commands share: the hub database, the broker and its TLS files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from peewee import Database

from appliance.errors import StoreError
from appliance.mqtt.client import TlsFiles
from hub.db import DB_URL_ENVVAR, DEFAULT_DB_URL
from hub.migrations import open_existing

Command = TypeVar("Command", bound=Callable[..., Any])

existing_file = click.Path(exists=True, dir_okay=False, path_type=Path)

db_option = click.option(
    "--db",
    "db_url",
    envvar=DB_URL_ENVVAR,
    default=DEFAULT_DB_URL,
    show_default=True,
    help="sqlite:///PATH (embedded) or postgresql://USER:PASSWORD@HOST/NAME.",
)

_OPTIONS = (
    click.option("--host", default="127.0.0.1", show_default=True, help="The MQTT broker."),
    click.option("--port", type=click.IntRange(1, 65535), default=1883, show_default=True),
    click.option(
        "--tls-ca", type=existing_file, help="CA certificate of the broker (turns TLS on)."
    ),
    click.option("--tls-cert", type=existing_file, help="This hub's client certificate."),
    click.option("--tls-key", type=existing_file, help="The key of --tls-cert."),
)


def broker_options(function: Command) -> Command:
    """Add --host, --port, --tls-ca, --tls-cert and --tls-key to a command."""
    for option in reversed(_OPTIONS):
        function = option(function)
    return function


def tls_files(ca: Path | None, cert: Path | None, key: Path | None) -> TlsFiles | None:
    """The TLS files the options name; None (plain MQTT) without --tls-ca."""
    if (cert or key) and not ca:
        raise click.UsageError("--tls-cert and --tls-key need --tls-ca")
    if bool(cert) != bool(key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    return TlsFiles(ca, cert, key) if ca else None


def open_db(db_url: str) -> Database:
    """The existing hub database of a read command; its problem as a one-line click error."""
    try:
        return open_existing(db_url)
    except StoreError as err:
        raise click.ClickException(str(err)) from err
