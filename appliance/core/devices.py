"""Devices as the domain sees them: health, the events they post, and their ports.

Every port speaks the domain (a Receipt, a reason to open the drawer), never bytes.
Adapters live in appliance.drivers; they post events to the EventBus from their own
threads and never touch shared state directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from appliance.core.events import Event, EventBus
from appliance.core.receipt import Receipt
from appliance.errors import DeviceError

HealthState = Literal["ok", "degraded", "offline"]
DeviceKind = Literal[
    "scanner", "printer", "drawer", "card_reader", "payment_terminal", "scale", "attendant_light"
]


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """How a device is doing, with a reason a person can act on."""

    device: str  # the configured name, e.g. "front-scanner"
    kind: DeviceKind
    state: HealthState
    reason: str = ""
    address: str = ""  # stable id: /dev/serial/by-id/..., IP:port, USB serial number


@dataclass(frozen=True, slots=True)
class DeviceHealthChanged(Event):
    """A device's health state changed."""

    health: DeviceHealth


@dataclass(frozen=True, slots=True)
class BarcodeScanned(Event):
    """A scanner read a code (a code held in its field posts once, not once per read)."""

    device: str
    code: str


@dataclass(frozen=True, slots=True)
class ScannerInputRejected(Event):
    """A scanner sent bytes that are not a code (garbage, over-long, unknown prefix)."""

    device: str
    reason: str


@dataclass(frozen=True, slots=True)
class NdefRecord:
    """One NDEF record: type name format, type and payload (text records decoded)."""

    tnf: int
    type: str
    payload: bytes
    text: str | None = None


@dataclass(frozen=True, slots=True)
class CardTapped(Event):
    """An NFC card or badge was presented (already debounced)."""

    device: str
    uid: str  # upper-case hex, e.g. "04A1B2C3D4E5F6"
    records: tuple[NdefRecord, ...] = ()


# by_hand: the open sensor saw the drawer open with no kick shortly before (a key, or force).
DrawerReason = Literal["sale", "no_sale", "remote", "selftest", "by_hand"]


@dataclass(frozen=True, slots=True)
class DrawerOpening:
    """Why the drawer is opened, and by whom (staff name for a no-sale)."""

    reason: DrawerReason
    staff: str = ""
    reference: str = ""  # sale id or command id


def check_opening(opening: DrawerOpening) -> None:
    """Refuse an opening the records could not account for (a no-sale by nobody)."""
    if opening.reason == "no_sale" and not opening.staff.strip():
        raise DeviceError("a no-sale drawer opening needs the staff member's name")


def is_unexplained(opening: DrawerOpening) -> bool:
    """An opening with neither a sale nor a reason someone gave (by hand, a no-sale nobody
    named): flagged on the till and in the reports (core/reports.py counts the same)."""
    if opening.reason == "no_sale":
        return not opening.staff.strip()
    return opening.reason == "by_hand"


@dataclass(frozen=True, slots=True)
class DrawerOpened(Event):
    """The drawer was kicked open; every opening is recorded."""

    device: str
    opening: DrawerOpening


@dataclass(frozen=True, slots=True)
class DrawerLeftOpen(Event):
    """The drawer sensor has reported open for longer than allowed."""

    device: str
    seconds: float


@dataclass(frozen=True, slots=True)
class DrawerClosed(Event):
    """The drawer sensor reports closed."""

    device: str


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    """What a printer says about itself before a print; None where it cannot tell."""

    online: bool
    paper_near_end: bool | None = None
    paper_out: bool | None = None
    cover_open: bool | None = None


@dataclass(frozen=True, slots=True)
class ReceiptPrinted(Event):
    """A receipt came out of the printer."""

    device: str
    receipt_number: str


@dataclass(frozen=True, slots=True)
class ReceiptMayHavePrinted(Event):
    """The job went to the printer but its answer was lost: staff reprint a COPY or mark it done."""

    device: str
    receipt_number: str
    job_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReceiptQueued(Event):
    """A receipt could not be printed now; it is kept and retried."""

    device: str
    receipt_number: str
    reason: str


class Device(Protocol):
    """Every adapter: a context manager with open()/close(); close() is safe twice."""

    name: str

    def open(self, bus: EventBus) -> None:
        """Start using the device; post health and events to `bus`. Never blocks long."""
        ...

    def close(self) -> None:
        """Stop and release the device; safe to call twice."""
        ...

    @property
    def health(self) -> DeviceHealth:
        """The latest health; thread-safe."""
        ...


class BarcodeSource(Device, Protocol):
    """A scanner: posts BarcodeScanned from its own thread; nothing to call."""


class ReceiptPrinter(Device, Protocol):
    """Prints receipts. Blocking: call off the main thread. Thread-safe."""

    def status(self) -> PrinterStatus:
        """Ask the printer (where the transport can read); blocks up to a second."""
        ...

    def print_receipt(self, receipt: Receipt) -> None:
        """Lay out, send and cut; raises DeviceError when it did not print.

        PrintOutcomeUnknownError when the job was sent but whether it printed is unknown.
        """
        ...

    def print_test_page(self) -> None:
        """A page that shows the printer works; raises DeviceError when it did not print."""
        ...


class CashDrawer(Device, Protocol):
    """Kicks the drawer open. Returns within the pulse length; thread-safe."""

    def kick(self, opening: DrawerOpening) -> None:
        """Open the drawer and record why; raises DeviceError when it could not."""
        ...

    @property
    def is_open(self) -> bool | None:
        """What the sensor says; None without a sensor."""
        ...


class CardReader(Device, Protocol):
    """An NFC reader: posts CardTapped from its own thread; nothing to call."""
