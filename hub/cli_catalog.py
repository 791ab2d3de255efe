"""`appliance-hub catalog import` and `appliance-hub stock`: a store's catalog and its stock."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from appliance.errors import CatalogImportError, ConfigError, StoreError
from hub.cli_options import broker_options, db_option, existing_file, tls_files
from hub.db import HubDatabaseError, open_hub_database
from hub.server import BrokerEndpoint

if TYPE_CHECKING:
    from appliance.settings import StoreSettings

MAX_ERRORS_SHOWN = 50
PUBLISH_TIMEOUT_S = 30.0


@click.group()
def catalog() -> None:
    """Manage the stores' catalogs."""


@catalog.command("import")
@click.argument("csv_file", type=existing_file)
@click.option("--store", required=True, help="The store whose catalog this file is.")
@db_option
@click.option("--currency", default="EUR", show_default=True, help="The store's currency.")
@click.option(
    "--tax-class",
    "tax_classes",
    multiple=True,
    metavar="NAME=BASIS_POINTS",
    help="A tax class the file may use (repeat); default standard, reduced, zero.",
)
@click.option("--skip-bad-rows", is_flag=True, help="Import the good rows even if some are bad.")
@click.option(
    "--publish/--no-publish",
    default=True,
    show_default=True,
    help="Send the change to the store's appliances now (else the serve workers send it).",
)
@broker_options
def import_command(
    *,
    csv_file: Path,
    store: str,
    db_url: str,
    currency: str,
    tax_classes: tuple[str, ...],
    skip_bad_rows: bool,
    publish: bool,
    host: str,
    port: int,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> None:
    """Import a store's CSV: a new catalog version, sent to the store's appliances as a delta.

    Every row is validated first; a bad row (listed by line) stops the import unless
    --skip-bad-rows. Products missing from the file are deleted from the store.
    """
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from hub.catalog import HubCatalog

    settings = _store_settings(currency, tax_classes)
    db = _open(db_url)
    try:
        _migrate(db)
        hub_catalog = HubCatalog(db, store)
        # The bar goes to stderr and only to a terminal: stdout carries the summary for scripts.
        console = Console(stderr=True)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as bar:
            bar.add_task(f"importing {csv_file.name} into {store}", total=None)
            try:
                with csv_file.open(encoding="utf-8-sig", newline="") as handle:
                    result = hub_catalog.import_csv(handle, settings, skip_bad_rows=skip_bad_rows)
            except (OSError, UnicodeDecodeError) as err:
                raise click.ClickException(f"{csv_file}: cannot read: {err}") from err
            except CatalogImportError as err:  # a bad header: nothing could be read
                raise click.ClickException(f"{csv_file}: {err}") from err
        report = result.report
        assert report is not None  # import_csv always reports
        _show_errors(report.errors)
        if report.errors and not skip_bad_rows:
            raise click.ClickException(
                f"{len(report.errors)} bad row(s); nothing was imported (--skip-bad-rows "
                "imports the rest)"
            )
        if not result.changed_anything:
            click.echo(f"{store}: nothing changed; still at catalog v{result.version}")
            return
        click.echo(
            f"{store}: catalog v{result.from_version} -> v{result.version}: "
            f"{result.added} added, {result.changed} changed, {result.deleted} deleted, "
            f"{result.unchanged} unchanged"
        )
        if publish:
            endpoint = BrokerEndpoint(
                host=host, port=port, tls=tls_files(tls_ca, tls_cert, tls_key)
            )
            _publish_update(db, endpoint, store, result.version)
    finally:
        db.close()


@click.command("stock")
@click.option("--store", "stores", multiple=True, help="Only this store (repeat); default all.")
@db_option
@click.option("--oversold", "only_oversold", is_flag=True, help="Only products sold below zero.")
def stock_command(stores: tuple[str, ...], db_url: str, only_oversold: bool) -> None:
    """Stock per store: the last count minus what its appliances sold since, and oversells."""
    from rich.console import Console
    from rich.table import Table

    from hub.catalog import HubCatalog, HubCatalogVersion
    from hub.stock_levels import oversells, stock_levels, store_sales

    db = _open(db_url, create=False)
    try:
        _migrate(db)
        if not stores:
            query = HubCatalogVersion.select(HubCatalogVersion.store).distinct()
            stores = tuple(sorted(s for (s,) in query.tuples().execute(db)))
        console = Console()
        for store in stores:
            hub_catalog = HubCatalog(db, store)
            # Every sale of the store: each count subtracts only the sales made after it.
            levels = stock_levels(hub_catalog, store_sales(db, store))
            oversold = oversells(levels)
            table = Table(title=f"{store}: catalog v{hub_catalog.version()}")
            for column in ("sku", "name", "counted", "sold since", "moved since", "level"):
                table.add_column(column, justify="right" if column != "name" else "left")
            for level in oversold if only_oversold else levels:
                style = "bold red" if level.oversold else None
                table.add_row(
                    level.sku, level.name, str(level.counted), str(level.sold), f"{level.moved:+d}",
                    str(level.level), style=style,
                )  # fmt: skip
            console.print(table)
            click.echo(f"{store}: {len(levels)} counted product(s), {len(oversold)} oversold")
            for level in oversold:
                click.echo(f"OVERSOLD {store} {level.sku}: {level.level} ({level.name})")
    finally:
        db.close()


def _store_settings(currency: str, tax_classes: tuple[str, ...]) -> StoreSettings:
    from appliance.settings import StoreSettings

    options: dict[str, Any] = {"currency": currency}
    if tax_classes:
        rates: dict[str, int] = {}
        for text in tax_classes:
            name, sep, value = text.partition("=")
            if not sep or not name.strip() or not value.strip().isdigit():
                raise click.BadParameter(f"{text!r}: expected NAME=BASIS_POINTS like standard=2000")
            rates[name.strip()] = int(value)
        options["tax_classes"] = rates
    try:
        return StoreSettings(**options)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err


def _open(url: str, *, create: bool = True) -> Any:
    try:
        return open_hub_database(url, create=create)
    except HubDatabaseError as err:
        raise click.ClickException(str(err)) from err


def _migrate(db: Any) -> None:
    from hub.migrations import migrate

    try:
        migrate(db)
    except StoreError as err:  # a newer hub wrote it
        raise click.ClickException(str(err)) from err


def _publish_update(db: Any, endpoint: BrokerEndpoint, store: str, to_version: int) -> None:
    """Send what the store's devices were not sent yet over one short MQTT v5 session, QoS 1.

    The same push the serve workers run (hub/catalog_push.py): whichever comes first sends
    the change, and the other finds nothing left to send.
    """
    from appliance.mqtt.client import paho_client
    from hub.catalog_publisher import CatalogPublisher
    from hub.catalog_push import CatalogPush
    from hub.stores import devices_of

    if not devices_of(db, store):
        # Nobody to tell: the version counts as sent, and a device assigned later asks.
        CatalogPush(db, CatalogPublisher(db, lambda _topic, _data: None)).push(store)
        click.echo(f"no appliance is assigned to {store} yet: nothing to publish", err=True)
        return
    try:
        client = paho_client(tls=endpoint.tls)
    except ConfigError as err:  # the import stands; only sending it now failed
        raise click.ClickException(f"not published: {err}") from err
    connected = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            connected.set()

    client.on_connect = on_connect
    pending: list[Any] = []
    try:
        client.connect(endpoint.host, endpoint.port, endpoint.keepalive)
        client.loop_start()
        if not connected.wait(PUBLISH_TIMEOUT_S):
            raise OSError(f"the broker at {endpoint.host}:{endpoint.port} did not accept us")
        publisher = CatalogPublisher(
            db, lambda topic, data: pending.append(client.publish(topic, data, qos=1))
        )
        sent = CatalogPush(db, publisher).push(store)
        for info in pending:
            info.wait_for_publish(PUBLISH_TIMEOUT_S)
    except (OSError, RuntimeError, ValueError) as err:
        click.echo(
            f"not published ({err}): the store's appliances fetch v{to_version} when they "
            "next connect",
            err=True,
        )
        return
    finally:
        client.disconnect()
        client.loop_stop()
    if sent:
        click.echo(f"published {sent} message(s) to the store's appliances")
    else:
        click.echo(f"a serve worker already sent v{to_version} to the store's appliances")


def _show_errors(errors: Sequence[object]) -> None:
    for error in errors[:MAX_ERRORS_SHOWN]:
        click.echo(str(error), err=True)
    if len(errors) > MAX_ERRORS_SHOWN:
        click.echo(f"... and {len(errors) - MAX_ERRORS_SHOWN} more", err=True)
