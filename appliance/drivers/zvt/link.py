"""The port both ZVT transports fill: whole APDUs in and out, whatever carries them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from appliance.device_settings import ZvtTerminalSettings
from appliance.drivers.zvt.apdu import Apdu
from appliance.drivers.zvt.serial_link import SerialLink
from appliance.drivers.zvt.tcp_link import TcpLink


class ZvtLink(Protocol):
    """One connection to the other side of a ZVT exchange; one thread sends and receives."""

    def send(self, apdu: Apdu) -> None:
        """Send one APDU; serial: waits for the ACK (T2), re-sends on NAK at most twice.

        Raises ZvtLinkError when the link failed or the peer refused, ZvtTimeoutError for no ACK.
        """
        ...

    def receive(self, timeout: float) -> Apdu:
        """The next whole APDU; ZvtTimeoutError when none in time; ZvtLinkError when closed."""
        ...

    def close(self) -> None:
        """Close the link; safe twice; unblocks a receive() on another thread."""
        ...


# How each `transport` of the settings opens its link.
OPENERS: dict[str, Callable[[ZvtTerminalSettings], ZvtLink]] = {
    "tcp": lambda s: TcpLink.connect(s.host, s.port, s.connect_timeout),
    "serial": lambda s: SerialLink.open_port(s.serial_port, s.baudrate),
}


def open_link(settings: ZvtTerminalSettings) -> ZvtLink:
    """Connect to the terminal the settings name; ZvtLinkError if it cannot be reached."""
    return OPENERS[settings.transport](settings)
