"""Resident memory of the running kiosk with its window and a large catalog, after scans."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.drivers.sim.control import control_socket_path, send
from bench import fixtures, screen_app
from bench.bare_window import bare_window_kib, python_kib
from bench.proc_memory import resident_kib
from bench.result import Row, Target
from bench.screen_app import short_state_dir
from bench.screen_process import (
    PI_SCREEN,
    appliance_command,
    child_environment,
    cpu_percent,
    largest_mappings,
    started,
    write_config,
)
from bench.startup import notify_socket

NAME = "screen_memory"
KIB_PER_MB = 1024
# Scans through `appliance sim scan`'s control socket, then time for the frames to draw them.
SCANS = 5
# The kiosk's VmRSS may be at most this times its floor: a bare Kivy window on the same GL
# plus the headless appliance, measured in the same run.
FLOOR_FACTOR = 1.10


@dataclass(frozen=True, slots=True)
class Sizes:
    """Products in the catalog; seconds of frames after the scans; seconds CPU is watched."""

    products: int
    settle_s: float
    idle_s: float


FULL = Sizes(products=100_000, settle_s=5.0, idle_s=3.0)
QUICK = Sizes(products=500, settle_s=0.3, idle_s=0.3)


def _measure(
    command: list[str], db: Path, env: dict[str, str], workdir: Path, sizes: Sizes
) -> dict[str, Any]:
    """Start the child, scan a few products into its cart, read its memory, stop it."""
    with notify_socket() as (sock, path), (workdir / "stderr.txt").open("ab") as stderr:
        env = {**env, "NOTIFY_SOCKET": path}
        with started(command, env, sock, stderr) as child:
            for number in range(1, SCANS + 1):
                answer = send(
                    control_socket_path(db), {"cmd": "scan", "code": fixtures.ean13(number)}
                )
                if not answer.get("ok"):
                    raise RuntimeError(f"scan refused: {answer}")
                time.sleep(0.1)
            time.sleep(sizes.settle_s)
            memory = resident_kib(child.process.pid)
            largest = largest_mappings(child.process.pid)
            idle_cpu = cpu_percent(child.process.pid, sizes.idle_s)
    return {
        "ready_s": child.ready_s,
        **memory,
        "idle_cpu_percent": round(idle_cpu, 1),
        "largest": largest,
    }


def run(workdir: Path, *, quick: bool) -> list[Row]:
    """VmRSS of the kiosk with its window, against its floor measured in the same run."""
    sizes = QUICK if quick else FULL
    workdir.mkdir(parents=True, exist_ok=True)
    with short_state_dir() as state:
        db = state / "appliance.db"
        fill_s = screen_app.fill_catalog(db, sizes.products)
        config = write_config(workdir, db)
        env = child_environment("", state)
        windowed = _measure(appliance_command(config), db, env, workdir, sizes)
        headless = _measure(appliance_command(config, headless=True), db, env, workdir, sizes)
    bare = bare_window_kib((PI_SCREEN.width, PI_SCREEN.height), sizes.settle_s)
    interpreter = python_kib()
    ours = windowed["VmRSS"] / KIB_PER_MB
    theirs = headless["VmRSS"] / KIB_PER_MB
    # Both processes hold one interpreter: count it once.
    floor = (bare["VmRSS"] + headless["VmRSS"] - interpreter["VmRSS"]) / KIB_PER_MB
    details = {
        "products": sizes.products,
        "catalog_fill_s": round(fill_s, 3),
        "scans": SCANS,
        "windowed_kib": windowed,
        "headless_kib": headless,
        "headless_mb": round(theirs, 1),
        "floor_mb": round(floor, 1),
        "floor_factor": FLOOR_FACTOR,
        "bare_window_kib": bare,
        "bare_python_kib": interpreter,
    }
    return [
        Row(
            NAME,
            "VmRSS",
            ours,
            "MB",
            target=Target(FLOOR_FACTOR, at_most=True, on_ratio=True),
            baseline=floor,
            baseline_name="the floor measured in the same run (next row)",
            ratio=ours / floor,
            note=(
                f"`appliance run --simulate --config FILE` with the window (APPLIANCE_OFFSCREEN=1, "
                f"800x480, Mesa llvmpipe), {sizes.products} products; after READY=1, {SCANS} "
                f"scans through the simulator control socket (`appliance sim scan`) and "
                f"{sizes.settle_s} s of frames: VmRSS from /proc/<pid>/status (MB = 1024 KiB). "
                f"Target: at most {FLOOR_FACTOR:g} x the floor below, measured in the same run "
                "on the same machine and GL (a fixed number of MB would mostly measure the "
                f"machine's GL driver). Same appliance --headless: {theirs:.1f} MB "
                f"(kiosk / headless = {ours / theirs:.2f}). Details: RssAnon/RssFile, the "
                f"largest mappings (smaps) and the CPU share over the next {sizes.idle_s} s "
                "with nobody touching it"
            ),
            details=details,
        ),
        Row(
            NAME,
            "floor: bare Kivy window + headless",
            floor,
            "MB",
            baseline=bare["VmRSS"] / KIB_PER_MB,
            baseline_name="a bare Kivy window with one label, VmRSS",
            note=(
                "what the kiosk cannot go below on this machine (info): a bare Kivy window "
                "(one label, the kiosk's Kivy setup, same surface and GL, the same seconds "
                "of frames) plus the headless appliance above, less the one Python "
                "interpreter both hold"
            ),
            details=details,
        ),
        Row(
            NAME,
            "VmHWM (peak)",
            windowed["VmHWM"] / KIB_PER_MB,
            "MB",
            baseline=headless["VmHWM"] / KIB_PER_MB,
            baseline_name="same appliance --headless, VmHWM",
            ratio=windowed["VmHWM"] / headless["VmHWM"],
            note="peak resident memory of the same process (info)",
            details=details,
        ),
        Row(
            NAME,
            "to READY=1, large catalog",
            windowed["ready_s"],
            "s",
            baseline=headless["ready_s"],
            baseline_name="same appliance --headless",
            ratio=windowed["ready_s"] / headless["ready_s"],
            note=(
                f"one start with {sizes.products} products (the catalog is loaded into memory "
                "before READY=1); info"
            ),
            details=details,
        ),
    ]
