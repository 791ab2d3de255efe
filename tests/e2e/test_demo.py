"""`make run`'s demo: appliance, local broker and hub together; a demo sale reaches the hub."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import real_parts

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_demo_sale_shows_up_in_the_hubs_sales_export(tmp_path: Path) -> None:
    env = {**os.environ, "APPLIANCE_STATE_DIR": str(tmp_path / "state")}
    env.pop("APPLIANCE_CONFIG", None)
    demo = subprocess.Popen(
        [str(ROOT / "scripts" / "run-demo")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "demo.log").open("wb"),
        start_new_session=True,  # its own group, so the test can stop all of it by PID
    )
    hub_db = f"sqlite:///{tmp_path / 'state' / 'hub.db'}"
    try:
        deadline = time.monotonic() + 30
        while _run(str(BIN / "appliance"), "sim", "scan", "4006381333931", env=env).returncode:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            assert time.monotonic() < deadline, "the demo appliance never answered"
            time.sleep(0.3)
        deadline = time.monotonic() + 30
        while (paid := _run(str(BIN / "appliance"), "sim", "pay", "cash", env=env)).returncode:
            assert time.monotonic() < deadline, paid.stderr
            time.sleep(0.3)
        assert '"receipt": "SIM-000001"' in paid.stdout
        # The next customers, as the image's power-cut test sells: scan and pay while the
        # last sale's receipt screen is still up (a scan there starts the next sale).
        for number in (2, 3):
            scanned = _run(str(BIN / "appliance"), "sim", "scan", "4006381333931", env=env)
            assert scanned.returncode == 0, scanned.stderr
            paid = _run(str(BIN / "appliance"), "sim", "pay", "cash", env=env)
            assert f'"receipt": "SIM-00000{number}"' in paid.stdout, paid.stdout + paid.stderr
        deadline = time.monotonic() + 30
        while True:
            export = _run(str(BIN / "appliance-hub"), "sales", "export", "--db", hub_db, env=env)
            if "sim-0001,3," in export.stdout:
                break
            assert time.monotonic() < deadline, export.stdout + export.stderr
            time.sleep(0.3)
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(timeout=5)
    leftovers = subprocess.run(
        [real_parts.binary("pgrep", "procps"), "-g", str(demo.pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert leftovers.stdout.strip() == "", "the demo left processes behind"
