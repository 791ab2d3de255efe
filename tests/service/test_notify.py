"""SystemdNotifier against real AF_UNIX datagram sockets, as systemd would receive them."""

from __future__ import annotations

import logging
import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.service import notify
from appliance.service.notify import SystemdNotifier

WATCHDOG_USEC = "10000000"  # WatchdogSec=10 → ping every 5 s


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 100.0) -> None:
        """Start at ``now`` seconds."""
        self.now = now

    def __call__(self) -> float:
        """Return the current fake time."""
        return self.now


class Receiver:
    """A bound SOCK_DGRAM socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        """Wrap ``sock``; ``address`` is the NOTIFY_SOCKET value that reaches it."""
        self.sock = sock
        self.address = address

    def datagrams(self) -> list[bytes]:
        """Drain every queued datagram; sd_notify sends synchronously, so none are late."""
        received = []
        while True:
            try:
                received.append(self.sock.recv(4096))
            except BlockingIOError:
                return received


def _receiver(sock: socket.socket, bind_to: str, address: str) -> Receiver:
    """Bind ``sock`` non-blocking and wrap it."""
    sock.bind(bind_to)
    sock.setblocking(False)
    return Receiver(sock, address)


@pytest.fixture
def path_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """A notify socket bound to a file path."""
    # mktemp keeps the path well below the 108-byte sun_path limit.
    path = str(tmp_path_factory.mktemp("n") / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        yield _receiver(sock, path, path)


@pytest.fixture
def abstract_socket() -> Iterator[Receiver]:
    """A notify socket in the abstract namespace; systemd spells it with a leading '@'."""
    name = f"appliance-test-{os.getpid()}-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        yield _receiver(sock, "\0" + name, "@" + name)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest) -> Receiver:
    """Each notify socket flavour in turn."""
    fixture: Receiver = request.getfixturevalue(f"{request.param}_socket")
    return fixture


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start without systemd variables and with a fresh import of systemd-python."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    notify._sender.cache_clear()
    yield
    notify._sender.cache_clear()


def test_messages_reach_the_socket(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """ready/status/watchdog/stopping arrive as the exact sd_notify datagrams."""
    # setenv also calls putenv(), which is what sd_notify's getenv() actually sees.
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.address)
    monkeypatch.setenv("WATCHDOG_USEC", WATCHDOG_USEC)
    notifier = SystemdNotifier()

    notifier.ready()
    notifier.status("3 sales queued for sync")
    notifier.watchdog()
    notifier.stopping()

    assert notifier.enabled
    assert receiver.datagrams() == [
        b"READY=1",
        b"STATUS=3 sales queued for sync",
        b"WATCHDOG=1",
        b"STOPPING=1",
    ]


def test_ready_with_status_is_one_datagram(
    path_socket: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """READY and STATUS travel together, so systemd never shows a stale status."""
    monkeypatch.setenv("NOTIFY_SOCKET", path_socket.address)

    SystemdNotifier().ready("checkout open")

    assert path_socket.datagrams() == [b"READY=1\nSTATUS=checkout open"]


def test_status_cannot_inject_assignments(
    path_socket: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newline in the status text does not become a second KEY=value line."""
    monkeypatch.setenv("NOTIFY_SOCKET", path_socket.address)

    SystemdNotifier().status("printer offline\nREADY=1")

    assert path_socket.datagrams() == [b"STATUS=printer offline READY=1"]


def test_watchdog_is_throttled(path_socket: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls within the interval send one ping; once it has elapsed, the next one sends."""
    monkeypatch.setenv("NOTIFY_SOCKET", path_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", WATCHDOG_USEC)
    clock = FakeClock()
    notifier = SystemdNotifier(monotonic=clock)
    assert notifier.watchdog_interval == 5.0

    notifier.watchdog()
    clock.now += 4.9
    notifier.watchdog()
    assert path_socket.datagrams() == [b"WATCHDOG=1"]

    clock.now += 0.1
    notifier.watchdog()
    notifier.watchdog()
    assert path_socket.datagrams() == [b"WATCHDOG=1"]


def test_watchdog_pid_of_this_process_enables_watchdog() -> None:
    """WATCHDOG_PID naming us keeps the watchdog on."""
    environ = {
        "NOTIFY_SOCKET": "/run/systemd/notify",
        "WATCHDOG_USEC": WATCHDOG_USEC,
        "WATCHDOG_PID": str(os.getpid()),
    }

    assert SystemdNotifier(environ=environ).watchdog_interval == 5.0


def test_watchdog_pid_of_another_process_disables_watchdog(
    path_socket: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inherited watchdog meant for another pid sends nothing, other messages still go."""
    monkeypatch.setenv("NOTIFY_SOCKET", path_socket.address)
    monkeypatch.setenv("WATCHDOG_USEC", WATCHDOG_USEC)
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    notifier = SystemdNotifier()

    notifier.watchdog()
    notifier.status("alive")

    assert notifier.watchdog_interval is None
    assert path_socket.datagrams() == [b"STATUS=alive"]


@pytest.mark.parametrize("usec", ["", "0", "-5", "ten"])
def test_unusable_watchdog_usec_disables_watchdog(usec: str) -> None:
    """Missing, zero, negative or malformed WATCHDOG_USEC means no watchdog."""
    environ = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": usec}

    assert SystemdNotifier(environ=environ).watchdog_interval is None


def test_silent_without_notify_socket(path_socket: Receiver) -> None:
    """Outside systemd nothing is sent and nothing fails."""
    notifier = SystemdNotifier(environ={"WATCHDOG_USEC": WATCHDOG_USEC})

    notifier.ready("x")
    notifier.watchdog()
    notifier.status("x")
    notifier.stopping()

    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert path_socket.datagrams() == []


def test_destination_comes_from_the_real_environment(path_socket: Receiver) -> None:
    """An injected NOTIFY_SOCKET cannot redirect sd_notify, which reads the process env."""
    assert "NOTIFY_SOCKET" not in os.environ
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path_socket.address})

    notifier.ready()

    assert notifier.enabled
    assert path_socket.datagrams() == []


def test_dead_socket_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If systemd's socket vanished, the checkout keeps running and a warning is logged."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))

    with caplog.at_level(logging.WARNING, logger=notify.__name__):
        SystemdNotifier().ready()

    assert "READY=1" in caplog.text


def test_without_systemd_python_is_a_noop(
    path_socket: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With systemd-python unimportable nothing is sent, and that is logged once at debug."""
    monkeypatch.setitem(sys.modules, "systemd", None)
    monkeypatch.setitem(sys.modules, "systemd.daemon", None)
    monkeypatch.setenv("NOTIFY_SOCKET", path_socket.address)

    with caplog.at_level(logging.DEBUG, logger=notify.__name__):
        SystemdNotifier().ready()
        SystemdNotifier().stopping()

    assert path_socket.datagrams() == []
    assert [r.levelno for r in caplog.records if "not importable" in r.message] == [logging.DEBUG]
