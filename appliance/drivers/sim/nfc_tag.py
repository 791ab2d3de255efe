"""SimNfcTag: NTAG215 cards presented over nfcpy's udp link, the far side of NfcpyReader.

The reader opens `udp:127.0.0.1:PORT`, nfcpy's simulated RF link, and this simulator
plays the card with nfcpy's own udp driver (`clf.listen()` / `clf.exchange()`). The
driver binds its card side to 0.0.0.0; here the socket is bound to 127.0.0.1 first and
handed to the driver, so nothing leaves the loopback interface.

The card answers what nfcpy asks an NXP tag: anticollision for a 7-byte UID, GET_VERSION
(an NTAG215), READ with roll-over, and NAK past the end. Anything else (AUTHENTICATE,
WRITE, HALT) makes it go mute until the reader selects it again, as a real NTAG does.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from dataclasses import dataclass, field

import ndef as ndeflib
import nfc
import nfc.clf
import nfc.clf.udp

from appliance.core.closing import Closing

log = logging.getLogger(__name__)

PAGES = 135  # NTAG215: 135 pages of 4 bytes
DATA_AREA = 0x3E * 8  # bytes of NDEF data area the capability container announces
VERSION = bytes.fromhex("0004040201001103")  # GET_VERSION answer of an NTAG215
SENS_RES = bytes.fromhex("4400")  # ATQA of a double-size-UID NTAG
SEL_RES = bytes.fromhex("00")  # SAK: Type 2 tag, no ISO-DEP
NAK = b"\x00"
LISTEN_SLICE = 0.2  # how often the card side looks at its flags while waiting
EXCHANGE_SLICE = 0.1
# After a card is taken away the reader's presence check gives up (three 0.1 s reads)
# and it polls again; a tap ends when that poll arrives, or after this long without one.
RELEASE_WAIT = 3.0


@dataclass(frozen=True, slots=True)
class SimCard:
    """A card image: its UID and its memory pages, as the reader will read them."""

    uid: bytes
    memory: bytes
    last_ndef_byte: int  # the offset of the last byte of the NDEF TLV


def ntag215(uid_hex: str, text: str | None = None) -> SimCard:
    """An NTAG215 image with `uid_hex` (7 bytes) and an NDEF text record, or an empty NDEF."""
    uid = bytes.fromhex(uid_hex)
    if len(uid) != 7 or uid[0] == 0x88:
        raise ValueError(f"an NTAG UID is 7 bytes and does not start with 88: {uid_hex!r}")
    message = b"".join(ndeflib.message_encoder([ndeflib.TextRecord(text)])) if text else b""
    if len(message) < 0xFF:
        tlv = bytes([0x03, len(message)]) + message
    else:
        tlv = b"\x03\xff" + len(message).to_bytes(2, "big") + message
    if len(tlv) + 1 > DATA_AREA:
        raise ValueError(f"{len(message)} bytes of NDEF do not fit an NTAG215")
    memory = bytearray(PAGES * 4)
    memory[0:3] = uid[0:3]
    memory[3] = 0x88 ^ uid[0] ^ uid[1] ^ uid[2]  # BCC0 includes the cascade tag
    memory[4:8] = uid[3:7]
    memory[8] = uid[3] ^ uid[4] ^ uid[5] ^ uid[6]  # BCC1
    memory[9] = 0x48  # internal byte, as shipped
    memory[12:16] = bytes([0xE1, 0x10, DATA_AREA // 8, 0x00])  # NDEF 1.0, read/write
    memory[16 : 16 + len(tlv)] = tlv
    memory[16 + len(tlv)] = 0xFE  # terminator TLV
    memory[130 * 4 : 133 * 4] = bytes.fromhex("000000BD 040000FF 00050000")  # no password
    return SimCard(uid, bytes(memory), 16 + len(tlv) - 1)


@dataclass(slots=True)
class _Presentation:
    card: SimCard
    read: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    activated: bool = False  # a reader selected the card at least once


class _LoopbackCardSide(nfc.clf.udp.Device):  # type: ignore[misc]
    """nfcpy's udp driver on a socket bound to loopback beforehand and kept for the sim's life."""

    def __init__(self, sock: socket.socket) -> None:
        # The base __init__ would make its own socket; set what the driver uses instead.
        host, port = sock.getsockname()
        self.addr = (host, port)
        self._path = f"{host}:{port}"
        self.socket = sock
        self.sent_data = self.rcvd_data = 0
        self._vendor_name = "appliance"
        self._device_name = "SimNfcTag"
        self._chipset_name = "UDP"

    def mute(self) -> None:
        """A card has no RF field to switch off; the socket stays bound."""

    def close(self) -> None:
        """The simulator owns the socket and closes it."""

    def _bind_socket(self, time_to_return: float) -> bool:
        return True  # already bound, to 127.0.0.1 rather than the driver's 0.0.0.0


class SimNfcTag(Closing):
    """The card side of an nfcpy udp link on 127.0.0.1; `tap()` presents one card.

    A context manager; `close()` is safe twice. `tap()` is thread-safe (taps queue up).
    """

    def __init__(self, port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._socket.bind(("127.0.0.1", port))
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        self._device = _LoopbackCardSide(self._socket)
        self._clf = nfc.ContactlessFrontend()
        self._clf.device = self._device
        self._cond = threading.Condition()
        self._tap_lock = threading.Lock()
        self._current: _Presentation | None = None
        self._closing = threading.Event()
        self.taps = 0  # cards the reader read completely
        self._thread = threading.Thread(target=self._run, name="sim-nfc-tag", daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        """What the reader opens: `udp:127.0.0.1:PORT`."""
        return f"udp:127.0.0.1:{self.port}"

    def tap(
        self, uid_hex: str, text: str | None = None, *, hold: float = 0.0, timeout: float = 5.0
    ) -> bool:
        """Present a card until the reader has read it (or `timeout`), keep it `hold` s, remove it.

        Returns whether the reader read the whole NDEF message. When it returns the card
        is gone and the reader has noticed (it polls for cards again), so taps never blur.
        """
        card = ntag215(uid_hex, text)
        with self._tap_lock:
            presentation = _Presentation(card)
            with self._cond:
                if self._closing.is_set():
                    raise RuntimeError("the simulator is closed")
                self._current = presentation
                self._cond.notify_all()
            read = presentation.read.wait(timeout)
            if read and hold > 0:
                self._closing.wait(hold)
            with self._cond:
                self._current = None
            presentation.done.wait(timeout)
            if read:
                self.taps += 1
            return read

    def close(self) -> None:
        """Stop answering and release the port; safe to call twice."""
        if self._closing.is_set():
            return
        with self._cond:
            self._closing.set()
            self._current = None
            self._cond.notify_all()
        self._thread.join(timeout=5.0)
        self._socket.close()

    def _presented(self, presentation: _Presentation) -> bool:
        with self._cond:
            return self._current is presentation

    def _run(self) -> None:
        while not self._closing.is_set():
            with self._cond:
                if self._current is None:
                    self._cond.wait(LISTEN_SLICE)
                presentation = self._current
            if presentation is None:
                continue
            try:
                # Polls that came while no card was there stay queued: the newest may be
                # the reader's current one, answered at once. Older ones are answered to
                # sockets the reader has already closed, which does no harm.
                self._present(presentation)
                if presentation.activated:
                    self._await_poll()
            except Exception:
                log.exception("simulated card %s failed", presentation.card.uid.hex().upper())
            finally:
                presentation.done.set()
            # Wait for tap() to take the card away before looking for the next one.
            with self._cond:
                while self._current is presentation:
                    self._cond.wait(LISTEN_SLICE)

    def _await_poll(self) -> None:
        """Wait until the reader polls for a card again: it has let go of the last one."""
        deadline = time.monotonic() + RELEASE_WAIT
        while not self._closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not select.select([self._socket], [], [], min(left, LISTEN_SLICE))[0]:
                continue
            frame = self._socket.recv(1024, socket.MSG_PEEK).split()
            if len(frame) == 2 and (frame[1] in (b"26", b"52") or frame[0].endswith((b"B", b"F"))):
                # REQA/WUPA, or a Type B / FeliCa poll: left queued, so that the next card
                # answers it while the reader still waits for an answer.
                return
            self._socket.recv(1024)  # the end of the last card's conversation

    def _present(self, presentation: _Presentation) -> None:
        """Answer activations and commands for one card until it is taken away."""
        card = presentation.card
        while self._presented(presentation):
            target = nfc.clf.LocalTarget(
                "106A", sens_res=SENS_RES, sdd_res=card.uid, sel_res=SEL_RES
            )
            sent_before = self._device.sent_data
            activated = self._clf.listen(target, LISTEN_SLICE)
            if activated is None or not self._presented(presentation):
                continue
            if self._device.sent_data == sent_before:
                # The udp driver takes any frame as the first command; a frame that came
                # without an anticollision answered now belongs to an older activation.
                continue
            presentation.activated = True
            command: bytes | None = bytes(activated.tt2_cmd)
            while command is not None:
                response = self._respond(presentation, command)
                if response is None:
                    break  # mute until selected again
                command = self._next_command(presentation, response)

    def _next_command(self, presentation: _Presentation, response: bytes) -> bytes | None:
        """Send `response` and wait for the reader's next command; None when the link ends."""
        send: bytes | None = response
        while self._presented(presentation):
            try:
                command = self._clf.exchange(send, EXCHANGE_SLICE)
            except nfc.clf.TimeoutError:
                send = None  # answered already; keep waiting while the card is held
                continue
            except nfc.clf.CommunicationError:
                return None  # RF off: the reader will activate the card again
            return None if command is None else bytes(command)
        return None

    def _respond(self, presentation: _Presentation, command: bytes) -> bytes | None:
        """The card's answer to one command; None to go mute."""
        card = presentation.card
        if command[0] == 0x30 and len(command) == 2:  # READ: four pages, rolling over
            page = command[1]
            if page >= PAGES:
                return NAK
            start = page * 4
            data = (card.memory + card.memory)[start : start + 16]
            if start <= card.last_ndef_byte < start + 16:
                presentation.read.set()
            return data
        if command == b"\x60":  # GET_VERSION
            return VERSION
        log.debug("simulated card: no answer to %s", command.hex())
        return None
