"""NfcpyReader: NFC cards and staff badges read with nfcpy, posted as CardTapped.

Supported readers (nfcpy 1.0.4 drivers), by the `path` setting:

- `usb`: the first supported USB reader; `usb:VVVV:PPPP` picks one by vendor and
  product, `usb:BBB:DDD` by bus and device number. Known to work: ACS ACR122U
  (072f:2200), Sony RC-S380 (054c:06c1, 054c:06c3), Sony RC-S330/360/370 (054c:02e1),
  NXP PN533 boards and SCM SCL3711/3712 (PN533), PN531 readers. On Linux the kernel's
  `pn533_usb` module claims these readers first: blacklist it, and give the appliance
  user access to the USB device with a udev rule.
- `tty:USB0:pn532`: a PN532 board on a serial port (`/dev/ttyUSB0`; `tty:AMA0:pn532` is
  the Pi's own UART); `tty:USB0:arygon` for Arygon readers.
- `udp:127.0.0.1:PORT`: nfcpy's simulated RF link, polled for Type A only;
  `appliance.drivers.sim.nfc_tag` plays the card on the far side.

Tags: NFC Forum Type 1-4 (NTAG and MIFARE Ultralight, FeliCa, DESFire, ...). The UID is
the tag's identifier (the IDm for FeliCa); phones and bank cards may show a random one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import nfc
import nfc.clf
import nfc.tag

from appliance.core.clock import Clock, SystemClock
from appliance.core.devices import CardTapped, NdefRecord
from appliance.device_settings import NfcReaderSettings
from appliance.drivers.base import DeviceBase
from appliance.drivers.ndef import parse_message
from appliance.drivers.worker import ReconnectingWorker
from appliance.errors import DeviceError

log = logging.getLogger(__name__)

# What the reader polls for: Type A (NTAG, MIFARE, DESFire), Type B, FeliCa at 212 kbps.
DEFAULT_TARGETS = ("106A", "106B", "212F")
# nfcpy's udp driver waits a whole second for an answer per technology, and the simulated
# card is Type A: polling the others there would only slow every tap and every close.
UDP_TARGETS = ("106A",)

FrontendFactory = Callable[[str], Any]


class NfcpyReader(DeviceBase):
    """An NFC reader on nfcpy's ContactlessFrontend; posts CardTapped from its own thread.

    A card held on the reader is read once: the reader waits for it to leave, and the same
    UID coming back within `debounce_ms` of leaving (a wobbly hand) is not posted again.
    A reader that cannot be opened or stops answering is reported offline and reopened.
    """

    kind = "card_reader"

    def __init__(
        self,
        name: str,
        path: str = "usb",
        *,
        debounce_ms: int = 1500,
        targets: Sequence[str] | None = None,
        clock: Clock | None = None,
        frontend_factory: FrontendFactory | None = None,
    ) -> None:
        super().__init__(name, address=path)
        self._path = path
        self._debounce = debounce_ms / 1000
        if targets is None:
            targets = UDP_TARGETS if path.startswith("udp") else DEFAULT_TARGETS
        self._targets = list(targets)
        self._clock: Clock = clock or SystemClock()
        # nfc.ContactlessFrontend(path) opens the reader or raises IOError (ENODEV).
        self._frontend_factory: FrontendFactory = frontend_factory or nfc.ContactlessFrontend
        self._worker: ReconnectingWorker | None = None
        self._last_uid = ""
        self._last_seen = float("-inf")

    @classmethod
    def from_settings(
        cls, name: str, settings: NfcReaderSettings, built: Mapping[str, DeviceBase]
    ) -> NfcpyReader:
        """The reader at `settings.path`."""
        return cls(name, settings.path, debounce_ms=settings.debounce_ms)

    def _start(self) -> None:
        self._set_health("offline", f"opening {self._path}")
        self._worker = ReconnectingWorker(f"nfc-{self.name}", self._session, self._on_lost)
        self._worker.start()

    def _stop(self) -> None:
        if self._worker is not None:
            # connect() looks at the stop flag between polls, so this returns within one
            # poll round (about a second on the udp link, milliseconds on a real reader).
            self._worker.stop()
            self._worker = None

    def _on_lost(self, err: BaseException) -> None:
        self._set_health("offline", str(err))

    def _session(self, stopping: threading.Event) -> None:
        """Open the reader and poll for cards until stopped; raises when the reader is lost."""
        try:
            clf = self._frontend_factory(self._path)
        except (OSError, ValueError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise DeviceError(f"no NFC reader at {self._path}: {reason}") from err
        try:
            log.info("nfc reader %s: using %s", self.name, clf)
            self._set_health("ok")
            options = {
                "targets": self._targets,
                "on-connect": self._on_connect,
                "on-release": self._on_release,
                "beep-on-connect": False,
                # One poll round per call, so the stop flag is seen between rounds.
                "iterations": 1,
                "interval": 0.1,
            }
            while not stopping.is_set():
                try:
                    result = clf.connect(rdwr=options, terminate=stopping.is_set)
                except OSError as err:  # the reader was gone before the poll began
                    raise DeviceError(f"NFC reader at {self._path} lost: {err}") from err
                if result is False and not stopping.is_set():
                    # nfcpy logs an IOError during a poll and returns False: the reader is gone.
                    raise DeviceError(f"NFC reader at {self._path} stopped answering")
        finally:
            clf.close()

    def _on_connect(self, tag: Any) -> bool:
        """Read the card and post it; True tells nfcpy to wait until the card leaves."""
        uid = bytes(tag.identifier).hex().upper()
        # Read before deciding: a card is read the same way every time it is presented.
        records = self._records(tag, uid)
        now = self._clock.monotonic()
        repeated = uid == self._last_uid and now - self._last_seen < self._debounce
        self._last_uid, self._last_seen = uid, now
        if repeated:
            log.debug("nfc reader %s: %s again within the debounce time", self.name, uid)
        else:
            self._post(CardTapped(self.name, uid, records))
        return True

    def _on_release(self, tag: Any) -> bool:
        # The debounce time runs from when the card left, so a held card never repeats.
        self._last_seen = self._clock.monotonic()
        return True

    def _records(self, tag: Any, uid: str) -> tuple[NdefRecord, ...]:
        """The tag's NDEF records; none when it has none or could not be read in time."""
        try:
            ndef = tag.ndef
            if ndef is None:
                return ()
            return parse_message(bytes(ndef.octets))
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as err:
            log.warning(
                "nfc reader %s: card %s left before its data was read: %s", self.name, uid, err
            )
        except DeviceError as err:
            log.warning("nfc reader %s: card %s: %s", self.name, uid, err)
        return ()
