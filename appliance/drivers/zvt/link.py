"""The port both ZVT transports fill: whole APDUs in and out, whatever carries them."""

from __future__ import annotations

from typing import Protocol

from appliance.drivers.zvt.apdu import Apdu


class ZvtLink(Protocol):
    """One connection to the other side of a ZVT exchange; one thread sends and receives."""

    def send(self, apdu: Apdu) -> None:
        """Send one APDU; serial: waits for the ACK (T2), re-sends on NAK at most twice.

        Raises ZvtLinkError when the link failed or the peer refused, ZvtTimeout for no ACK.
        """
        ...

    def receive(self, timeout: float) -> Apdu:
        """The next whole APDU; ZvtTimeout when none within timeout; ZvtLinkError when closed."""
        ...

    def close(self) -> None:
        """Close the link; safe twice; unblocks a receive() on another thread."""
        ...
