"""The emulated ZVT terminal's part: the Steps scripting the customer, and the Session playing them.

The emulator builds its bytes from the message layer only (apdu, bmp, fields, tlv), never
from the adapter's command and message modules: a misreading of the spec on one side must
not be mirrored on the other. Section numbers are PA00P015's (commands), PA00P016's (timers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from appliance.drivers.sim.zvt_bank import (
    ABORTED,
    ADMIN_RECEIPT,
    CUSTOMER_RECEIPT,
    DECLINED,
    FUNCTION_NOT_POSSIBLE,
    PROTOCOL_ERROR,
    WRONG_CURRENCY,
    Entry,
    Kind,
    State,
    day_receipt_lines,
    day_status_information,
    print_messages,
    receipt_lines,
    status_information,
)
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.bmp import decode_bmps, encode_bmp
from appliance.drivers.zvt.fields import decode_bcd, encode_llvar
from appliance.drivers.zvt.link import ZvtLink
from appliance.drivers.zvt.tlv import decode_tlv
from appliance.errors import ZvtError, ZvtLinkError, ZvtTimeoutError

if TYPE_CHECKING:
    from appliance.drivers.sim.zvt_terminal import ZvtEmulator

log = logging.getLogger(__name__)

Outcome = Literal["approve", "decline", "customer_abort", "approve_offline", "silent"]
Drop = Literal["", "before_status", "at_status", "after_ack"]

T3 = 5.0  # PA00P016: seconds the PT waits for the ECR's acknowledgement
SOFTWARE_VERSION = b"2.14.15"  # a Status Enquiry's Completion carries it (PA00P015 2.19)
DEFAULT_CONFIG = 0x86  # the config byte before Registration and after Log-Off (2.1, 2.3)
IDLE_SECONDS = 60.0  # one receive() while the ECR is master; close() ends it sooner

# The Registration config byte (PA00P015 2.1).
ECR_PRINTS_PAYMENT = 0x02
ECR_PRINTS_ADMIN = 0x04
INTERMEDIATE_STATUS = 0x08  # the PT sends 04 FF
ECR_PRINT_TYPE = 0x80  # with tag 26 allowing it: receipts as one 06 D3 text block

# TLV tags of Registration: 26 lists the commands the ECR takes, each in a tag 0A.
TAG_PERMITTED_COMMANDS, TAG_COMMAND = 0x26, 0x0A
PRINT_TEXT_BLOCK = bytes((0x06, 0xD3))

ACK = Apdu(0x80, 0x00)
ABORT_COMMAND = (0x06, 0xB0)
# Intermediate statuses (PA00P015 3.7), in the order a customer meets them.
INSERT_CARD = 0x0A
WATCH_PIN_PAD = 0x01
WAITING_FOR_HOST = 0x04  # "PT is waiting for response from FEP"
PLEASE_WAIT = 0x0E
CUSTOMER_STATUSES = (INSERT_CARD, WATCH_PIN_PAD, WAITING_FOR_HOST, PLEASE_WAIT)


def _negative(code: int, data: bytes = b"") -> Apdu:
    """`84 xx 00`, or `84 xx` with data: never a bare `84 xx` (PA00P015 chapter 2)."""
    return Apdu(0x84, code, data)


@dataclass(frozen=True, slots=True)
class Step:
    """What the emulated customer and card do for the next payment/refund/reversal."""

    outcome: Outcome = "approve"
    result_code: int = DECLINED  # for "decline": the code in 27 and in 06 1E
    intermediate: int = 1  # how many 04 FF before the result (each restarts the ECR's T4)
    pause: float = 0.02  # seconds after each 04 FF: the customer's time, the abort window
    drop: Drop = ""
    # before_status: book nothing, close the link after the 80 00 00 and the 04 FF
    # at_status: book, send the Status-Information, close before the ECR's ack arrives
    # after_ack: book, send the Status-Information, wait for the ack, close before the rest
    abort: Literal["accept", "refuse"] = "accept"  # the answer to an 06 B0 during this step
    receipts: bool = True  # send the receipt (06 D1 lines, or 06 D3 when allowed)
    card: str = "girocard"  # brand; BMP 22 keeps the first 6 and last 4 digits

    def __post_init__(self) -> None:
        if self.outcome == "decline" and not 0 < self.result_code <= 0xFF:
            raise ValueError("a decline needs a non-zero result code of one byte")
        if self.intermediate < 0 or self.pause < 0:
            raise ValueError("intermediate and pause cannot be negative")


class Script:
    """The queue of Steps; an empty queue plays Step() (approve). Thread-safe."""

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self._lock = threading.Lock()
        self._steps: deque[Step] = deque(steps)

    def add(self, steps: Iterable[Step]) -> None:
        """Queue `steps` after those already waiting."""
        with self._lock:
            self._steps.extend(steps)

    def next(self) -> Step:
        """The step for the transaction starting now."""
        with self._lock:
            return self._steps.popleft() if self._steps else Step()


class Session:
    """One ECR connection: its commands in, the PT's answers out, on the session's thread."""

    def __init__(self, emulator: ZvtEmulator, link: ZvtLink) -> None:
        self.pt = emulator
        self.link = link
        self.abort_asked = False
        self.cancellable = False  # an 06 B0 now may end the transaction (else: 84 83 00)
        self.refusal: Apdu | None = None  # the answer to a command refused before its ack
        self.handlers: dict[tuple[int, int], Callable[[bytes], None]] = {
            (0x06, 0x00): self.registration,
            (0x06, 0x01): self.authorization,
            (0x06, 0x02): self.log_off,
            (0x06, 0x20): self.repeat_receipt,
            (0x06, 0x30): self.reversal,
            (0x06, 0x31): self.refund,
            (0x06, 0x50): self.end_of_day,
            (0x06, 0x70): self.diagnosis,
            (0x05, 0x01): self.status_enquiry,
        }

    def run(self) -> None:
        """Serve commands until the link ends, the ECR misses T3, or a Step drops it."""
        try:
            while True:
                try:
                    apdu = self.receive(IDLE_SECONDS)
                except ZvtTimeoutError:
                    continue
                self.pt.set_busy(True)
                try:
                    self.command(apdu)
                finally:
                    self.pt.set_busy(False)
        except ZvtError as err:
            log.info("emulated ZVT terminal: session ended: %s", err)
        except Exception:
            # Whatever an ECR sends must not stop the terminal: this session ends, the
            # next connection is served.
            log.exception("emulated ZVT terminal: session failed")

    def command(self, apdu: Apdu) -> None:
        """Answer one command sent while the ECR is master."""
        if apdu.cls in (0x80, 0x84):
            return  # a stray acknowledgement: nothing to answer
        handler = self.handlers.get(apdu.command)
        if handler is None:
            # Unknown commands, and an Abort 06 B0 outside a payment: "function not possible".
            self.link.send(_negative(FUNCTION_NOT_POSSIBLE))
            return
        self.refusal = None
        try:
            handler(apdu.data)
        except ZvtError:
            if self.refusal is None:
                raise
            self.link.send(self.refusal)

    def refuse(self, answer: Apdu) -> ZvtError:
        """The error that ends a command with `answer` instead of its 80 00 00."""
        self.refusal = answer
        return ZvtError(f"refused with {answer.encode().hex(' ')}")

    # -- the ECR's commands (PA00P015 chapter 2) -----------------------------------------

    def registration(self, data: bytes) -> None:
        """06 00: password, config byte, [currency, [03 service byte], [06 TLV]]."""
        self.check_password(data)
        if len(data) < 4:
            raise self.refuse(_negative(PROTOCOL_ERROR))
        config, rest = data[3], data[4:]
        currency = rest[:2]
        fields = self.fields(rest[2:])
        if currency and currency != self.pt.currency_code:
            raise self.refuse(self.wrong_currency())
        permitted = [
            command
            for tag, content in self.tlv(fields.get(0x06, b""))
            if tag == TAG_PERMITTED_COMMANDS
            for inner, command in self.tlv(content)
            if inner == TAG_COMMAND
        ]
        text_block = PRINT_TEXT_BLOCK in permitted and bool(config & ECR_PRINT_TYPE)
        self.pt.register(config, text_block)
        self.link.send(ACK)
        # The PT sends the currency back only if the ECR sent one (2.1).
        completion = encode_bmp(0x19, b"\x00") + encode_bmp(0x29, self.terminal_id())
        if currency:
            completion += encode_bmp(0x49, self.pt.currency_code)
        self.master(Apdu(0x06, 0x0F, completion))

    def authorization(self, data: bytes) -> None:
        """06 01: 04 amount, [49 currency], [19 payment type], [02, 01, ...]."""
        self.card_flow("payment", self.amount(self.fields(data)))

    def refund(self, data: bytes) -> None:
        """06 31: password, 04 amount, [49 currency]."""
        self.check_password(data)
        self.card_flow("refund", self.amount(self.fields(data[3:])))

    def reversal(self, data: bytes) -> None:
        """06 30: password, 87 receipt number; only today's approved payments (2.9)."""
        self.check_password(data)
        receipt = self.fields(data[3:]).get(0x87)
        if receipt is None:
            raise self.refuse(_negative(PROTOCOL_ERROR))
        original, refusal = self.pt.bank.reversible(self.bcd(receipt))
        amount = original.booked.amount if original else 0
        self.card_flow("reversal", amount, original=original, refusal=refusal)

    def end_of_day(self, data: bytes) -> None:
        """06 50: password; closes the day, so none of its payments can be reversed after."""
        self.check_password(data)
        self.link.send(ACK)
        self.intermediate(PLEASE_WAIT)
        totals = self.pt.bank.close_day(self.pt.clock())
        tid, currency = self.pt.terminal_id, self.pt.currency
        status = day_status_information(
            totals, terminal_id=tid, currency=decode_bcd(self.pt.currency_code)
        )
        self.master(Apdu(0x04, 0x0F, status))
        self.print_receipt(
            day_receipt_lines(totals, terminal_id=tid, currency=currency), admin=True
        )
        self.master(Apdu(0x06, 0x0F))

    def log_off(self, _data: bytes) -> None:
        """06 02: acknowledged; the config byte is back to 86."""
        self.pt.register(DEFAULT_CONFIG, False)
        self.link.send(ACK)

    def status_enquiry(self, data: bytes) -> None:
        """05 01: password; Completion with the software version (LLLVAR) and status 00."""
        self.check_password(data)
        self.link.send(ACK)
        self.master(Apdu(0x06, 0x0F, encode_llvar(SOFTWARE_VERSION, 3) + b"\x00"))

    def repeat_receipt(self, data: bytes) -> None:
        """06 20: password; the last transaction's Status-Information and receipt again."""
        self.check_password(data)
        self.link.send(ACK)
        entry = self.pt.bank.last()
        if entry is None:
            self.master(Apdu(0x06, 0x1E, bytes((FUNCTION_NOT_POSSIBLE,))))
            return
        self.master(Apdu(0x04, 0x0F, self.status_information(entry)))
        self.print_receipt(self.receipt(entry), admin=False)
        self.master(Apdu(0x06, 0x0F))

    def diagnosis(self, data: bytes) -> None:
        """06 70: [password]; a status, then Completion."""
        if data:
            self.check_password(data)
        self.link.send(ACK)
        self.intermediate(PLEASE_WAIT)
        self.master(Apdu(0x06, 0x0F))

    # -- a payment, refund or reversal, as the Step says ---------------------------------

    def card_flow(
        self,
        kind: Kind,
        amount: int,
        *,
        original: Entry | None = None,
        refusal: int = 0,
    ) -> None:
        """The customer's part, the result and its receipt (PA00P015 2.2.1-2.2.10)."""
        self.link.send(ACK)
        step = self.pt.steps.next()
        self.abort_asked, self.cancellable = False, True
        try:
            self.play(step, kind, amount, original, refusal)
        finally:
            self.abort_asked = self.cancellable = False

    def play(
        self, step: Step, kind: Kind, amount: int, original: Entry | None, refusal: int
    ) -> None:
        """What the customer and card do, as `step` says."""
        # The first status ("insert card") shows at once; the customer's time runs after it.
        for index in range(step.intermediate):
            if index and self.customer_time(step):
                return
            self.intermediate(CUSTOMER_STATUSES[index % len(CUSTOMER_STATUSES)])
        if self.customer_time(step):
            return
        if step.drop == "before_status":
            self.drop("before the Status-Information, nothing booked")
        if step.outcome == "silent":
            self.silence(step)
            return
        # From here on the result is on its way: an Abort 06 B0 comes too late (2.21).
        self.cancellable = False
        if step.outcome == "customer_abort":
            self.master(Apdu(0x06, 0x1E, bytes((ABORTED,))))
            return
        code = refusal or (step.result_code if step.outcome == "decline" else 0)
        offline = code == 0 and step.outcome == "approve_offline"
        state: State = "approved" if code == 0 else "declined"
        entry = self.pt.bank.add(
            kind,
            amount,
            state,
            offline=offline,
            card=step.card,
            code=code,
            when=self.pt.clock(),
            original_trace=original.booked.trace_number if original is not None else None,
        )
        if code == 0 and original is not None:
            self.pt.bank.set_state(original, "reversed")
        status = Apdu(0x04, 0x0F, self.status_information(entry))
        if step.drop == "at_status":
            self.link.send(status)
            self.drop("before the ECR acknowledged the Status-Information")
        if not self.report(status, entry, original):
            return
        if step.drop == "after_ack":
            self.drop("after the Status-Information was acknowledged")
        if code:
            self.master(Apdu(0x06, 0x1E, bytes((code,))))
            return
        if step.receipts:
            self.print_receipt(self.receipt(entry), admin=False)
        self.master(Apdu(0x06, 0x0F))

    def report(self, status: Apdu, entry: Entry, original: Entry | None) -> bool:
        """Send the Status-Information; False when the ECR refused it, which undoes an approval."""
        # PA00P015 2.2.6-2.2.7: a Status-Information the ECR refuses (84 xx 00: the goods
        # could not be issued) or does not take within T3 makes the PT reverse the payment
        # itself, so that the customer is never charged for goods not handed over.
        # An ECR that went away before its ack (a power cut, a crash) never took it either.
        try:
            refused = self.master(status)
        except ZvtLinkError:  # no ack within T3, or the link closed
            self.auto_reverse(entry, original)
            raise
        if not refused:
            return True
        self.auto_reverse(entry, original)
        self.master(Apdu(0x06, 0x1E, bytes((entry.result_code or ABORTED,))))
        return False

    def auto_reverse(self, entry: Entry, original: Entry | None) -> None:
        """Undo an approval the ECR never took: book the reversal, as a PT does."""
        if entry.result_code != 0:
            return
        booked = entry.booked
        log.info("emulated ZVT terminal: receipt %d reversed by itself", booked.receipt_number)
        self.pt.bank.set_state(entry, "reversed")
        if original is not None:  # a reversal the ECR never took: the payment stands
            self.pt.bank.set_state(original, "approved")
            return
        self.pt.bank.add(
            "reversal", booked.amount, "approved", offline=False, card=entry.card, code=0,
            when=self.pt.clock(), original_trace=booked.trace_number,
        )  # fmt: skip

    def customer_time(self, step: Step) -> bool:
        """Wait the step's pause, taking an Abort 06 B0; True when the transaction ended."""
        deadline = time.monotonic() + step.pause
        while not self.abort_asked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                apdu = self.receive(remaining)
            except ZvtTimeoutError:
                return False
            self.notice(apdu)
        return self.answer_abort(step)

    def silence(self, step: Step) -> None:
        """The terminal hangs: nothing more is sent until an accepted abort or the link ends."""
        while True:
            try:
                self.notice(self.receive(IDLE_SECONDS))
            except ZvtTimeoutError:
                continue
            if self.abort_asked and self.answer_abort(step):
                return

    def answer_abort(self, step: Step) -> bool:
        """Answer the ECR's 06 B0 as the step says; True when the transaction ended."""
        # The spec allows 06 B0 only while the ECR is master (2.21); many terminals take it
        # during an Authorization anyway, some answer 84 83 00: the step picks which.
        self.abort_asked = False
        if step.abort == "refuse":
            self.link.send(_negative(FUNCTION_NOT_POSSIBLE))
            return False
        self.link.send(ACK)
        self.master(Apdu(0x06, 0x1E, bytes((ABORTED,))))
        return True

    def notice(self, apdu: Apdu) -> None:
        """Something the ECR sent while the PT is master: only an abort request counts."""
        if apdu.command != ABORT_COMMAND:
            log.info("emulated ZVT terminal: ignored %02X %02X while master", *apdu.command)
        elif self.cancellable:
            self.abort_asked = True
        else:
            self.link.send(_negative(FUNCTION_NOT_POSSIBLE))

    # -- the PT as master -----------------------------------------------------------------

    def master(self, apdu: Apdu) -> int:
        """Send one message and wait T3 for its acknowledgement: 0, or the refusal's code."""
        self.link.send(apdu)
        deadline = time.monotonic() + self.pt.t3
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise ZvtTimeoutError("T3 over")
                answer = self.receive(remaining)
            except ZvtTimeoutError as err:
                raise ZvtTimeoutError(
                    f"the ECR did not acknowledge {apdu.cls:02X} {apdu.instr:02X} "
                    f"within T3 ({self.pt.t3:g} s)"
                ) from err
            if answer.cls in (0x80, 0x84):
                return 0 if answer.cls == 0x80 else answer.instr  # 84 00 is positive too
            # An 06 B0 racing the acknowledgement is answered at the next chance.
            self.notice(answer)

    def intermediate(self, status: int) -> None:
        """04 FF, if the ECR asked for intermediate statuses at Registration."""
        if self.pt.config & INTERMEDIATE_STATUS:
            self.master(Apdu(0x04, 0xFF, bytes((status,))))

    def print_receipt(self, lines: list[str], *, admin: bool) -> None:
        """Hand a receipt to the ECR, if it prints (config byte); else the PT prints it."""
        # An ECR that refuses a print message (84 xx 00: its printer cannot print) gets no
        # more of that receipt: PA00P015 (3.5, 3.6) leaves the PT's reaction open, and a PT
        # with a printer of its own prints it there. The transaction itself stands.
        if not self.pt.config & (ECR_PRINTS_ADMIN if admin else ECR_PRINTS_PAYMENT):
            return
        kind = ADMIN_RECEIPT if admin else CUSTOMER_RECEIPT
        messages = print_messages(lines, text_block=self.pt.text_block, receipt_type=kind)
        for message in messages:
            code = self.master(message)
            if code:
                log.info("emulated ZVT terminal: the ECR cannot print (84 %02X)", code)
                self.pt.printer_fault()
                return

    def drop(self, why: str) -> None:
        """Close the link as scripted: the terminal lost power or its network."""
        self.link.close()
        raise ZvtLinkError(f"dropped {why}, as scripted")

    # -- reading what the ECR sent ----------------------------------------------------------

    def receive(self, timeout: float) -> Apdu:
        """The next APDU from the ECR, recorded."""
        apdu = self.link.receive(timeout)
        self.pt.record(apdu)
        return apdu

    def check_password(self, data: bytes) -> None:
        """The command's first 3 BCD bytes; chapter 10 has no code of its own for a wrong one."""
        if len(data) < 3:
            raise self.refuse(_negative(PROTOCOL_ERROR))
        if data[:3] != self.pt.password:
            raise self.refuse(_negative(FUNCTION_NOT_POSSIBLE))

    def fields(self, data: bytes) -> dict[int, bytes]:
        """The BMPs; an unknown one is answered 84 83 00 (PA00P015 chapter 2)."""
        try:
            return dict(decode_bmps(data))
        except ZvtError as err:
            log.info("emulated ZVT terminal: refused: %s", err)
            raise self.refuse(_negative(FUNCTION_NOT_POSSIBLE)) from err

    def tlv(self, data: bytes) -> list[tuple[int, bytes]]:
        """A TLV container's items; a malformed one is refused like an unknown BMP."""
        try:
            return decode_tlv(data)
        except ZvtError as err:
            raise self.refuse(_negative(FUNCTION_NOT_POSSIBLE)) from err

    def amount(self, fields: dict[int, bytes]) -> int:
        """BMP 04, after checking BMP 49 against the terminal's currency."""
        currency = fields.get(0x49)
        if currency is not None and currency != self.pt.currency_code:
            raise self.refuse(self.wrong_currency())
        if 0x04 not in fields:
            raise self.refuse(_negative(PROTOCOL_ERROR))
        return self.bcd(fields[0x04])

    def bcd(self, value: bytes) -> int:
        """A BCD field, or the refusal of a malformed one."""
        try:
            return decode_bcd(value)
        except ZvtError as err:
            raise self.refuse(_negative(PROTOCOL_ERROR)) from err

    def wrong_currency(self) -> Apdu:
        """`84 1E 03 6F <the terminal's currency>` (PA00P015 chapter 2)."""
        return _negative(0x1E, bytes((WRONG_CURRENCY,)) + self.pt.currency_code)

    def terminal_id(self) -> bytes:
        """BMP 29: the terminal id, 4 BCD bytes."""
        return bytes.fromhex(self.pt.terminal_id)

    def status_information(self, entry: Entry) -> bytes:
        """The 04 0F data reporting `entry`."""
        code = decode_bcd(self.pt.currency_code)
        return status_information(entry, terminal_id=self.pt.terminal_id, currency=code)

    def receipt(self, entry: Entry) -> list[str]:
        """The customer receipt of `entry`."""
        return receipt_lines(entry, terminal_id=self.pt.terminal_id, currency=self.pt.currency)
