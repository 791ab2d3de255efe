"""Start-up with the window: process start to READY=1 of `appliance run --simulate`."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bench.result import Row, Target
from bench.screen_app import short_state_dir
from bench.screen_process import (
    appliance_command,
    child_environment,
    started,
    write_config,
)
from bench.startup import notify_socket, time_to_exit
from bench.stats import median, summary_s

NAME = "screen_startup"


@dataclass(frozen=True, slots=True)
class Sizes:
    """Measured runs of each command, after one warm-up run each."""

    runs: int


FULL = Sizes(runs=7)
QUICK = Sizes(runs=1)


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """Time the appliance with its checkout window to READY=1, against bare interpreter starts."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    bare = [sys.executable, "-c", "pass"]
    ours_s: list[float] = []
    bare_s: list[float] = []
    with (
        short_state_dir() as state,
        notify_socket() as (sock, path),
        (workdir / "stderr.txt").open("wb") as stderr,
    ):
        command = appliance_command(write_config(workdir, state / "appliance.db"))
        env = child_environment(path, state)
        # Warm-up: creates and migrates the database, seeds the demo catalog, warms caches.
        with started(command, env, sock, stderr):
            pass
        time_to_exit(bare, env)
        for _ in range(sizes.runs):
            with started(command, env, sock, stderr) as child:
                ours_s.append(child.ready_s)
            bare_s.append(time_to_exit(bare, env))
    ours, bare_median = median(ours_s), median(bare_s)
    return [
        Row(
            NAME,
            "to READY=1 with the window",
            ours,
            "s",
            target=Target(1.5, at_most=True),
            baseline=bare_median,
            baseline_name="python -c pass, to exit",
            ratio=ours / bare_median,
            note=(
                "`appliance run --simulate --config FILE` (not --headless) with "
                "APPLIANCE_OFFSCREEN=1: Kivy window 800x480 on Mesa offscreen; READY=1 is sent "
                "once the window's first frame is up and the screens are built and drawn once, "
                "hidden (the first sale draws nothing for the first time). From just before "
                "Popen to the READY=1 datagram "
                f"on NOTIFY_SOCKET; demo catalog in an existing database; median of {sizes.runs} "
                "after one warm-up; exits 0 on SIGTERM"
            ),
            details={"ours": summary_s(ours_s), "python_c_pass": summary_s(bare_s)},
        )
    ]
