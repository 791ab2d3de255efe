"""`appliance-hub serve`: one hub worker; start several to split the device traffic."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from pathlib import Path

import click
from peewee import Database

from appliance.mqtt import topics
from appliance.service.logs import LEVELS, configure_logging
from hub.cli_options import broker_options, db_option, tls_files
from hub.db import HubDatabaseError, open_hub_database, redacted
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
    log_level: str,
) -> None:
    """Store device sales, status and health from the broker; SIGTERM stops cleanly."""
    tls = tls_files(tls_ca, tls_cert, tls_key)
    configure_logging(log_level)
    try:
        db = open_hub_database(db_url)
        migrate(db)
    except HubDatabaseError as err:
        raise click.ClickException(str(err)) from err
    endpoint = BrokerEndpoint(host=host, port=port, tls=tls)
    # Block the stop signals before any thread starts (threads inherit the mask), then
    # wait for one synchronously: no handler runs inside a lock another thread holds.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    server = catalog_serving_hub(db, endpoint, worker_id)
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


def catalog_serving_hub(db: Database, endpoint: BrokerEndpoint, worker_id: str | None) -> HubServer:
    """A hub worker that also serves the catalog: answers requests, pushes versions and levels.

    It also sends the commands held for a device again when the device is born, records
    the webhook events of new sales (in their transaction) and of device status, and the
    devices' update reports (pausing a rollout when too many roll back) and calls for help.
    """
    from hub.catalog_publisher import CatalogPublisher
    from hub.catalog_push import PERIOD as PUSH_PERIOD
    from hub.catalog_push import CatalogPush
    from hub.command_hold import RESEND_EVERY, SWEEP_EVERY, HeldCommands
    from hub.help_calls import HelpCallLog
    from hub.ingest import SalesIngest, utc_naive
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

    def catalog_request(inbound: Inbound) -> None:
        publisher.on_request(inbound.device, inbound.payload)

    def update_report(inbound: Inbound) -> None:
        updates.on_report(inbound.device, inbound.payload)

    def help_call(inbound: Inbound) -> None:
        help_calls.on_call(inbound.device, inbound.payload)

    server = HubServer(
        db,
        endpoint,
        worker_id=worker_id,
        ingest=SalesIngest(db, on_stored=SaleEvents(db)),
        handlers={
            topics.catalog_request: catalog_request,
            topics.update_up: update_report,
            topics.help_up: help_call,
        },
        after_sales=corrections.sales_committed,
        after_status=[held.on_status, DeviceEvents(db)],
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
