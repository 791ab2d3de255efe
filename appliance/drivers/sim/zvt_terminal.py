"""A ZVT payment terminal (PT) emulator behind a real TCP port and/or a pty, byte for byte.

The till (ECR) is the client and runs its real adapter and transport against it. Every ECR
command is answered `80 00 00` (or `84 xx 00`); then the PT is master and sends its messages,
each of which the ECR must acknowledge within T3 before the next one goes out, or the PT
ends the session. What the customer and card do is scripted with Steps; what was booked
stays in the book across connections, as a real terminal keeps it across an ECR's reboot.

Threads: each listener (TCP or pty) has one thread; each ECR connection is served on a thread
of its own, one connection at a time. The public properties and `script()` are thread-safe.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import get_args

from appliance.core.closing import Closing
from appliance.drivers.sim.zvt_bank import Book, Booked
from appliance.drivers.sim.zvt_script import DEFAULT_CONFIG, T3, Outcome, Script, Session, Step
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.fields import encode_bcd
from appliance.drivers.zvt.link import ZvtLink
from appliance.drivers.zvt.serial_link import FdStream, SerialLink
from appliance.drivers.zvt.tcp_link import TcpLink

__all__ = ["Booked", "Step", "ZvtEmulator", "main"]

log = logging.getLogger(__name__)

_JOIN_SECONDS = 5.0
_RETRY_SECONDS = 0.1
CURRENCIES = {"EUR": 978, "CHF": 756, "GBP": 826, "USD": 840, "DKK": 208, "PLN": 985}


class ZvtEmulator(Closing):
    """The PT: serve_tcp() and/or serve_pty(), script() the customer, read the book."""

    def __init__(
        self,
        *,
        currency: str = "EUR",
        terminal_id: str = "52500038",
        password: str = "000000",
        steps: Sequence[Step] = (),
        t3: float = T3,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        if currency not in CURRENCIES:
            raise ValueError(f"currency: one of {', '.join(CURRENCIES)}")
        if not re.fullmatch(r"[0-9]{8}", terminal_id):
            raise ValueError("terminal_id: 8 digits")
        if not re.fullmatch(r"[0-9]{6}", password):
            raise ValueError("password: 6 digits")
        self.currency = currency
        self.currency_code = encode_bcd(CURRENCIES[currency], 2)
        self.terminal_id = terminal_id
        self.password = bytes.fromhex(password)
        self.t3 = t3
        self.clock = clock
        self.steps = Script(steps)
        self.bank = Book()
        self._state = threading.Condition()
        self._received: list[Apdu] = []
        self._printer_faults = 0
        self._busy = False
        self._closed = False
        self.config = DEFAULT_CONFIG
        self.text_block = False
        self._links: set[ZvtLink] = set()
        self._threads: list[threading.Thread] = []
        self._listeners: list[socket.socket] = []
        self._fds: list[int] = []
        self._wake_r, self._wake_w = socket.socketpair()

    # -- any thread -------------------------------------------------------------------

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on `host`:`port` (0: any free port) for the ECR; returns the bound port."""
        listener = socket.create_server((host, port))  # SO_REUSEADDR: a restart binds at once
        self._listeners.append(listener)
        self._start(self._accept, listener, "zvt-emulator-tcp")
        bound: int = listener.getsockname()[1]
        log.info("emulated ZVT terminal on %s:%d", host, bound)
        return bound

    def serve_pty(self) -> str:
        """Serve the serial protocol on a pty; returns the slave's path for the adapter."""
        master, slave = os.openpty()
        # Raw, so the line discipline neither echoes nor rewrites bytes; the slave stays
        # open here so the pty survives the adapter closing and reopening the port.
        tty.setraw(slave)
        self._fds += [master, slave]
        path = os.ttyname(slave)
        self._start(self._serve_pty, master, "zvt-emulator-pty")
        log.info("emulated ZVT terminal on %s", path)
        return path

    def script(self, *steps: Step) -> None:
        """Queue what happens in the next transactions; an empty queue approves."""
        self.steps.add(steps)

    @property
    def book(self) -> list[Booked]:
        """Every transaction booked, oldest first, as it stands now."""
        return self.bank.entries()

    @property
    def received(self) -> list[Apdu]:
        """Every APDU the ECR sent, acknowledgements included, in order, across connections."""
        with self._state:
            return list(self._received)

    @property
    def printer_faults(self) -> int:
        """How many print messages (06 D1/06 D3) the ECR refused with a negative answer."""
        with self._state:
            return self._printer_faults

    def wait_idle(self, timeout: float) -> bool:
        """Block until no command is in progress; False if one still is after `timeout` s."""
        with self._state:
            return self._state.wait_for(lambda: not self._busy, timeout)

    def close(self) -> None:
        """Stop listening, end the sessions and join the threads; safe to call twice."""
        with self._state:
            if self._closed:
                return
            self._closed = True
            links = list(self._links)
        self._wake_w.send(b"!")  # never read: it stays readable and wakes every listener
        for link in links:
            link.close()
        for thread in self._threads:
            thread.join(_JOIN_SECONDS)
        for listener in self._listeners:
            listener.close()
        for fd in self._fds:
            os.close(fd)
        self._wake_r.close()
        self._wake_w.close()

    # -- the sessions' threads ----------------------------------------------------------

    def record(self, apdu: Apdu) -> None:
        """Keep what the ECR sent, for `received`."""
        with self._state:
            self._received.append(apdu)

    def printer_fault(self) -> None:
        """The ECR refused a print message."""
        with self._state:
            self._printer_faults += 1

    def set_busy(self, busy: bool) -> None:
        """A command started or ended."""
        with self._state:
            self._busy = busy
            self._state.notify_all()

    def register(self, config: int, text_block: bool) -> None:
        """Registration (or Log-Off) set how the ECR wants its receipts and statuses."""
        with self._state:
            self.config = config
            self.text_block = text_block

    def _start(self, target: Callable[..., None], arg: object, name: str) -> None:
        thread = threading.Thread(target=target, args=(arg,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        session: tuple[threading.Thread, ZvtLink] | None = None
        while True:
            ready, _, _ = select.select([listener, self._wake_r], [], [])
            if self._wake_r in ready:
                break
            try:
                conn, peer = listener.accept()
            except OSError:
                continue
            alive = session is not None and session[0].is_alive()
            if session is not None and alive and not self._replace(session[1]):
                log.info("emulated ZVT terminal: busy, turned ECR %s:%d away", *peer[:2])
                conn.close()
                continue
            if session is not None:
                session[0].join()
            log.info("emulated ZVT terminal: ECR %s:%d connected", *peer[:2])
            link = TcpLink(conn)
            thread = threading.Thread(target=self._serve, args=(link,), name="zvt-emulator-session")
            thread.start()
            session = (thread, link)
        if session is not None:
            session[0].join(_JOIN_SECONDS)

    def _replace(self, link: ZvtLink) -> bool:
        """One ECR at a time: a new connection ends an idle one; False while one is busy."""
        # An ECR that lost power never closed its connection, and the one it opens after
        # its reboot must be served. During a transaction the new one is turned away.
        with self._state:
            # A command's last answer may still be on its way out: give it T3 to end.
            if not self._state.wait_for(lambda: not self._busy, self.t3):
                return False
            link.close()
            return True

    def _serve_pty(self, master: int) -> None:
        while not self._closed:
            started = time.monotonic()
            # FdStream owns (and closes) its descriptor: each session gets a copy of the master.
            self._serve(SerialLink(FdStream(os.dup(master))))
            if time.monotonic() - started < _RETRY_SECONDS:
                # A line that fails at once again and again must not spin a core.
                select.select([self._wake_r], [], [], _RETRY_SECONDS)

    def _serve(self, link: ZvtLink) -> None:
        with self._state:
            if self._closed:
                link.close()
                return
            self._links.add(link)
        try:
            Session(self, link).run()
        finally:
            link.close()
            with self._state:
                self._links.discard(link)
                self._busy = False
                self._state.notify_all()


def main(argv: Sequence[str] | None = None) -> int:
    """Run an emulated terminal until SIGINT or SIGTERM; prints where it listens."""
    outcomes = get_args(Outcome)
    parser = argparse.ArgumentParser(
        prog="python -m appliance.drivers.sim.zvt_terminal",
        description="An emulated ZVT card terminal for a till to pay against.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=20007, help="0: any free port")
    parser.add_argument("--pty", action="store_true", help="also serve the serial protocol")
    parser.add_argument("--currency", default="EUR", choices=sorted(CURRENCIES))
    parser.add_argument("--terminal-id", default="52500038")
    parser.add_argument("--password", default="000000")
    parser.add_argument("--steps", default="", help=f"next outcomes, comma-separated: {outcomes}")
    parser.add_argument("--pause", type=float, default=0.5, help="the customer's seconds a step")
    args = parser.parse_args(argv)
    names = [name for name in args.steps.split(",") if name]
    if unknown := [name for name in names if name not in outcomes]:
        parser.error(f"unknown outcome {unknown[0]!r}; one of {', '.join(outcomes)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    steps = [Step(outcome=name, pause=args.pause) for name in names]
    with ZvtEmulator(
        currency=args.currency, terminal_id=args.terminal_id, password=args.password, steps=steps
    ) as emulator:
        # One line each, flushed: a test or a script reads where to connect.
        sys.stdout.write(f"tcp {args.host}:{emulator.serve_tcp(args.host, args.port)}\n")
        if args.pty:
            sys.stdout.write(f"pty {emulator.serve_pty()}\n")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
