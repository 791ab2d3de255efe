"""The `[devices.NAME]` tables: one typed struct per kind of device, chosen by `kind`."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Milliseconds = Annotated[int, msgspec.Meta(ge=0, le=600_000)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=86_400)]
TcpPort = Annotated[int, msgspec.Meta(ge=1, le=65_535)]

# A scanner's re-read of the same code less than this after the previous read is that code
# still held in the field; a longer gap means the item was presented again and counts.
# Presentation scanners re-read a held symbol every 33 to 100 ms (10 to 30 reads a
# second): 200 ms bridges a missed frame or two, and is shorter than the quickest a hand
# takes one item out of the field and the next one in (a 0.35 s rhythm counts every item).
HOLD_GAP_MS = 200
# Past a second, a customer putting down the same item twice loses one of them.
HoldGap = Annotated[int, msgspec.Meta(ge=0, le=1000)]


class _Device(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="kind"
):
    """A device table; `kind` picks the adapter from the driver registry."""


class SerialScannerSettings(_Device, frozen=True, tag="serial_scanner"):
    """A barcode scanner on a serial port (RS-232 or USB CDC/ACM)."""

    port: str  # a stable path: /dev/serial/by-id/... (never /dev/ttyACM0, which moves)
    baudrate: int = 9600
    prefix: str = ""  # stripped from the front of every code
    suffix: str = ""  # stripped from the end, before the terminator
    terminator: Literal["\r", "\n", "\r\n"] = "\r"
    max_length: Annotated[int, msgspec.Meta(ge=8, le=4096)] = 128
    hold_gap_ms: HoldGap = HOLD_GAP_MS
    debounce_ms: Milliseconds | None = None  # the old name of a wrong rule: read, ignored


class HidScannerSettings(_Device, frozen=True, tag="hid_scanner"):
    """A USB keyboard-wedge scanner read through evdev, grabbed so the UI never sees it."""

    device: str  # /dev/input/by-id/usb-...-event-kbd
    layout: Literal["us", "de"] = "us"
    hold_gap_ms: HoldGap = HOLD_GAP_MS
    debounce_ms: Milliseconds | None = None  # the old name of a wrong rule: read, ignored


class EscposPrinterSettings(_Device, frozen=True, tag="escpos_printer"):
    """An ESC/POS receipt printer over the network, a serial port or USB."""

    transport: Literal["network", "serial", "usb"] = "network"
    host: str = ""
    port: TcpPort = 9100
    serial_port: str = ""
    baudrate: int = 19200
    usb_vendor: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)] = 0
    usb_product: Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)] = 0
    profile: str = "TM-T88V"
    timeout: Seconds = 5.0
    retry_seconds: Seconds = 15.0
    header: tuple[str, ...] = ()
    footer: tuple[str, ...] = ("Thank you!",)

    def __post_init__(self) -> None:
        if self.transport == "network" and not self.host:
            raise ValueError("host: a network printer needs its address")
        if self.transport == "serial" and not self.serial_port:
            raise ValueError("serial_port: a serial printer needs its port")
        if self.transport == "usb" and not (self.usb_vendor and self.usb_product):
            raise ValueError("usb_vendor: a USB printer needs usb_vendor and usb_product")

    @property
    def address(self) -> str:
        """The stable id of the printer."""
        if self.transport == "network":
            return f"{self.host}:{self.port}"
        if self.transport == "serial":
            return self.serial_port
        return f"usb:{self.usb_vendor:04x}:{self.usb_product:04x}"


class GpioDrawerSettings(_Device, frozen=True, tag="gpio_drawer"):
    """A cash drawer kicked by a GPIO pulse, with an optional open sensor."""

    pin: int | str  # BCM number or a gpiozero pin name like "GPIO17"
    active_high: bool = True
    pulse_ms: Annotated[int, msgspec.Meta(ge=10, le=1000)] = 120
    sensor_pin: int | str | None = None
    sensor_open_when_high: bool = True
    left_open_seconds: Seconds = 30.0


class PrinterDrawerSettings(_Device, frozen=True, tag="printer_drawer"):
    """A cash drawer plugged into a receipt printer's kick port (ESC p)."""

    printer: str  # the name of an escpos_printer device
    kick_pin: Literal[2, 5] = 2
    pulse_ms: Annotated[int, msgspec.Meta(ge=10, le=510)] = 100


class NfcReaderSettings(_Device, frozen=True, tag="nfc_reader"):
    """An NFC reader through nfcpy: "usb", "usb:072f:2200", "tty:ttyUSB0:pn532", "udp:..."."""

    path: str = "usb"
    debounce_ms: Milliseconds = 1500


class ZvtTerminalSettings(_Device, frozen=True, tag="zvt_terminal"):
    """A card terminal speaking ZVT (PA00P015/PA00P016), over TCP/IP or a serial line."""

    transport: Literal["tcp", "serial"] = "tcp"
    host: str = ""
    port: TcpPort = 20007
    serial_port: str = ""  # a stable path: /dev/serial/by-id/...
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = 9600
    password: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")] = "000000"
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "EUR"
    print_receipts: bool = True  # the till prints the terminal's receipts (else the terminal)
    connect_timeout: Seconds = 5.0

    def __post_init__(self) -> None:
        if self.transport == "tcp" and not self.host:
            raise ValueError("host: a ZVT terminal on TCP/IP needs its address")
        if self.transport == "serial" and not self.serial_port:
            raise ValueError("serial_port: a ZVT terminal on a serial line needs its port")

    @property
    def address(self) -> str:
        """The stable id of the terminal."""
        return f"{self.host}:{self.port}" if self.transport == "tcp" else self.serial_port


class SerialScaleSettings(_Device, frozen=True, tag="serial_scale"):
    """A checkout scale on a serial port speaking the Mettler Toledo 8217 protocol, in kg."""

    port: str  # a stable path: /dev/serial/by-id/... (never /dev/ttyUSB0, which moves)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200] = 9600
    # 8217 scales ship set to 7 data bits, even parity; some can be set to 8 bits, none.
    bytesize: Literal[7, 8] = 7
    parity: Literal["E", "O", "N"] = "E"
    answer_timeout: Annotated[float, msgspec.Meta(ge=0.1, le=10.0)] = 1.0
    # "checkout": the scale goods sold by weight are weighed on; "bagging": the one under
    # the bagging area, read by the bagging-area check ([bagging] in the settings).
    role: Literal["checkout", "bagging"] = "checkout"


class AttendantLightSettings(_Device, frozen=True, tag="attendant_light"):
    """A light on the kiosk (a pole lamp through a relay or transistor) on one GPIO pin."""

    pin: int | str  # BCM number or a gpiozero pin name like "GPIO22"
    active_high: bool = True
    # Flashing: on and off times. Around 1 Hz reads as "urgent" across a store floor and
    # stays under the 3 flashes a second that accessibility guidance warns about.
    flash_on_ms: Annotated[int, msgspec.Meta(ge=100, le=5000)] = 500
    flash_off_ms: Annotated[int, msgspec.Meta(ge=100, le=5000)] = 500


# Every kind, for parsing. The drivers layer gives each one its adapter and port family in
# one row (appliance.drivers.registry.DEVICE_KINDS); a test keeps the two in step.
HardwareSettings = (
    SerialScannerSettings
    | HidScannerSettings
    | EscposPrinterSettings
    | GpioDrawerSettings
    | PrinterDrawerSettings
    | NfcReaderSettings
    | ZvtTerminalSettings
    | SerialScaleSettings
    | AttendantLightSettings
)
