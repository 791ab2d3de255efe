"""The control socket of a simulated appliance: `appliance sim ...` talks to it.

One JSON object per line in, one per line out, over a Unix socket beside the database
(`sim.sock`, mode 0600). Each connection is answered on its own thread, up to
MAX_CONNECTIONS at once, so a payment waiting for a silent terminal never holds up a scan.
A request names a command (`{"cmd": "scan", "code": "..."}`);
the answer is `{"ok": true, ...}` or `{"ok": false, "error": "..."}`. Commands act on
the simulators, on the far side of the real transports, so what happens next is what
would happen with real hardware.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from appliance.core.closing import OpenClosing
from appliance.drivers.serial_scale import ZERO
from appliance.drivers.sim.lab import TERMINAL_STEPS
from appliance.errors import ApplianceError, DeviceError

if TYPE_CHECKING:
    from appliance.drivers.sim.lab import SimLab
    from appliance.drivers.sim.scale import SimScale

log = logging.getLogger(__name__)

SOCKET_NAME = "sim.sock"
MAX_REQUEST_BYTES = 64 * 1024
# How often the server looks at its stop flag; bounds how long close() takes.
POLL_SECONDS = 0.05
CLIENT_TIMEOUT_SECONDS = 10.0
# Connections answered at once; more are refused with an answer, never queued behind a
# slow one. A handful of `sim` commands in parallel is all a demo or a test needs.
MAX_CONNECTIONS = 8

# `appliance sim scale ACTION`: what happens to the simulated scale's platter, or its zero key.
SCALE_ACTIONS: dict[str, Callable[[SimScale], object]] = {
    "motion": lambda scale: scale.motion(),
    "underload": lambda scale: scale.underload(),
    "overload": lambda scale: scale.overload(),
    "clear": lambda scale: scale.clear(),
    # The scale's own zero key: it zeroes when it may, exactly as for the till's Z request.
    "zero": lambda scale: scale.answer_to(ZERO),
}

T = TypeVar("T")
Request = Mapping[str, Any]
Answer = dict[str, Any]


def control_socket_path(database_path: str | Path) -> Path:
    """Where a simulated appliance listens: beside its database."""
    return Path(database_path).parent / SOCKET_NAME


@dataclass(frozen=True, slots=True)
class Command:
    """One control command: what it needs and what it does."""

    help: str
    run: Callable[[Request], Answer | None]


def lab_commands(lab: SimLab) -> dict[str, Command]:
    """The commands a simulator lab (its terminal emulator too) answers to."""

    def scan(request: Request) -> None:
        _need(lab.scanner, "scanner").scan(_text(request, "code"))

    def tap(request: Request) -> None:
        text = request.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError("text: expected a string")
        if not _need(lab.nfc_tag, "NFC tag (yet?)").tap(_text(request, "uid"), text=text):
            raise DeviceError("the NFC reader did not read the card (is it connected?)")

    def paper(out: bool) -> Callable[[Request], None]:
        return lambda _request: _need(lab.printer, "printer").set_paper_out(out)

    def drawer_open(_request: Request) -> None:
        _need(lab.drawer, "drawer").open()

    def drawer_close(_request: Request) -> None:
        _need(lab.drawer, "drawer").shut()

    def script_terminal(request: Request) -> Answer:
        outcome = _text(request, "outcome")
        step = TERMINAL_STEPS.get(outcome)
        if step is None:
            raise ValueError(f"outcome: one of {', '.join(TERMINAL_STEPS)}, not {outcome!r}")
        _need(lab.terminal, "payment terminal").script(step)
        return {"terminal": outcome}

    def weigh(request: Request) -> Answer:
        grams = request.get("grams")
        # bool is an int to Python; JSON true is no weight.
        if not isinstance(grams, int) or isinstance(grams, bool) or grams < 0:
            raise ValueError("grams: expected a whole number of grams, 0 or more")
        scale = _need(lab.scale, "scale")
        scale.put(grams)
        return {"scale": scale.state()}

    def act_on_scale(request: Request) -> Answer:
        action = _text(request, "action")
        if action not in SCALE_ACTIONS:
            raise ValueError(f"action: one of {', '.join(SCALE_ACTIONS)}, not {action!r}")
        scale = _need(lab.scale, "scale")
        SCALE_ACTIONS[action](scale)
        return {"scale": scale.state()}

    def plug(plugged: bool) -> Callable[[Request], None]:
        def run(request: Request) -> None:
            device = request.get("device", "scanner")
            if device != "scanner":
                raise ValueError(f"only the scanner can be unplugged, not {device!r}")
            scanner = _need(lab.scanner, "scanner")
            if plugged:
                scanner.replug()
            else:
                scanner.unplug()

        return run

    return {
        "scan": Command("scan CODE on the simulated scanner", scan),
        "tap": Command("tap a card UID (with an NDEF text) on the NFC reader", tap),
        "paper-out": Command("the printer runs out of paper", paper(True)),
        "paper-in": Command("paper is loaded again", paper(False)),
        "drawer-open": Command("the drawer is pulled open by hand", drawer_open),
        "drawer-close": Command("the drawer is pushed shut", drawer_close),
        "terminal": Command(
            f"the terminal's next answer: {'|'.join(TERMINAL_STEPS)}", script_terminal
        ),
        "weigh": Command("a stable load of GRAMS on the scale (0: empty)", weigh),
        "scale": Command(
            f"the scale's platter or zero key: {'|'.join(SCALE_ACTIONS)}", act_on_scale
        ),
        "unplug": Command("unplug the scanner's cable", plug(False)),
        "replug": Command("plug the scanner back in", plug(True)),
    }


def answer(commands: Mapping[str, Command], request: object) -> Answer:
    """Run one request against `commands`; never raises."""
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        return {"ok": False, "error": 'expected a JSON object with "cmd"'}
    name = request["cmd"]
    command = commands.get(name)
    if command is None:
        return {"ok": False, "error": f"unknown command {name!r}; known: {', '.join(commands)}"}
    try:
        extra = command.run(request) or {}
    except (ApplianceError, ValueError, OSError) as err:
        log.warning("sim %s refused: %s", name, err)
        return {"ok": False, "error": str(err)}
    except Exception as err:  # a broken simulator must not kill the control socket
        log.exception("sim %s failed", name)
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    log.info("sim %s done", name)
    return {"ok": True, **extra}


class _ThreadingServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A thread per connection, at most `limit` at once; close_connections() ends them."""

    daemon_threads = True
    # close() does not wait for handlers: one may be waiting for a terminal's answer.
    block_on_close = False
    # Room to queue more clients than there are slots, so one past the cap is accepted
    # and told "busy" rather than left to a full backlog (EAGAIN on connect).
    request_queue_size = 2 * MAX_CONNECTIONS

    def __init__(
        self, path: str, handler: type[socketserver.BaseRequestHandler], limit: int
    ) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(path, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Answer on a new thread, or refuse at once when every slot is taken."""
        if not self._slots.acquire(blocking=False):
            refusal = {"ok": False, "error": "busy: too many sim commands at once"}
            with contextlib.suppress(OSError):
                request.sendall(json.dumps(refusal).encode() + b"\n")
            self.shutdown_request(request)
            return
        with self._lock:
            self._connections.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """The connection's thread: answer it, then give its slot back."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (or stayed silent) ends its connection; logged, no trace."""
        log.warning("sim control connection ended: %s", sys.exc_info()[1])

    def close_connections(self) -> None:
        """End every open connection, so no handler goes on reading after close()."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _release(self, request: socket.socket) -> None:
        with self._lock:
            if request not in self._connections:
                return
            self._connections.discard(request)
        self._slots.release()


class ControlServer(OpenClosing):
    """Listens on the control socket in its own thread; a context manager, close() safe twice."""

    def __init__(self, path: Path, commands: Mapping[str, Command]) -> None:
        self.path = path
        self._commands = dict(commands)
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, commands: Mapping[str, Command]) -> None:
        """Answer `commands` too, from now on; any thread (even while serving).

        For parts that start after the socket opens (the hub link's, say). The handlers
        read the same dict: one update is atomic for them, so a request sees the command
        or answers "unknown command", never half of it.
        """
        self._commands.update(commands)

    def open(self) -> None:
        """Bind and start answering; DeviceError when another appliance already listens."""
        if self._server is not None:
            return
        _remove_stale(self.path)
        commands = self._commands

        class Handler(socketserver.StreamRequestHandler):
            timeout = CLIENT_TIMEOUT_SECONDS

            def handle(self) -> None:
                for line in iter(lambda: self.rfile.readline(MAX_REQUEST_BYTES), b""):
                    if not line.strip():
                        continue
                    try:
                        request = json.loads(line)
                    except ValueError:
                        reply = {"ok": False, "error": "not a JSON line"}
                    else:
                        reply = answer(commands, request)
                    self.wfile.write(json.dumps(reply).encode() + b"\n")

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = _ThreadingServer(str(self.path), Handler, MAX_CONNECTIONS)
            os.chmod(self.path, 0o600)  # only this user may inject scans
        except OSError as err:
            raise DeviceError(f"cannot listen on {self.path}: {err}") from err
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(POLL_SECONDS,), name="sim-control", daemon=True
        )
        self._thread.start()
        log.info("simulator control socket: %s", self.path)

    def close(self) -> None:
        """Stop answering and remove the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def send(path: Path, request: Request, timeout: float = CLIENT_TIMEOUT_SECONDS) -> Answer:
    """Send one request to a running simulated appliance and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as err:
            raise DeviceError(
                f"no simulated appliance is running (nothing listens on {path});"
                " start one with `appliance run --simulate`"
            ) from err
        except BlockingIOError as err:  # its backlog is full
            raise DeviceError("the simulated appliance is busy; try again") from err
        try:
            try:
                sock.sendall(json.dumps(dict(request)).encode() + b"\n")
                sock.shutdown(socket.SHUT_WR)
            except BrokenPipeError:
                # A server with every slot taken answers "busy" and closes without reading:
                # its answer may already wait to be read.
                pass
            with sock.makefile("rb") as reply:
                line = reply.readline(MAX_REQUEST_BYTES)
        except OSError as err:
            raise DeviceError(f"the simulated appliance did not answer: {err}") from err
    try:
        answer_ = json.loads(line)
    except ValueError as err:
        raise DeviceError("the simulated appliance sent no answer") from err
    if not isinstance(answer_, dict):
        raise DeviceError(f"unexpected answer from the simulated appliance: {answer_!r}")
    return answer_


def _remove_stale(path: Path) -> None:
    """Remove a socket left by a crashed run; refuse when an appliance still listens on it."""
    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            return
    raise DeviceError(f"another simulated appliance is listening on {path}")


def _text(request: Request, key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected a non-empty string")
    return value


def _need(device: T | None, what: str) -> T:
    if device is None:
        raise DeviceError(f"this simulated appliance has no {what}")
    return device
