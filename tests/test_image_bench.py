"""`python -m bench.image`: the table and report from the build's and boot test's files."""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import pytest

from bench import image

BOOT_FIRST = "boot to READY=1 (qemu TCG), first boot"
BOOT_AGAIN = "boot to READY=1 (qemu TCG), after reboot"
KIOSK = "boot to first kiosk frame (qemu TCG)"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each run's start, in order: two runs in one second would write one report name."""
    moments: list[str] = []

    class Fixed(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Fixed:
            return cls.fromisoformat(moments.pop(0))

    monkeypatch.setattr(image, "datetime", Fixed)
    return moments


def write_stats(build: Path, *, cold: bool, xz_mb: float, seconds: float) -> None:
    """build-stats.json as image/build writes it."""
    path = build / "image" / "build-stats.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    stats = {
        "version": "1.4.0",
        "finished_at": "2025-03-01T10:00:00+00:00",
        "cold": cold,
        "seconds_to_raw": seconds - 100,
        "seconds_total": seconds,
        "xz_bytes": int(xz_mb * 1_000_000),
        "raw_bytes": 3_000_000_000,
    }
    path.write_text(json.dumps(stats), encoding="utf-8")


def write_timings(build: Path, **seconds: float) -> None:
    """timings.json as the boot test writes it."""
    path = build / "image-test" / "timings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seconds), encoding="utf-8")


def run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str, dict[str, dict[str, Any]]]:
    """main() on tmp_path's build and results; exit status, stdout, stderr, rows by metric."""
    results = tmp_path / "results"
    before = set(results.glob("*")) if results.exists() else set()
    status = image.main(["--build-dir", str(tmp_path / "build"), "--results-dir", str(results)])
    out, err = capsys.readouterr()
    written = set(results.glob("*")) - before if results.exists() else set()
    if not written:
        return status, out, err, {}
    (path,) = written
    assert path.name.startswith("image-"), path
    report = json.loads(path.read_text(encoding="utf-8"))
    return status, out, err, {entry["metric"]: entry for entry in report["results"]}


def table_line(out: str, metric: str) -> str:
    """The printed table's line for `metric`."""
    (line,) = [line for line in out.splitlines() if f"image {metric} " in line]
    return line


def test_each_row_beside_the_previous_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clock: list[str]
) -> None:
    """Values from both files; the previous run's beside them, cold and warm kept apart."""
    build = tmp_path / "build"
    clock += ["2025-03-01T12:00:00+00:00", "2025-03-02T12:00:00+00:00", "2025-03-03T12:00:00+00:00"]
    write_stats(build, cold=True, xz_mb=812, seconds=1500)
    write_timings(
        build, first_boot_to_kiosk_frame_s=95, first_boot_to_ready_s=71, reboot_to_ready_s=42
    )
    status, out, _, rows = run(tmp_path, capsys)
    assert status == 0
    assert {m: r["measured"] for m, r in rows.items()} == {
        "compressed size": 812.0,
        "build time, cold": 1500,
        BOOT_FIRST: 71.0,
        BOOT_AGAIN: 42.0,
        KIOSK: 95.0,
    }
    assert all(r["baseline"] is None and r["status"] == "info" for r in rows.values())
    assert "1,500 s" in table_line(out, "build time, cold")

    write_stats(build, cold=False, xz_mb=790, seconds=600)
    write_timings(
        build, first_boot_to_kiosk_frame_s=88, first_boot_to_ready_s=65, reboot_to_ready_s=40
    )
    status, out, _, rows = run(tmp_path, capsys)
    assert status == 0
    assert {m: (r["measured"], r["baseline"]) for m, r in rows.items()} == {
        "compressed size": (790.0, 812.0),
        "build time, warm": (600, None),  # the cold build before it is no warm one's previous
        BOOT_FIRST: (65.0, 71.0),
        BOOT_AGAIN: (40.0, 42.0),
        KIOSK: (88.0, 95.0),
    }
    assert rows[KIOSK]["ratio"] == pytest.approx(88 / 95)
    assert rows[KIOSK]["baseline_name"] == "previous run (image-20250301T120000Z.json)"
    line = table_line(out, "compressed size")
    assert 0 < line.index("790 MB") < line.index("812 MB")  # measured, then the previous
    assert "88.0 s" in table_line(out, KIOSK) and "95.0 s" in table_line(out, KIOSK)

    # A cold build again, the boot test not rerun: the cold time is beside the first run's,
    # and the boot rows, the same measurement read again, stay beside the first run's too.
    write_stats(build, cold=True, xz_mb=800, seconds=1400)
    _, out, _, rows = run(tmp_path, capsys)
    assert {m: (r["measured"], r["baseline"]) for m, r in rows.items()} == {
        "compressed size": (800.0, 790.0),
        "build time, cold": (1400, 1500),
        BOOT_FIRST: (65.0, 71.0),
        BOOT_AGAIN: (40.0, 42.0),
        KIOSK: (88.0, 95.0),
    }
    assert "1,500 s" in table_line(out, "build time, cold")
    names = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert names == [f"image-2025030{day}T120000Z.json" for day in (1, 2, 3)]  # no latest.json


def test_missing_inputs_are_named_with_the_command_that_makes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clock: list[str]
) -> None:
    """Both missing: exit 1, no report; one missing: the other's rows, exit 0."""
    clock += ["2025-03-01T12:00:00+00:00", "2025-03-01T12:00:01+00:00"]
    build = tmp_path / "build"
    status, out, err, rows = run(tmp_path, capsys)
    assert status == 1
    assert rows == {} and out == ""
    stats, timings = build / "image" / "build-stats.json", build / "image-test" / "timings.json"
    assert err.splitlines() == [
        f"bench.image: {stats} is missing; `make image` writes it",
        f"bench.image: {timings} is missing; `make image-test` writes it",
    ]

    write_timings(build, first_boot_to_ready_s=70, reboot_to_ready_s=41)  # no kiosk frame
    status, out, err, rows = run(tmp_path, capsys)
    assert status == 0
    assert f"bench.image: {stats} is missing; `make image` writes it" in err.splitlines()
    assert "make image-test" not in err
    assert {m: r["measured"] for m, r in rows.items()} == {BOOT_FIRST: 70.0, BOOT_AGAIN: 41.0}
    assert "41.0 s" in table_line(out, BOOT_AGAIN)
