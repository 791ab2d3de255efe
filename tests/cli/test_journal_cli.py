"""`appliance journal verify` and `export`: the chain proven from the shell, and for an auditor."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from appliance.core.tender import Tender
from appliance.settings import Settings
from tests.cli.conftest import Cli, FixedClock, opened


def _sell_two(settings: Settings) -> None:
    with opened(settings, FixedClock(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))) as app:
        for _ in range(2):
            app.checkout.scan("COFFEE-250")
            app.checkout.pay([Tender("cash", 499, tendered=500)], staff="ben")


def test_verify_proves_an_intact_chain(appliance: Cli, settings: Settings) -> None:
    _sell_two(settings)
    result = appliance("journal", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("journal verified: 2 entries, head 2 ")


def test_verify_names_the_first_bad_entry_after_an_edit_with_sqlite3(
    appliance: Cli, settings: Settings, db_path: Path
) -> None:
    _sell_two(settings)
    subprocess.run(
        [
            "sqlite3",
            str(db_path),
            "UPDATE journal SET at = '2020-01-01T00:00:00+00:00' WHERE number = 1",
        ],
        check=True,
        timeout=30,
    )
    result = appliance("journal", "verify")
    assert result.exit_code == 1
    assert "journal BROKEN at entry 1: its content does not match its hash" in result.stderr
    assert "Traceback" not in result.output


def test_export_writes_json_lines_ending_with_the_head_hash(
    appliance: Cli, settings: Settings, tmp_path: Path
) -> None:
    _sell_two(settings)
    target = tmp_path / "journal.jsonl"
    result = appliance("journal", "export", "-o", str(target))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [line["kind"] for line in lines[:-1]] == ["sale", "sale"]
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    assert lines[-1]["head"] == {
        "entries": 2,
        "head_hash": lines[1]["hash"],
        "head_number": 2,
        "problem": None,
        "verified": True,
    }
    assert lines[1]["hash"] in result.stdout


def test_no_database_is_an_error_and_creates_none(appliance: Cli, db_path: Path) -> None:
    result = appliance("journal", "verify")
    assert result.exit_code == 1
    assert "no database" in result.stderr
    assert not db_path.exists()
