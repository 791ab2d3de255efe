"""Is the clock right? The kernel's own answer, before a sale is stamped with it.

A Raspberry Pi has no battery clock: it boots with the time it last saved, or 1970, until
NTP sets it. The kernel knows whether a time service (systemd-timesyncd, chrony, ntpd)
has synchronised it, or an RTC was read at boot: adjtimex(2) then clears STA_UNSYNC.
That is what `timedatectl` shows as "System clock synchronized". A clock found right
stays right for the run; until then every sale is flagged.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, cast

log = logging.getLogger(__name__)

STA_UNSYNC = 0x0040  # linux/timex.h: the clock is not synchronised
TIME_ERROR = 5  # adjtimex's return value while it is not


class Timex(ctypes.Structure):
    """struct timex of linux/timex.h (only `status` is read; the rest sizes the struct)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


@functools.cache
def _adjtimex() -> Callable[[Any], int]:
    """libc's adjtimex, looked up once: it is asked at every sale until the clock is set."""
    # The symbols the process already has: no search for a library file (find_library runs
    # ldconfig in a subprocess), nothing new loaded.
    return cast(Callable[[Any], int], ctypes.CDLL(None, use_errno=True).adjtimex)


def kernel_clock_synchronised() -> bool:
    """adjtimex(2) in read-only mode: True once a time service or an RTC set the clock."""
    timex = Timex()  # modes 0: read only, changes nothing
    state = _adjtimex()(ctypes.byref(timex))
    if state < 0:
        return False
    return state != TIME_ERROR and not timex.status & STA_UNSYNC


class ClockCheck:
    """Answers "is the clock right?" for each commit; thread-safe, cheap once it is."""

    def __init__(
        self, *, trusted: bool = False, probe: Callable[[], bool] = kernel_clock_synchronised
    ) -> None:
        self._probe = probe
        self._lock = threading.Lock()
        self._verified = trusted
        self._warned = False

    def __call__(self) -> bool:
        """True when the clock is known right; asks the kernel until it is."""
        with self._lock:
            if self._verified:
                return True
            try:
                self._verified = self._probe()
            except OSError as err:
                log.error("the clock cannot be checked: %s", err)
            if self._verified:
                log.info("the clock is synchronised: sales are no longer flagged")
            elif not self._warned:
                self._warned = True
                log.warning("the clock is not synchronised yet: sales are flagged until it is")
            return self._verified
