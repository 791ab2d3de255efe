"""One ZVT exchange over a ZvtLink: the command, the PT's `80 00 00`, then the ECR as slave.

PA00P015 chapter 2: the ECR sends a command and expects `80 00 00` within T3 (5 s); a
negative answer `84 xx` refuses it. Then the PT is master: it sends Intermediate Status,
Status-Information, receipts and finally Completion `06 0F` or Abort `06 1E`, and the ECR
answers each with `80 00 00` within T4 (180 s, restarted by every 04 FF and 04 0F).

Threads: `run` blocks its caller and is the only one to use the link (the serial link
reads its ACKs on the thread that sends, so a second sender would steal them). `cancel`
may come from any thread: it only raises a flag, and `run` sends the Abort `06 B0` itself
between two short receives.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from appliance.core.clock import Clock, SystemClock
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.commands import Command, abort
from appliance.drivers.zvt.link import ZvtLink
from appliance.drivers.zvt.messages import (
    Abort,
    Completion,
    IntermediateStatus,
    NegativeAck,
    PositiveAck,
    PrintLine,
    PrintTextBlock,
    StatusInformation,
    parse,
)
from appliance.drivers.zvt.result_codes import PRINTER_NOT_READY, message_for
from appliance.errors import DeviceError, ZvtError, ZvtLinkError, ZvtTimeoutError

log = logging.getLogger(__name__)

T3 = 5.0  # command to its 80 00 00
T4 = 180.0  # the longest silence while the PT is master
POLL = 0.1  # receive slice: how soon a cancel() reaches the PT

ACK = Apdu(0x80, 0x00)
# The ECR's answer to a print message it cannot print: a negative answer carrying the
# result code "printer not ready" (CC). The PT then keeps the receipt for a Repeat Receipt.
PRINTER_FAULT = Apdu(0x84, PRINTER_NOT_READY)

Recorder = Callable[[StatusInformation], None]
ReceiptSink = Callable[[tuple[str, ...]], bool]


@dataclass(frozen=True, slots=True)
class Exchange:
    """How an exchange ended, with everything the PT sent that the ECR acknowledged."""

    status: StatusInformation | None = None  # the last Status-Information acknowledged
    completion: Completion | None = None
    abort_code: int | None = None  # the result code of an Abort 06 1E
    receipt_lines: tuple[str, ...] = ()
    lost: str = ""  # why the end never came: the link failed, T4 ran out, record() failed

    @property
    def ended(self) -> bool:
        """True when the PT ended the exchange itself (Completion or Abort)."""
        return not self.lost


class ZvtSession:
    """Runs exchanges over one link, one at a time; `cancel` is thread-safe."""

    def __init__(
        self,
        link: ZvtLink,
        *,
        t3: float = T3,
        t4: float = T4,
        poll: float = POLL,
        clock: Clock | None = None,
    ) -> None:
        self.link = link
        self._t3, self._t4, self._poll = t3, t4, poll
        self._clock: Clock = clock or SystemClock()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the PT to abort the running exchange; any thread; a no-op when none runs."""
        self._cancel.set()

    def run(
        self,
        command: Apdu,
        *,
        timeout: float = T4,
        record: Recorder | None = None,
        print_lines: ReceiptSink | None = None,
    ) -> Exchange:
        """Send `command` and serve the PT until it ends; see the module docstring.

        DeviceError (ZvtLinkError, ZvtTimeoutError) when the PT did not take the command: nothing
        was done. Once it did, every failure ends in an Exchange whose `lost` says why.
        """
        self._cancel.clear()
        answering = Command.of(command)
        self._send_command(command, answering)
        return _Slave(self, answering, min(self._t4, timeout), record, print_lines).serve()

    # -- the caller's thread ------------------------------------------------------------

    def _send_command(self, command: Apdu, answering: Command) -> None:
        self.link.send(command)
        apdu = self.link.receive(self._t3)
        try:
            answer = parse(apdu, answering)
        except ZvtError as err:
            raise ZvtError(f"terminal answered {answering.name} wrongly: {err}") from err
        if isinstance(answer, NegativeAck):
            # Refused (84 xx): the PT does nothing; the code says why, e.g. 84 1E 03 6F 09 78.
            code = answer.result_code
            raise DeviceError(
                f"terminal refused {answering.name}: {message_for(code)} (code {code:02X})"
            )
        if not isinstance(answer, PositiveAck):
            raise ZvtError(f"terminal answered {answering.name} with {answer!r}, not 80 00")

    def _receive(self, deadline: float) -> Apdu | None:
        """The next APDU, or None after one poll slice; ZvtTimeoutError once `deadline` passed."""
        left = deadline - self._clock.monotonic()
        if left <= 0:
            raise ZvtTimeoutError("no message from the terminal within T4")
        try:
            return self.link.receive(min(self._poll, left))
        except ZvtTimeoutError:
            return None


class _Slave:
    """The PT is master: answer what it sends until Completion or Abort."""

    def __init__(
        self,
        session: ZvtSession,
        answering: Command,
        t4: float,
        record: Recorder | None,
        print_lines: ReceiptSink | None,
    ) -> None:
        self._session, self._link = session, session.link
        self._answering = answering
        self._t4 = t4
        self._record, self._print = record, print_lines
        self._clock = session._clock
        self._status: StatusInformation | None = None
        self._lines: list[str] = []
        self._abort_sent = False
        self._pending: Apdu | None = None  # received early, served next

    def serve(self) -> Exchange:
        """Answer the PT's messages until it ends the exchange or the exchange is lost."""
        deadline = self._clock.monotonic() + self._t4
        while True:
            try:
                self._maybe_abort()
                apdu, self._pending = self._pending, None
                if apdu is None:
                    apdu = self._session._receive(deadline)
                if apdu is None:
                    continue
                message = parse(apdu, self._answering)
                deadline, end = self._answer(message, deadline)
            except ZvtTimeoutError as err:
                return self._lost(f"the terminal went silent: {err}")
            except ZvtLinkError as err:
                return self._lost(f"the link to the terminal failed: {err}")
            except ZvtError as err:
                # Unreadable: its meaning (maybe the result) is unknown, so is the outcome.
                return self._lost(f"the terminal sent what cannot be read: {err}")
            if end is not None:
                return end

    def _answer(self, message: object, deadline: float) -> tuple[float, Exchange | None]:
        match message:
            case IntermediateStatus(timeout_minutes=minutes):
                self._link.send(ACK)
                if minutes:
                    self._t4 = minutes * 60.0  # the PT asks for this much time (PA00P015 3.7)
                return self._clock.monotonic() + self._t4, None
            case StatusInformation():
                # Kept even if the ack never goes out: recovery needs its receipt number.
                self._status = message
                if self._record is not None:
                    try:
                        self._record(message)
                    except Exception as err:  # any failure keeps the ack back
                        # Unacknowledged, the PT reverses the payment itself; it may also have
                        # gone through before that: the outcome is unknown, never assumed.
                        return deadline, self._lost(f"the answer could not be recorded: {err}")
                if not self._still_open():
                    # The PT dropped the link before it could have our ack: it reverses the
                    # payment itself, or it went through; nobody can say which.
                    why = "the link closed before the answer could be acknowledged"
                    return deadline, self._lost(why)
                self._link.send(ACK)
                return self._clock.monotonic() + self._t4, None
            case PrintLine(text=text):
                self._printed((text,))
            case PrintTextBlock(lines=lines):
                self._printed(lines)
            case Completion():
                self._link.send(ACK)
                return deadline, self._end(completion=message)
            case Abort(result_code=code):
                self._link.send(ACK)
                return deadline, self._end(abort_code=code)
            case PositiveAck():
                log.info("terminal accepted the abort of %s", self._answering.name)
            case NegativeAck(code=code):
                # 84 83 00 (or silence): the PT will not abort now; the payment goes on.
                log.info("terminal refused the abort (%02X); waiting for its end", code)
        return deadline, None

    def _still_open(self) -> bool:
        """Look, without waiting, whether the PT closed the link while the answer was recorded.

        An acknowledgement written into a link the PT already closed is lost, yet the write
        succeeds; only a look first tells the two apart. Whatever APDU it finds (the PT
        should wait for the ack, but may not) is kept and served next.
        """
        try:
            self._pending = self._link.receive(0.0)
        except ZvtTimeoutError:
            return True
        except ZvtLinkError:
            return False
        return True

    def _printed(self, lines: tuple[str, ...]) -> None:
        self._lines += lines
        printed = True
        if self._print is not None:
            try:
                printed = self._print(lines)
            except Exception as err:  # a broken printer is a print fault
                log.warning("terminal receipt not printed: %s", err)
                printed = False
        self._link.send(ACK if printed else PRINTER_FAULT)

    def _maybe_abort(self) -> None:
        # Once the result is known there is nothing left to abort.
        if self._session._cancel.is_set() and not self._abort_sent and self._status is None:
            self._abort_sent = True
            log.info("asking the terminal to abort %s", self._answering.name)
            self._link.send(abort())

    def _end(self, completion: Completion | None = None, abort_code: int | None = None) -> Exchange:
        return Exchange(self._status, completion, abort_code, tuple(self._lines))

    def _lost(self, why: str) -> Exchange:
        log.warning("ZVT %s: %s", self._answering.name, why)
        self._link.close()  # a half-done exchange leaves the link in an unknown state
        return Exchange(self._status, receipt_lines=tuple(self._lines), lost=why)
