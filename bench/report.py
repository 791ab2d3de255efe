"""The JSON report: bench/results/<UTC timestamp>.json and latest.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.result import Row

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def build_report(
    rows: Sequence[Row], started: datetime, quick: bool, environment: dict[str, Any]
) -> dict[str, Any]:
    """The whole run as one JSON-ready mapping."""
    return {
        "timestamp": started.isoformat(),
        "quick": quick,
        "environment": environment,
        "summary": {
            status: sum(row.status == status for row in rows)
            for status in ("PASS", "FAIL", "ERROR", "info")
        },
        "results": [row.to_json() for row in rows],
    }


def write_report(report: dict[str, Any], folder: Path, started: datetime) -> Path:
    """Write the report under a UTC timestamp name and as latest.json; returns the first."""
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    stamped = folder / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    stamped.write_text(text, encoding="utf-8")
    (folder / "latest.json").write_text(text, encoding="utf-8")
    return stamped
