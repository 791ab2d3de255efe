"""`appliance-hub serve`: one hub worker; start several to split the device traffic."""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.errors import FleetKeyError
from appliance.mqtt import topics
from appliance.service.logs import LEVELS, configure_logging
from hub.cli_options import broker_options, db_option, tls_files
from hub.db import HubDatabaseError, open_hub_database, redacted
from hub.fleet_keys import load_fleet_key
from hub.migrations import migrate
from hub.releases.rollout import expire_silent_targets
from hub.server import BrokerEndpoint, HubServer, Inbound

log = logging.getLogger(__name__)

_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@click.command("serve")
@db_option
@broker_options
@click.option("--worker-id", help="Unique per worker process (default: host-pid-random).")
@click.option(
    "--fleet-key",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="APPLIANCE_HUB_FLEET_KEY",
    help="The fleet Ed25519 private key: signs the kiosk commands of remote approvals"
    " (without it staff tablets are told to walk over).",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
)
def serve(
    *,
    db_url: str,
    host: str,
    port: int,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    worker_id: str | None,
    fleet_key: Path | None,
    log_level: str,
) -> None:
    """Store device sales, status and health from the broker; SIGTERM stops cleanly."""
    tls = tls_files(tls_ca, tls_cert, tls_key)
    configure_logging(log_level)
    try:
        key = load_fleet_key(fleet_key) if fleet_key is not None else None
        db = open_hub_database(db_url)
        migrate(db)
    except (HubDatabaseError, FleetKeyError) as err:
        raise click.ClickException(str(err)) from err
    endpoint = BrokerEndpoint(host=host, port=port, tls=tls)
    # Block the stop signals before any thread starts (threads inherit the mask), then
    # wait for one synchronously: no handler runs inside a lock another thread holds.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    server = catalog_serving_hub(db, endpoint, worker_id, fleet_key=key)
    try:
        server.start(timeout=None)  # connects and reconnects in the background
        click.echo(
            f"hub worker {server.worker_id}: broker {host}:{port}, database {redacted(db_url)}",
            err=True,
        )
        received = signal.sigwait(_STOP_SIGNALS)
        log.info("hub worker %s stopping on %s", server.worker_id, signal.Signals(received).name)
    finally:
        server.stop()
        db.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def catalog_serving_hub(
    db: Database,
    endpoint: BrokerEndpoint,
    worker_id: str | None,
    *,
    fleet_key: Ed25519PrivateKey | None = None,
) -> HubServer:
    """A hub worker that also serves the catalog: answers requests, pushes versions and levels.

    It also sends the commands held for a device again when the device is born, records
    the webhook events of new sales (in their transaction) and of device status, and the
    devices' update reports (pausing a rollout when too many roll back) and calls for help,
    which it shows the store's staff devices; with `fleet_key` it turns their approvals
    into signed kiosk commands (hub/help_approvals.py). It judges stored-value card debits
    and awards loyalty points to the card that paid a sale (hub/card_ledger.py).
    """
    from hub.card_debits import CardDebits
    from hub.catalog_publisher import CatalogPublisher
    from hub.catalog_push import PERIOD as PUSH_PERIOD
    from hub.catalog_push import CatalogPush
    from hub.command_hold import RESEND_EVERY, SWEEP_EVERY, HeldCommands
    from hub.help_approvals import HelpApprovals
    from hub.help_board import HelpBoards
    from hub.help_calls import HelpCallLog
    from hub.ingest import SalesIngest, utc_naive
    from hub.loyalty import LoyaltyOnSales
    from hub.releases.reports import UpdateReports
    from hub.stock_corrections import PERIOD, StockCorrections
    from hub.stock_levels import store_sales
    from hub.telemetry_history import SWEEP_EVERY as HISTORY_SWEEP_EVERY
    from hub.telemetry_history import sweep as sweep_history
    from hub.webhooks.sources import DeviceEvents, SaleEvents

    server: HubServer | None = None

    def publish(topic: str, payload: bytes) -> None:
        assert server is not None
        server.publish(topic, payload)

    publisher = CatalogPublisher(db, publish, sales=lambda store: store_sales(db, store))
    corrections = StockCorrections(db, publisher)
    # Versions made elsewhere (the API, the import CLI, another worker) reach the devices.
    push = CatalogPush(db, publisher, ready=lambda: server is not None and server.wait_ready(0))
    held = HeldCommands(db, publish)

    updates = UpdateReports(db)
    help_calls = HelpCallLog(db)
    boards = HelpBoards(db, publish)
    approvals = HelpApprovals(db, publish, fleet_key)
    card_debits = CardDebits(db, publish)
    sale_events, loyalty = SaleEvents(db), LoyaltyOnSales(db)

    def sales_stored(device: str, rows: Sequence[Mapping[str, Any]]) -> None:
        sale_events(device, rows)
        loyalty(device, rows)  # the stored-value card that paid earns its store's points

    def catalog_request(inbound: Inbound) -> None:
        publisher.on_request(inbound.device, inbound.payload)

    def update_report(inbound: Inbound) -> None:
        updates.on_report(inbound.device, inbound.payload)

    def help_call(inbound: Inbound) -> None:
        help_calls.on_call(inbound.device, inbound.payload)
        boards.call_changed(inbound.device)

    def help_approval(inbound: Inbound) -> None:
        approvals.on_request(inbound.device, inbound.payload)

    def card_debit(inbound: Inbound) -> None:
        card_debits.on_request(inbound.device, inbound.payload)

    server = HubServer(
        db,
        endpoint,
        worker_id=worker_id,
        ingest=SalesIngest(db, on_stored=sales_stored),
        handlers={
            topics.catalog_request: catalog_request,
            topics.update_up: update_report,
            topics.help_up: help_call,
            topics.help_approval_up: help_approval,
            topics.card_debit_up: card_debit,
        },
        after_sales=corrections.sales_committed,
        after_status=[held.on_status, DeviceEvents(db), boards.on_status],
        after_command_update=[approvals.on_update],
        periodic=[
            (PERIOD, corrections.run),
            (PUSH_PERIOD, push.run),
            (SWEEP_EVERY, held.sweep),
            (RESEND_EVERY, held.resend_unsent),
            (HISTORY_SWEEP_EVERY, lambda: sweep_history(db, utc_naive(datetime.now(UTC)))),
            (SWEEP_EVERY, lambda: expire_silent_targets(db, datetime.now(UTC))),
        ],
    )
    return server


if __name__ == "__main__":  # `python -m hub.cli_serve` runs a worker too
    serve()
