"""`appliance-hub bundles`: release payloads over HTTPS, to fleet client certificates only."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType

import click

from appliance.service.logs import LEVELS, configure_logging
from hub.cli_options import db_option, existing_file
from hub.cli_release import open_migrated
from hub.db import redacted

log = logging.getLogger(__name__)


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # uvicorn stops gracefully on SIGTERM, then raises it again for the handler it found.
    raise SystemExit(0)


@click.command("bundles")
@db_option
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="HOST:PORT to serve.")
@click.option("--cert", type=existing_file, required=True, help="This server's certificate.")
@click.option("--key", type=existing_file, required=True, help="The key of --cert.")
@click.option(
    "--client-ca",
    type=existing_file,
    required=True,
    help="The fleet CA (ca.crt): only devices with a certificate from it may download.",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
)
def bundles(
    *, db_url: str, listen: str, cert: Path, key: Path, client_ca: Path, log_level: str
) -> None:
    """Serve /bundles/VERSION/payload.bin (with byte ranges) until SIGTERM."""
    import uvicorn

    from hub.releases.bundle_server import TlsServerFiles, server_config

    configure_logging(log_level)
    address, _, port_text = listen.rpartition(":")
    if not address or not port_text.isdigit():
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    db = open_migrated(db_url)
    config = server_config(
        db,
        address.strip("[]"),
        int(port_text),
        TlsServerFiles(cert, key, client_ca),
        log_level=log_level.lower(),
    )
    click.echo(f"bundles on https://{listen}, database {redacted(db_url)}", err=True)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.Server(config).run()
    finally:
        db.close()
