"""`appliance-hub web`: the integration API, the fleet dashboard and the webhook delivery."""

from __future__ import annotations

import logging
import signal
from datetime import timedelta
from pathlib import Path
from types import FrameType

import click
from peewee import Database

from appliance.errors import ConfigError
from appliance.service.logs import LEVELS, configure_logging
from hub.api.app import Service, WebOptions, create_app
from hub.cli_options import broker_options, db_option, existing_file, tls_files
from hub.db import HubDatabaseError, open_hub_database, redacted
from hub.migrations import migrate
from hub.receipts.lookup import DEFAULT_KEEP_DAYS, ReceiptRules
from hub.receipts.stores import load_store_details
from hub.server import BrokerEndpoint

log = logging.getLogger(__name__)


def background_services(db: Database) -> list[Service]:
    """What runs beside the HTTP server: the webhook delivery."""
    from hub.webhooks.delivery import DeliveryService

    return [DeliveryService(db)]


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # uvicorn stops gracefully on SIGTERM, then raises it again for the handler it found
    # at start: this one, so a requested stop ends with status 0, as `serve` does.
    raise SystemExit(0)


@click.command("web")
@db_option
@broker_options
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to serve.")
@click.option(
    "--fleet-key",
    type=existing_file,
    help="The fleet command signing key (`fleet keygen`): lets the dashboard send commands.",
)
@click.option(
    "--secure-cookies", is_flag=True, help="Behind HTTPS: mark the session cookie Secure."
)
@click.option(
    "--receipt-days",
    type=click.IntRange(min=1, max=3650),
    default=DEFAULT_KEEP_DAYS,
    show_default=True,
    help="How many days a sale's e-receipt link (/r/<token>) keeps working.",
)
@click.option(
    "--receipt-stores",
    type=existing_file,
    help="A TOML file of each store's name, address and tax id for e-receipts.",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
)
def web(
    *,
    db_url: str,
    host: str,
    port: int,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    listen: str,
    fleet_key: Path | None,
    secure_cookies: bool,
    receipt_days: int,
    receipt_stores: Path | None,
    log_level: str,
) -> None:
    """Serve /api/v1 and the dashboard over HTTP until SIGTERM; deliver webhooks meanwhile."""
    import uvicorn

    configure_logging(log_level)
    address, _, port_text = listen.rpartition(":")
    if not address or not port_text.isdigit():
        raise click.BadParameter(f"{listen!r} is not HOST:PORT", param_hint="--listen")
    try:
        stores = load_store_details(receipt_stores) if receipt_stores else {}
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--receipt-stores") from err
    try:
        db = open_hub_database(db_url)
        migrate(db)
    except HubDatabaseError as err:
        raise click.ClickException(str(err)) from err
    options = WebOptions(
        broker=BrokerEndpoint(host=host, port=port, tls=tls_files(tls_ca, tls_cert, tls_key)),
        fleet_key=fleet_key,
        secure_cookies=secure_cookies,
        receipts=ReceiptRules(keep=timedelta(days=receipt_days), stores=stores),
    )
    app = create_app(db, options=options, services=background_services(db))
    click.echo(f"hub web on http://{listen}, database {redacted(db_url)}", err=True)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            app,
            host=address.strip("[]"),
            port=int(port_text),
            log_level=log_level.lower(),
            access_log=False,
        )
    finally:
        db.close()
