"""`appliance run` as a real process on a data partition that fails: full, I/O errors, read-only.

The data folder sits on a real file system: a tmpfs of a few MiB that fills up, an ext4 on a
loop device that the kernel remounts read-only, and writes the kernel fails with EIO (strace
injects them into the running process). `appliance sim scan` and `sim pay cash` sell as a
customer would. Each test checks what the issue promised: the refusal names the storage and
comes at once, the process outlives its housekeeping, every committed sale is stored once
and whole, and selling resumes once the fault is cleared.
"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import cycle
from pathlib import Path
from typing import Any

import pytest

from tests import real_parts
from tests.cli.conftest import (
    CONFIG_TEMPLATE,
    DEVICE_ID,
    RECEIPT_PREFIX,
    WAIT_SECONDS,
    Spawner,
    appliance_script,
)
from tests.disks import loop_ext4, small_tmpfs

# Coffee and chocolate in turn: the same code twice in a row could be taken for a re-read.
CODES = ("4006381333931", "7613289024044")
# A `sim` command without an answer by then has hung (the caller waited 60 s).
ANSWER_SECONDS = 30.0
# WatchdogSec=0.2 s: the headless loop pings every 0.1 s, once per tick, idle or not.
WATCHDOG_USEC = "200000"
IDLE_TICKS = 5
MIB = 1024 * 1024


def config_text(database: Path, reserve_mb: float) -> str:
    """The command-line tests' configuration, its data partition looked at every 0.2 s."""
    text = CONFIG_TEMPLATE.format(device_id=DEVICE_ID, prefix=RECEIPT_PREFIX, database=database)
    storage = f"reserve_mb = {reserve_mb}\nstorage_check_seconds = 0.2\n"
    return text.replace("[database]\n", "[database]\n" + storage)


_OUTSIDE_VARIABLES = ("APPLIANCE_SIMULATE", "APPLIANCE_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No configuration or systemd variables from outside; simulator state under tmp_path."""
    for name in _OUTSIDE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    """Start real processes; none outlives the test."""
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.cleanup()


def wait_until(done: Callable[[], bool], what: str) -> None:
    """Poll `done()`; fail after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Notifications:
    """systemd's side of NOTIFY_SOCKET, read all the time as systemd does.

    The watchdog pings every 0.1 s and the kernel queues ten datagrams: a socket read only
    now and then would block the appliance's main loop in its next ping.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(str(path))
        self._socket.settimeout(0.1)
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._reader.start()

    def count(self, assignment: str) -> int:
        """How many times `assignment` (READY=1, WATCHDOG=1, ...) was sent so far."""
        with self._lock:
            return self._lines.count(assignment)

    def wait_for(self, assignment: str, times: int, process: subprocess.Popen[bytes]) -> None:
        """Wait until `assignment` was sent `times` times in all; fail if the process ends."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.count(assignment) < times:
            assert process.poll() is None, f"the appliance exited with {process.returncode}"
            if time.monotonic() > deadline:
                pytest.fail(f"{assignment} not sent {times} times: {self.count(assignment)}")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop reading and close the socket; safe twice."""
        self._closed.set()
        self._reader.join(WAIT_SECONDS)
        self._socket.close()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                datagram = self._socket.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self._lines.extend(datagram.decode().splitlines())


class Till:
    """`appliance run --headless --simulate --config FILE`, driven by `appliance sim`."""

    def __init__(self, spawn: Spawner, tmp_path: Path, data: Path, reserve_mb: float) -> None:
        self.spawn = spawn
        self.tmp_path = tmp_path
        self.database = data / "appliance.db"
        self.config = tmp_path / "appliance.toml"
        self.config.write_text(config_text(self.database, reserve_mb), encoding="utf-8")
        self.codes = cycle(CODES)
        self.last_scan = ""  # the appliance's log line for the last scan of sell()
        self.receipts: list[tuple[str, int]] = []  # every sale `sim pay` was told is stored
        self.process: subprocess.Popen[bytes] | None = None
        self.notify: Notifications | None = None

    # -- the process ------------------------------------------------------------------

    def start(self, *, printer: bool = True) -> None:
        """Start the appliance and wait for READY=1 (and, with `printer`, the printer's ok).

        python-escpos writes its profile cache into the data folder as the printer first
        comes up: a test fills the disk only after that, so it fails at the same place
        every time.
        """
        if self.notify is not None:
            self.notify.close()
        self.notify = Notifications(self.tmp_path / f"notify-{len(self.spawn.processes)}.sock")
        self.process = self.spawn(
            [appliance_script(), "run", "--headless", "--simulate", "--config", self.config],
            NOTIFY_SOCKET=str(self.notify.path),
            WATCHDOG_USEC=WATCHDOG_USEC,
        )
        self.notify.wait_for("READY=1", 1, self.process)
        if printer:
            wait_until(lambda: "printer printer: ok" in self.log(), "the printer to be up")

    @property
    def pid(self) -> int:
        """The appliance's process id."""
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        """What the appliance has logged so far."""
        assert self.process is not None
        return self.spawn.stderr(self.process)

    def logs(self) -> list[str]:
        """What each start of the appliance logged, first start first."""
        return [self.spawn.stderr(process) for process in self.spawn.processes]

    def idle_ticks(self, ticks: int = IDLE_TICKS) -> None:
        """Wait until the main loop has come round `ticks` more times, then check it lives.

        Each tick pings the watchdog, and a tick without events runs the WAL checkpoint: the
        housekeeping that once raised out of the loop on a full disk.
        """
        assert self.process is not None and self.notify is not None
        seen = self.notify.count("WATCHDOG=1")
        self.notify.wait_for("WATCHDOG=1", seen + ticks, self.process)
        assert self.process.poll() is None, self.log()

    def stop(self) -> None:
        """SIGTERM: the appliance stops cleanly, exit status 0."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(WAIT_SECONDS) == 0, self.log()
        assert self.notify is not None
        self.notify.wait_for("STOPPING=1", 1, self.process)
        self.close()

    def close(self) -> None:
        """Stop listening for notifications; safe twice."""
        notify, self.notify = self.notify, None
        if notify is not None:
            notify.close()

    # -- commands ---------------------------------------------------------------------

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `appliance ARGS --config FILE`; a command that never answers fails the test."""
        try:
            return subprocess.run(
                [str(appliance_script()), *args, "--config", str(self.config)],
                capture_output=True,
                text=True,
                timeout=ANSWER_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`appliance {' '.join(args)}` got no answer:\n{self.log()}")

    def scan(self) -> str:
        """Scan the next code; the appliance's log line for it ("scanned ..." or "... refused")."""
        code = next(self.codes)
        mark = f"{code} on scanner"
        before = self.log().count(mark)
        answer = self.command("sim", "scan", code)
        assert answer.returncode == 0, answer.stdout + answer.stderr
        wait_until(lambda: self.log().count(mark) > before, f"the scan of {code} in the log")
        return [line for line in self.log().splitlines() if mark in line][before]

    def pay(self) -> subprocess.CompletedProcess[str]:
        """`sim pay cash`; a stored sale's receipt is kept in `receipts`."""
        answer = self.command("sim", "pay", "cash")
        if answer.returncode == 0:
            sale = json.loads(answer.stdout)
            self.receipts.append((sale["receipt"], sale["total"]))
        return answer

    def sell(self) -> subprocess.CompletedProcess[str]:
        """Scan one item and pay cash for the cart; the scan's log line is kept in last_scan."""
        self.last_scan = self.scan()
        return self.pay()

    def sell_until_refused(self, limit: int = 60) -> str:
        """Sell until `sim pay` is refused; what it said (exit status 1, one line)."""
        for _ in range(limit):
            answer = self.sell()
            if answer.returncode != 0:
                assert answer.returncode == 1, answer.stdout + answer.stderr
                assert "Traceback" not in answer.stderr, answer.stderr
                return answer.stderr.strip()
        pytest.fail(f"{limit} sales and none refused:\n{self.log()}")

    def status(self) -> dict[str, Any]:
        """`appliance status --json`."""
        answer = self.command("status", "--json")
        assert answer.returncode == 0, answer.stdout + answer.stderr
        report: dict[str, Any] = json.loads(answer.stdout)
        return report

    # -- what was stored --------------------------------------------------------------

    def stored(self) -> list[tuple[str, int]]:
        """Receipts and totals in the outbox, in order; every document whole and queued once.

        Read by a fresh connection after the appliance stopped.
        """
        with sqlite3.connect(self.database) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
            assert problems == ["ok"], problems
            assert not connection.execute("PRAGMA foreign_key_check").fetchall()
            documents = connection.execute("SELECT COUNT(*) FROM document").fetchone()[0]
            lines = connection.execute("SELECT COUNT(*) FROM document_line").fetchone()[0]
            counted = connection.execute("SELECT TOTAL(line_count) FROM document").fetchone()[0]
            queued = connection.execute(
                "SELECT d.receipt_number, d.total FROM outbox o"
                " JOIN document d ON d.id = o.document_id ORDER BY o.sequence"
            ).fetchall()
        assert lines == counted, "a document lost some of its lines"
        assert len(queued) == documents, "a document is missing from the outbox"
        return [(receipt, total) for receipt, total in queued]


@pytest.fixture
def make_till(spawn: Spawner, tmp_path: Path) -> Iterator[Callable[[Path, float], Till]]:
    """Tills for a data folder and a reserve (MiB); their notify sockets closed afterwards."""
    made: list[Till] = []

    def make(data: Path, reserve_mb: float) -> Till:
        made.append(Till(spawn, tmp_path, data, reserve_mb))
        return made[-1]

    yield make
    for till in made:
        till.close()


def _until_stored(till: Till, attempt: Callable[[], subprocess.CompletedProcess[str]]) -> None:
    """Repeat `attempt` until a sale is stored (the storage watch probes every 0.2 s)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while (answer := attempt()).returncode != 0:
        # The watch may lift the pause between a refused scan and the pay: the pay then
        # finds the cart empty, and it was the scan's refusal that named the storage.
        after_refused_scan = "the cart is empty" in answer.stderr and "refused" in till.last_scan
        said = till.last_scan if after_refused_scan else answer.stderr
        assert "storage" in said, answer.stderr + till.last_scan
        if time.monotonic() > deadline:
            pytest.fail(f"no sale stored after the fault cleared: {answer.stderr}\n{till.log()}")


def _wait_for_log(till: Till, text: str) -> None:
    wait_until(lambda: text in till.log(), repr(text))


def _stopped_with_every_sale_whole(till: Till) -> None:
    """SIGTERM, exit 0; the outbox holds each answered sale once and whole, and nothing else."""
    till.stop()
    assert till.stored() == till.receipts
    for run, log in enumerate(till.logs()):
        assert "Traceback" not in log, f"run {run}: each fault is one line, no follow-on error"


def test_a_full_tmpfs_is_storage_full_for_the_sale_and_the_checkpoint_and_no_crash(
    make_till: Callable[[Path, float], Till], tmp_path: Path
) -> None:
    """No reserve, so SQLite itself meets SQLITE_FULL. The cart's `sim pay` hears "storage
    full" at once (the issue's caller waited 60 s); a grown disk takes the kept cart but not
    the write after it (the WAL checkpoint or the receipt's print job), which the appliance
    survives; more room, and it sells again."""
    with small_tmpfs(tmp_path / "data", 3 * 1024) as disk:
        till = make_till(disk.path, 0)
        till.start()
        assert "scanned" in till.scan()  # a sale in progress when the disk fills up
        disk.fill()

        refused = till.pay()
        assert refused.returncode == 1, refused.stdout
        assert "storage full: the sale could not be stored" in refused.stderr, refused.stderr
        assert "no transaction is active" not in refused.stderr
        till.idle_ticks()
        storage = till.status()["storage"]
        assert storage["state"] == "full", storage
        assert "storage full" in storage["problem"]

        # Room for the sale's few WAL pages, not for the checkpoint that copies the demo
        # store's first pages into the database after it, nor for much else.
        disk.resize(3 * 1024 + 128)
        _until_stored(till, till.pay)  # the kept cart
        # The next write meets the full disk: the idle WAL checkpoint, or the receipt's
        # print job on the printer's worker, whichever the threads run first.
        stored_at = till.log().rindex("committed (sequence 1)")
        wait_until(lambda: "storage full" in till.log()[stored_at:], "the disk full again")
        said = till.sell_until_refused()
        assert "storage full" in said, said
        till.idle_ticks()  # a failed checkpoint or print job no longer stops the appliance

        disk.resize(16 * 1024)
        _until_stored(till, till.sell)
        if "WAL checkpoint failed" in till.log():
            _wait_for_log(till, "WAL checkpoint works again")
        assert till.status()["storage"]["state"] == "ok"
        _stopped_with_every_sale_whole(till)


def test_below_the_reserve_new_sales_are_refused_as_storage_low_and_resume_once_it_grows(
    make_till: Callable[[Path, float], Till], tmp_path: Path
) -> None:
    """A 1 MiB reserve: the till refuses new sales, saying why, before the disk is full."""
    with small_tmpfs(tmp_path / "data", 3 * 1024) as disk:
        till = make_till(disk.path, 1)
        till.start()
        assert till.sell().returncode == 0
        disk.fill(leave_bytes=MIB + 96 * 1024)

        said = till.sell_until_refused()
        assert "storage low" in said, said
        till.idle_ticks()
        storage = till.status()["storage"]
        assert storage["state"] == "low", storage
        assert "below the reserve" in storage["problem"]
        assert "filler" in storage["problem"], "staff see what takes the space"

        disk.resize(16 * 1024)
        _until_stored(till, till.sell)
        till.idle_ticks()
        assert till.status()["storage"]["state"] == "ok"
        _stopped_with_every_sale_whole(till)


# What SQLite calls to write here (`strace -f -c` on a sale): pwrite64 for the WAL and the
# database, fdatasync to make a commit durable. fsync is the storage watch's test write, so
# the fault holds while the disk fails, as it would on a dying SD card.
FAILING_WRITES = "pwrite64,fdatasync,fsync"
INJECT_EIO = ("-e", f"trace={FAILING_WRITES}", "-e", f"inject={FAILING_WRITES}:error=EIO")


@contextmanager
def failing_writes(pid: int, log: Path) -> Iterator[None]:
    """Every write the process `pid` syncs fails with EIO (strace injects it) until the end."""
    strace = real_parts.binary("strace", "strace")
    with log.open("wb") as err:
        tracer = subprocess.Popen(
            [strace, "-f", "-p", str(pid), "-o", "/dev/null", *INJECT_EIO],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        # strace names the thread count once it holds every thread of the process.
        wait_until(
            lambda: "threads" in log.read_text() or tracer.poll() is not None, "strace to attach"
        )
        assert tracer.poll() is None, log.read_text()
        yield
    finally:
        tracer.send_signal(signal.SIGINT)  # strace detaches and the process runs on untouched
        try:
            tracer.wait(WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(WAIT_SECONDS)


def test_io_errors_refuse_the_sale_as_a_storage_io_error_and_it_recovers_by_itself(
    make_till: Callable[[Path, float], Till], tmp_path: Path
) -> None:
    """The kernel fails the appliance's writes with EIO: the sale is refused naming an I/O
    error, nothing half-written stays, and once the writes work the till sells again by
    itself, no restart."""
    till = make_till(tmp_path / "data", 0)
    till.start()
    assert till.sell().returncode == 0
    till.idle_ticks()  # its WAL checkpoint done while the disk still worked

    with failing_writes(till.pid, tmp_path / "strace.log"):
        assert "scanned" in till.scan()
        refused = till.pay()
        assert refused.returncode == 1, refused.stdout
        assert "storage I/O error: the sale could not be stored" in refused.stderr, refused.stderr
        assert "no transaction is active" not in refused.stderr
        till.idle_ticks()
        again = till.pay()  # the watch's test write fails too: the fault holds
        assert again.returncode == 1 and "I/O error" in again.stderr, again.stderr

    _until_stored(till, till.pay)  # the kept cart, once a test write succeeds again
    _until_stored(till, till.sell)
    _stopped_with_every_sale_whole(till)


def test_a_read_only_remount_during_sales_refuses_them_and_a_repair_loses_none(
    make_till: Callable[[Path, float], Till], tmp_path: Path
) -> None:
    """The kernel remounts the data partition read-only between sales: the next one is
    refused naming it, status says read_only, the appliance still stops cleanly, and after
    a repair (what a reboot does) every earlier sale is there once and selling goes on."""
    with loop_ext4(tmp_path) as disk:
        till = make_till(disk.mount_point, 1)
        till.start()
        for _ in range(3):
            assert till.sell().returncode == 0
        stored_before = list(till.receipts)

        assert "scanned" in till.scan()  # a sale in progress when the card fails
        disk.fail()
        refused = till.pay()
        assert refused.returncode == 1, refused.stdout
        assert "storage read-only: the sale could not be stored" in refused.stderr, refused.stderr
        till.idle_ticks()
        again = till.sell()  # the cart is kept, and refused in the same words
        assert again.returncode == 1 and again.stderr == refused.stderr, again.stderr
        storage = till.status()["storage"]
        assert storage["state"] == "read_only", storage
        assert "read-only" in storage["problem"]
        till.stop()

        disk.repair()
        assert till.receipts == stored_before  # no refused sale was answered as stored
        till.start(printer=False)  # it must print again, which is checked below
        assert till.sell().returncode == 0
        receipt = till.receipts[-1][0]
        _wait_for_log(till, f"printed receipt {receipt}")  # the printer works after the repair
        _stopped_with_every_sale_whole(till)
