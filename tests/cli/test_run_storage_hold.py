"""`appliance run` on a data partition that takes no writes: up with the reason, never a loop.

systemd would restart an appliance that exits, and reboot after five failed starts; a full
or read-only card survives both. So the process stays up (READY=1 with the reason, the
watchdog fed, "out of order" on the screen) and exits with EX_TEMPFAIL once the partition
works again, for systemd to start it afresh.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from appliance.service.storage_hold import EX_TEMPFAIL
from tests.cli.conftest import (
    CONFIG_TEMPLATE,
    DEVICE_ID,
    RECEIPT_PREFIX,
    WAIT_SECONDS,
    NotifySocket,
    Spawner,
    appliance_script,
)
from tests.disks import loop_ext4, small_tmpfs

WATCHDOG_USEC = "200000"


def _config(tmp_path: Path, data: Path) -> Path:
    """A configuration whose database is on `data`, looked at every 0.2 s."""
    text = CONFIG_TEMPLATE.format(
        device_id=DEVICE_ID, prefix=RECEIPT_PREFIX, database=data / "appliance.db"
    ).replace("[database]\n", "[database]\nstorage_check_seconds = 0.2\n")
    path = tmp_path / "appliance.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _held(notify_socket: NotifySocket, process: subprocess.Popen[bytes], state: str) -> str:
    """Wait for READY=1 naming the storage fault, then for the watchdog to be fed after it."""

    def held(messages: list[str]) -> bool:
        ready = [i for i, m in enumerate(messages) if "READY=1" in m.splitlines()]
        return bool(ready) and any("WATCHDOG=1" in m for m in messages[ready[0] + 1 :])

    messages = notify_socket.wait_for(held, process)
    ready = next(m for m in messages if "READY=1" in m)
    assert f"STATUS=out of order: {state}" in ready, ready
    return ready


def _ready_in(messages: list[str]) -> bool:
    return any("READY=1" in m.splitlines() for m in messages)


def _run(
    spawn: Spawner, config: Path, notify_socket: NotifySocket, *extra: str, **env: str
) -> subprocess.Popen[bytes]:
    return spawn(
        [appliance_script(), "run", *extra, "--config", config],
        NOTIFY_SOCKET=str(notify_socket.path),
        WATCHDOG_USEC=WATCHDOG_USEC,
        **env,
    )


def test_a_read_only_partition_at_start_holds_until_repaired_then_starts_afresh(
    tmp_path: Path, notify_socket: NotifySocket, spawn: Spawner
) -> None:
    with loop_ext4(tmp_path) as disk:
        config = _config(tmp_path, disk.mount_point)
        disk.fail()  # the card failed before the appliance started: ext4 is read-only
        process = _run(spawn, config, notify_socket, "--headless")
        ready = _held(notify_socket, process, "storage read-only")
        assert "the store could not be opened" in ready
        assert process.poll() is None, "it stays up instead of exiting into a restart loop"

        disk.repair()  # what a technician's fsck (or the next boot) does
        assert process.wait(WAIT_SECONDS) == EX_TEMPFAIL, spawn.stderr(process)
        assert "storage works again: starting afresh" in spawn.stderr(process)

        seen = len(notify_socket.drain())  # the held run's datagrams
        again = _run(spawn, config, notify_socket, "--headless")
        messages = notify_socket.wait_for(
            lambda got: any("READY=1" in m for m in got[seen:]), again
        )
        assert "products" in next(m for m in messages[seen:] if "READY=1" in m)
        again.send_signal(signal.SIGTERM)
        assert again.wait(WAIT_SECONDS) == 0, spawn.stderr(again)


def test_a_full_partition_at_start_shows_out_of_order_on_the_screen_until_space_returns(
    tmp_path: Path, notify_socket: NotifySocket, spawn: Spawner
) -> None:
    with small_tmpfs(tmp_path / "data", 2 * 1024) as disk:
        config = _config(tmp_path, disk.path)
        filler = disk.fill(leave_bytes=0)
        process = _run(spawn, config, notify_socket, APPLIANCE_OFFSCREEN="1")
        _held(notify_socket, process, "storage full")
        assert "notice shown: This checkout is out of order" in spawn.stderr(process)
        assert process.poll() is None

        filler.unlink()
        disk.resize(64 * 1024)
        assert process.wait(WAIT_SECONDS) == EX_TEMPFAIL, spawn.stderr(process)


def test_a_stop_while_held_is_a_clean_stop(
    tmp_path: Path, notify_socket: NotifySocket, spawn: Spawner
) -> None:
    with small_tmpfs(tmp_path / "data", 2 * 1024) as disk:
        config = _config(tmp_path, disk.path)
        disk.fill(leave_bytes=0)
        process = _run(spawn, config, notify_socket, "--headless")
        _held(notify_socket, process, "storage full")
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT_SECONDS) == 0, spawn.stderr(process)
        assert any("STOPPING=1" in m for m in notify_socket.drain())
