"""Receipt printer simulators: ESC/POS over TCP (a network printer's port 9100) and over a pty.

They sit on the far side of the real transport, so python-escpos and the adapter run as
they would against hardware. What arrives is decoded (escpos_parser) into `jobs`, one per
cut; DLE EOT status requests are answered from the settable `paper_out`,
`paper_near_end` and `cover_open` flags, bit for bit as an Epson TM printer answers, and
`preview_png()` shows a job as paper. Each simulator runs one thread of its own; close()
stops it (safe twice).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import select
import socket
import struct
import threading
import tty
from collections.abc import Callable
from typing import Any

from appliance.core.closing import Closing
from appliance.drivers.sim.escpos_parser import EscposParser, Kick, PrintedJob, StatusRequest

log = logging.getLogger(__name__)

# Every DLE EOT answer has bits 1 and 4 set and bits 0 and 7 clear.
STATUS_FIXED = 0x12
OFFLINE = 0x08  # n=1: the printer is offline
COVER_OPEN = 0x04  # n=2: the cover is open
PAPER_STOP = 0x20  # n=2: printing stopped because the paper ran out
NEAR_END = 0x0C  # n=4: the roll's near-end sensor
PAPER_END = 0x60  # n=4: the roll's paper-end sensor
_JOIN_SECONDS = 5.0


def status_byte(n: int, *, paper_out: bool, paper_near_end: bool, cover_open: bool) -> int:
    """The answer to DLE EOT n (1 printer, 2 offline cause, 3 errors, 4 paper roll)."""
    bits = 0
    if n == 1 and (paper_out or cover_open):
        bits = OFFLINE
    elif n == 2:
        bits = (COVER_OPEN if cover_open else 0) | (PAPER_STOP if paper_out else 0)
    elif n == 4:
        bits = (NEAR_END if paper_near_end or paper_out else 0) | (PAPER_END if paper_out else 0)
    return STATUS_FIXED | bits


class _SimPrinterBase(Closing):
    """The printer behind either wire: decodes, records and answers; thread-safe reads."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.paper_out = False
        self.paper_near_end = False
        self.cover_open = False
        self._parser = EscposParser()
        self._changed = threading.Condition()
        self._jobs: list[PrintedJob] = []
        self._kicks: list[tuple[int, int]] = []
        self._torn: list[PrintedJob] = []
        self._received = bytearray()
        self._closed = False

    def set_paper_out(self, out: bool = True) -> None:
        """Take the paper roll out (or put a fresh one in)."""
        self.paper_out = out

    @property
    def jobs(self) -> list[PrintedJob]:
        """Every job completed by a cut, oldest first."""
        with self._changed:
            return list(self._jobs)

    @property
    def kicks(self) -> list[tuple[int, int]]:
        """Every drawer kick received, as (pin, on-time ms), in or outside a job."""
        with self._changed:
            return list(self._kicks)

    @property
    def torn(self) -> list[PrintedJob]:
        """Jobs cut short because the printer vanished mid-receipt (cuts=0)."""
        with self._changed:
            return list(self._torn)

    @property
    def received(self) -> bytes:
        """Every byte received, across connections."""
        with self._changed:
            return bytes(self._received)

    def wait_for_jobs(self, n: int, timeout: float = 5.0) -> list[PrintedJob]:
        """Block until at least `n` jobs were printed; raises TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._jobs) >= n, timeout):
                raise TimeoutError(f"{len(self._jobs)} of {n} jobs printed")
            return list(self._jobs)

    def wait_for_kicks(self, n: int, timeout: float = 5.0) -> list[tuple[int, int]]:
        """Block until at least `n` drawer kicks arrived; raises TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._kicks) >= n, timeout):
                raise TimeoutError(f"{len(self._kicks)} of {n} kicks received")
            return list(self._kicks)

    def preview_png(self, job: PrintedJob) -> bytes:
        """A PNG picture of `job` as it came out of the printer."""
        return render_png(job, self.columns)

    def _receive(self, data: bytes) -> bytes:
        """Decode what arrived; returns the status bytes to send back, in order."""
        answers = bytearray()
        outputs = self._parser.feed(data)
        with self._changed:
            self._received += data
            for out in outputs:
                if isinstance(out, StatusRequest):
                    answers.append(
                        status_byte(
                            out.n,
                            paper_out=self.paper_out,
                            paper_near_end=self.paper_near_end,
                            cover_open=self.cover_open,
                        )
                    )
                elif isinstance(out, Kick):
                    self._kicks.append((out.pin, out.on_ms))
                else:
                    self._jobs.append(out)
                    log.debug(
                        "simulated printer: job %d, %d lines", len(self._jobs), len(out.lines)
                    )
            self._changed.notify_all()
        return bytes(answers)

    def _power_cycle(self) -> None:
        """The printer lost power: what it printed so far stays torn off, its buffer is gone."""
        torn = self._parser.unfinished()
        self._parser.reset()
        with self._changed:
            if torn is not None:
                self._torn.append(torn)
            self._changed.notify_all()

    def close(self) -> None:
        """Stop the simulator; safe to call twice."""
        raise NotImplementedError


class SimPrinter(_SimPrinterBase):
    """A network receipt printer on 127.0.0.1: one client at a time, like a real one.

    `vanish()` pulls the plug (open connection reset, port refused); `vanish_after(n)` does
    so once `n` more bytes arrived, mid-receipt; `restore()` listens on the same port again.
    `lose_answer_after_job()` prints the next job, then resets the connection instead of
    answering the status request behind it (the printer stays there).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, columns: int = 42) -> None:
        super().__init__(columns)
        self._listener: socket.socket | None = self._listen(host, port)
        self.host, self.port = self._listener.getsockname()[:2]
        self._conn: socket.socket | None = None
        self._vanish_at: int | None = None
        self._lose_answers = 0  # jobs still to print without their status answer
        self.connections = 0
        self._commands: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = (
            queue.SimpleQueue()
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="sim-printer", daemon=True)
        self._thread.start()

    def vanish(self) -> None:
        """The printer disappears: the open connection is reset and the port refuses."""
        self._call(self._vanish)

    def vanish_after(self, n_bytes: int) -> None:
        """Vanish once `n_bytes` more bytes have arrived (the rest is lost)."""

        def arm() -> None:
            self._vanish_at = len(self._received) + n_bytes

        self._call(arm)

    def lose_answer_after_job(self, jobs: int = 1) -> None:
        """For the next `jobs` jobs: print it, then drop the connection before the answer."""

        def arm() -> None:
            self._lose_answers = jobs

        self._call(arm)

    def restore(self) -> None:
        """The printer is back: listen on the same port again."""

        def listen() -> None:
            if self._listener is None:
                self._listener = self._listen(self.host, self.port)

        self._call(listen)

    def close(self) -> None:
        """Stop listening, drop any client and stop the thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._call(self._shut)
        self._thread.join(_JOIN_SECONDS)
        self._wake_r.close()
        self._wake_w.close()

    @staticmethod
    def _listen(host: str, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The same port must be free again at once after vanish(), TIME_WAIT or not.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
            listener.listen(4)
        except OSError:
            listener.close()
            raise
        return listener

    def _call(self, action: Callable[[], None]) -> None:
        """Run `action` on the server thread (which owns the sockets) and wait for it."""
        done = threading.Event()
        self._commands.put((action, done))
        self._wake_w.send(b"!")
        if not done.wait(_JOIN_SECONDS):
            raise TimeoutError("the simulated printer did not answer")

    def _serve(self) -> None:
        while True:
            waiting = [self._wake_r, self._conn or self._listener]
            ready, _, _ = select.select([s for s in waiting if s is not None], [], [])
            if self._wake_r in ready:
                self._wake_r.recv(64)
                while not self._commands.empty():
                    action, done = self._commands.get()
                    try:
                        action()
                    finally:
                        done.set()
                if self._closed:
                    return
            elif self._conn is not None and self._conn in ready:
                self._read_client(self._conn)
            elif self._listener is not None and self._listener in ready:
                self._conn, peer = self._listener.accept()
                self.connections += 1
                log.debug("simulated printer: client %s:%d", *peer)

    def _read_client(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if self._vanish_at is not None and len(self._received) + len(data) >= self._vanish_at:
            self._receive(data[: self._vanish_at - len(self._received)])
            self._vanish()
            return
        if not data:  # the client is done with this job
            conn.close()
            self._conn = None
            return
        printed = len(self._jobs)
        answers = self._receive(data)
        if self._lose_answers and len(self._jobs) > printed:
            # The job is on paper; its status answer is lost with the connection.
            self._lose_answers -= 1
            self._reset(conn)
            return
        if answers:
            with contextlib.suppress(OSError):
                conn.sendall(answers)

    def _reset(self, conn: socket.socket) -> None:
        """Close the client's connection with RST, as a dropped link looks to the client."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        self._conn = None

    def _vanish(self) -> None:
        self._vanish_at = None
        self._power_cycle()  # first: whoever sees the reset may look at `torn` at once
        # The listener goes before the reset: a client that sees the reset and reconnects
        # at once must be refused, not queued on a listener about to close (which then
        # resets it: "connection lost" where a dead printer refuses).
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._conn is not None:
            # Linger 0: close() sends RST, as a printer losing power mid-job would look.
            self._reset(self._conn)

    def _shut(self) -> None:
        for sock in (self._conn, self._listener):
            if sock is not None:
                sock.close()
        self._conn = self._listener = None


class SimSerialPrinter(_SimPrinterBase):
    """A serial receipt printer behind a pty: configure `port` (the /dev/pts/N path)."""

    def __init__(self, *, columns: int = 42) -> None:
        super().__init__(columns)
        self._master, self._slave = os.openpty()
        # Raw, so the line discipline neither echoes nor rewrites bytes; the slave stays
        # open here so the pty survives the adapter closing and reopening the port.
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="sim-serial-printer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and close the pty; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"!")
        self._thread.join(_JOIN_SECONDS)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            os.close(fd)

    def _serve(self) -> None:
        while not self._closed:
            ready, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO while nobody holds the slave side; ours keeps it open
                continue
            answers = self._receive(data)
            if answers:
                os.write(self._master, answers)


def render_png(job: PrintedJob, columns: int = 42) -> bytes:
    """A picture of the printed job: monospace text, boxes standing for codes and images."""
    from PIL import Image, ImageDraw, ImageFont

    def printable(text: str) -> str:
        return text

    try:  # DejaVu Sans Mono where installed (it has the euro sign) ...
        font: Any = ImageFont.truetype("DejaVuSansMono.ttf", 13)
        char_w, char_h = round(font.getlength("M")), sum(font.getmetrics()) + 2
    except OSError:  # ... else Pillow's own bitmap font, which draws Latin-1 only
        font = ImageFont.load_default_imagefont()
        left, top, right, bottom = font.getbbox("M")
        char_w, char_h = right - left, bottom - top + 4

        def printable(text: str) -> str:
            return text.encode("latin-1", errors="replace").decode("latin-1")

    margin, paper_w = 8, columns * char_w
    rows: list[Image.Image] = []
    for block in job.blocks:
        if block.kind == "text":
            row = Image.new("L", (max(1, char_w * len(block.text)), char_h), 255)
            for dx in range(2 if block.style.bold else 1):  # bold: strike twice, offset
                ImageDraw.Draw(row).text((dx, 1), printable(block.text), font=font, fill=0)
            size = (row.width * block.style.width, char_h * block.style.height)
            row = row.resize(size, Image.Resampling.NEAREST)
        else:
            side = char_h * (3 if block.kind == "barcode" else 8)
            label = printable(f"[{block.kind}] {block.text}")
            row = Image.new("L", (min(paper_w, max(side, char_w * len(label) + 8)), side), 255)
            draw = ImageDraw.Draw(row)
            draw.rectangle((0, 0, row.width - 1, side - 1), outline=0)
            draw.text((4, side // 2 - char_h // 2), label, font=font, fill=0)
        rows.append(row)
    height = max(sum(row.height for row in rows), char_h) + 2 * margin
    page = Image.new("L", (paper_w + 2 * margin, height), 255)
    y = margin
    for block, row in zip(job.blocks, rows, strict=True):
        slack = max(0, paper_w - row.width)
        x = {"left": 0, "center": slack // 2, "right": slack}[block.style.align]
        page.paste(row, (margin + x, y))
        y += row.height
    out = io.BytesIO()
    page.save(out, format="PNG")
    return out.getvalue()
