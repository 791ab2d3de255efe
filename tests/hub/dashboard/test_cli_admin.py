"""`appliance-hub admin add|remove|list`: the password is asked for, twice, and kept hashed."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from click.testing import CliRunner

from hub.cli import cli
from hub.dashboard.accounts import attempt_login
from hub.db import open_hub_database

NOW = datetime(2026, 3, 2, 12, 0)
PASSWORD = "a long enough passphrase"


def test_an_admin_added_on_the_command_line_can_log_in_and_removing_them_ends_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"  # no database yet: `admin add` makes it
    runner = CliRunner()
    added = runner.invoke(cli, ["admin", "add", "ada", "--db", url], input=f"{PASSWORD}\n" * 2)
    assert added.exit_code == 0, added.output
    assert "admin ada may log in" in added.output and PASSWORD not in added.output
    again = runner.invoke(cli, ["admin", "add", "ada", "--db", url], input=f"{PASSWORD}\n" * 2)
    assert again.exit_code == 1 and "exists; add --replace" in again.output
    short = runner.invoke(cli, ["admin", "add", "bob", "--db", url], input="short\nshort\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output

    db = open_hub_database(url)
    try:
        assert attempt_login(db, "ada", PASSWORD, address="t", now=NOW).outcome == "ok"
        listed = runner.invoke(cli, ["admin", "list", "--db", url])
        assert listed.exit_code == 0 and "ada" in listed.output and "1 admin(s)" in listed.output
        removed = runner.invoke(cli, ["admin", "remove", "ada", "--db", url])
        assert removed.exit_code == 0, removed.output
        assert attempt_login(db, "ada", PASSWORD, address="t", now=NOW).outcome == "wrong"
        gone = runner.invoke(cli, ["admin", "remove", "ada", "--db", url])
        assert gone.exit_code == 1 and "no admin 'ada'" in gone.output
    finally:
        db.close()
