"""`appliance-hub token create|list|revoke`: the integration API's access tokens."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from hub.api.access import SCOPES, issue_token, list_tokens, revoke_token
from hub.cli_options import db_option, open_db


@click.group("token")
def token_group() -> None:
    """API tokens: a scope (read, write, admin) and optionally one store."""


@token_group.command("create")
@db_option
@click.argument("name")
@click.option("--scope", type=click.Choice(SCOPES), default="read", show_default=True)
@click.option("--store", help="Limit the token to this store (default: every store).")
def create(db_url: str, name: str, scope: str, store: str | None) -> None:
    """Create a token and print it once; only its hash is kept."""
    db = open_db(db_url)
    try:
        issued = issue_token(db, name, scope, store)  # type: ignore[arg-type]
    finally:
        db.close()
    click.echo(issued.value)
    where = f"store {issued.store}" if issued.store else "every store"
    click.echo(
        f"token {issued.id}: scope {issued.scope}, {where}; keep it now, it is not shown again",
        err=True,
    )


@token_group.command("list")
@db_option
def list_command(db_url: str) -> None:
    """Every token (never the secret)."""
    db = open_db(db_url)
    try:
        rows = list_tokens(db)
    finally:
        db.close()
    table = Table("id", "name", "scope", "store", "created (UTC)", "revoked (UTC)")
    for row in rows:
        table.add_row(
            row.id, row.name, row.scope, row.store or "every store",
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "",
        )  # fmt: skip
    Console().print(table)


@token_group.command("revoke")
@db_option
@click.argument("token_id")
def revoke(db_url: str, token_id: str) -> None:
    """Revoke a token at once."""
    db = open_db(db_url)
    try:
        found = revoke_token(db, token_id)
    finally:
        db.close()
    if not found:
        raise click.ClickException(f"no active token {token_id}")
    click.echo(f"token {token_id} revoked")
