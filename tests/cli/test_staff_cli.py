"""`appliance staff add|list|remove` and `appliance stored-value balance|top-up`."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import Result

from appliance.cli.main import cli
from appliance.store.database import open_database
from tests.cli.conftest import Cli

CARD = "04CAFE00000001"


def _staff_id(result: Result) -> str:
    found = re.search(r"\bas (S[A-Z0-9]{6})\b", result.stdout)
    assert found, result.output
    return found.group(1)


def _typed(appliance: Cli, argv: list[str], typed: str) -> Result:
    """Run a command with `typed` as what is typed at its prompts (or piped to stdin)."""
    return appliance.runner.invoke(
        cli, [*argv, "--config", str(appliance.config)], input=typed, catch_exceptions=False
    )


def _add(appliance: Cli, name: str, role: str, pin: str, *extra: str) -> Result:
    """Add someone, the PIN given on stdin as a provisioning script would."""
    argv = ["staff", "add", name, "--role", role, "--pin-stdin", *extra]
    return _typed(appliance, argv, f"{pin}\n")


def test_add_asks_for_the_pin_twice_without_showing_it(appliance: Cli, db_path: Path) -> None:
    result = _typed(appliance, ["staff", "add", "Kim Lee", "--role", "cashier"], "2468\n2468\n")

    assert result.exit_code == 0, result.output
    assert "2468" not in result.output
    assert "PIN (4 to 12 digits):" in result.output
    assert "The same PIN again:" in result.output
    staff_id = _staff_id(result)
    assert "added Kim Lee (cashier) as" in result.stdout
    db = open_database(db_path)
    try:
        row = db.execute_sql(
            "SELECT name, role, pin_hash FROM staff WHERE staff_id = ?", (staff_id,)
        ).fetchone()
    finally:
        db.close()
    assert row[:2] == ("Kim Lee", "cashier")
    assert row[2].startswith("scrypt$") and "2468" not in row[2]


def test_a_pin_typed_differently_twice_adds_no_one(appliance: Cli) -> None:
    result = _typed(appliance, ["staff", "add", "Kim", "--role", "cashier"], "2468\n8642\n")
    assert result.exit_code != 0
    assert "do not match" in result.output
    listing = appliance("staff", "list")
    assert "0 staff member(s)" in listing.stdout


def test_list_shows_id_name_role_and_badge_but_never_a_hash(appliance: Cli) -> None:
    sam = _add(appliance, "Sam", "supervisor", "8642", "--badge", "04c0ffee000002")
    alex = _add(appliance, "Alex", "cashier", "1357")
    assert sam.exit_code == 0 and alex.exit_code == 0, sam.output + alex.output
    assert "with a badge" in sam.stdout

    listing = appliance("staff", "list")

    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.splitlines()
    assert "2 staff member(s)" in lines[0]
    alex_line = next(line for line in lines if "Alex" in line)
    sam_line = next(line for line in lines if "Sam" in line)
    assert lines.index(alex_line) < lines.index(sam_line)  # by name
    assert _staff_id(alex) in alex_line and "cashier" in alex_line and "no" in alex_line
    assert _staff_id(sam) in sam_line and "supervisor" in sam_line and "yes" in sam_line
    assert "scrypt" not in listing.stdout
    assert "04C0FFEE000002" not in listing.stdout.upper()


def test_refusals_are_one_clear_line_and_exit_1(appliance: Cli) -> None:
    assert _add(appliance, "Sam", "supervisor", "8642", "--badge", "04C0FFEE02").exit_code == 0

    same_pin = _add(appliance, "Kim", "cashier", "8642")
    same_badge = _add(appliance, "Kim", "cashier", "2468", "--badge", "04c0ffee02")
    short_pin = _add(appliance, "Kim", "cashier", "12")
    bad_role = _add(appliance, "Kim", "manager", "2468")

    assert (same_pin.exit_code, same_badge.exit_code, short_pin.exit_code) == (1, 1, 1)
    assert "Error: this PIN is already used" in same_pin.stderr
    assert "badge already belongs" in same_badge.stderr
    assert "4 to 12 digits" in short_pin.stderr
    assert bad_role.exit_code == 2 and "manager" in bad_role.stderr
    assert "1 staff member(s)" in appliance("staff", "list").stdout


def test_remove_deactivates_and_a_second_remove_says_so(appliance: Cli) -> None:
    staff_id = _staff_id(_add(appliance, "Lee", "cashier", "2468"))

    removed = appliance("staff", "remove", staff_id)
    again = appliance("staff", "remove", staff_id)

    assert removed.exit_code == 0 and f"removed {staff_id}" in removed.stdout
    assert "Lee" not in appliance("staff", "list").stdout
    assert again.exit_code == 1
    assert f"no active staff member {staff_id}" in again.stderr


def test_top_up_and_balance_in_the_stores_currency(appliance: Cli) -> None:
    unknown = appliance("stored-value", "balance", CARD)
    first = appliance("stored-value", "top-up", CARD, "20.00")
    second = appliance("stored-value", "top-up", CARD.lower(), "5.5")
    balance = appliance("stored-value", "balance", CARD)

    assert unknown.exit_code == 1 and "unknown card" in unknown.stderr
    assert first.exit_code == 0, first.output
    assert "added 20,00" in first.stdout and "balance 20,00" in first.stdout  # de_DE, EUR
    assert "balance 25,50" in second.stdout
    assert balance.exit_code == 0 and "25,50" in balance.stdout


def test_top_up_refuses_an_amount_that_is_not_money(appliance: Cli) -> None:
    too_precise = appliance("stored-value", "top-up", CARD, "20.001")
    nothing = appliance("stored-value", "top-up", CARD, "0.00")
    words = appliance("stored-value", "top-up", CARD, "twenty")
    not_a_card = appliance("stored-value", "top-up", "my card", "5")

    assert too_precise.exit_code == 2 and "decimal places" in too_precise.stderr
    assert nothing.exit_code == 1 and "positive" in nothing.stderr
    assert words.exit_code == 2
    assert not_a_card.exit_code == 1 and "not the UID of a card" in not_a_card.stderr
    assert appliance("stored-value", "balance", CARD).exit_code == 1  # still no such card


def test_with_a_hub_the_device_refuses_a_top_up_and_names_the_hubs_command(
    appliance: Cli,
) -> None:
    assert appliance("stored-value", "top-up", CARD, "20.00").exit_code == 0  # before the hub
    with appliance.config.open("a", encoding="utf-8") as config:
        config.write('\n[hub]\nhost = "127.0.0.1"\n')

    top_up = appliance("stored-value", "top-up", CARD, "5.00")
    balance = appliance("stored-value", "balance", CARD)

    assert top_up.exit_code == 1, top_up.output
    assert "kept at the hub" in top_up.stderr
    assert "appliance-hub cards top-up" in top_up.stderr and "2000 for 20.00" in top_up.stderr
    # What the device held is still shown (moving its cards to the hub starts there),
    # said to be its own; the refused top-up added nothing.
    assert balance.exit_code == 0, balance.output
    assert "20,00" in balance.stdout and "kept at the hub" in balance.stderr
