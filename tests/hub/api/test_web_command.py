"""`appliance-hub web` as an operator runs it: a real process on loopback, called over HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hub.db import open_hub_database
from tests.broker import free_port
from tests.hub.api.sale_documents import store_sales

TIMEOUT = 30.0  # a generous bound for start and stop; neither is timed
CONSOLE_SCRIPT = Path(sys.executable).with_name("appliance-hub")


def hub_command(*args: str) -> list[str]:
    """The installed `appliance-hub` console script with these arguments."""
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} is missing: pip install -e ."
    return [str(CONSOLE_SCRIPT), *args]


def wait_until_serving(base: str, process: subprocess.Popen[bytes]) -> None:
    """Return once the process answers HTTP; fail if it exits or the bound passes first."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, stderr = process.communicate()
            raise AssertionError(f"appliance-hub web exited {process.returncode}: {stderr!r}")
        try:
            httpx.get(f"{base}/api/v1/schema/openapi.json", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"appliance-hub web did not answer within {TIMEOUT} s")


def test_the_web_command_serves_the_api_with_tokens_and_stops_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        hub_command("web", "--db", url, "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_serving(base, process)  # it migrated the new database before serving
        created = subprocess.run(
            hub_command("token", "create", "shop", "--scope", "read", "--db", url),
            capture_output=True,
            check=True,
            timeout=TIMEOUT,
        )
        token = created.stdout.decode().strip()
        db = open_hub_database(url)
        try:
            store_sales(db, "kiosk-1", [1, 2], store="berlin")
        finally:
            db.close()

        with httpx.Client(base_url=base, timeout=TIMEOUT) as client:
            listed = client.get(
                "/api/v1/sales",
                params={"store": "berlin"},
                headers={"Authorization": f"Bearer {token}"},
            )
            refused = client.get("/api/v1/sales")

        assert listed.status_code == 200, listed.text
        assert [item["seq"] for item in listed.json()["items"]] == [1, 2]
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"] == "Bearer"

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)
