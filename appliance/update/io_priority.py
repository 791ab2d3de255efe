"""Idle I/O class and nice 19 for the thread that downloads an update, so the till comes first.

Linux keeps both per thread: the I/O priority (ioprio_set(2) with IOPRIO_WHO_PROCESS and a
thread id) and the nice value (setpriority(2) on a thread id sets that thread only). The
standard library has no ioprio call, so it goes through libc's syscall() with the number of
the running architecture. The idle class needs no privilege since Linux 2.6.25, and neither
does raising nice; taking either back does, so only a thread made for the download lowers
itself (`start_low_priority_thread`), never a thread that sells.

The idle class is honoured by the BFQ and mq-deadline schedulers (an SD card's usual ones);
with `none` it changes nothing, and the nice value still keeps decompression off the UI.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

IOPRIO_CLASS_BE = 2
IOPRIO_CLASS_IDLE = 3
NICE = 19
_IOPRIO_CLASS_SHIFT = 13
_IOPRIO_WHO_PROCESS = 1  # with a thread id: that thread only
# (ioprio_set, ioprio_get) by `uname -m`; arm64 and riscv use the generic table.
_SYSCALLS = {
    "x86_64": (251, 252),
    "aarch64": (30, 31),
    "arm64": (30, 31),
    "riscv64": (30, 31),
    "armv7l": (314, 315),
    "armv6l": (314, 315),
    "i686": (289, 290),
}


def lower_thread_priority() -> bool:
    """Put the calling thread in the idle I/O class at nice 19; False (logged) if refused."""
    tid = threading.get_native_id()
    lowered = True
    try:
        _ioprio_set(tid, IOPRIO_CLASS_IDLE, 0)
    except OSError as err:
        log.warning("the download keeps its I/O priority: %s", err)
        lowered = False
    try:
        os.setpriority(os.PRIO_PROCESS, tid, NICE)
    except OSError as err:
        log.warning("the download keeps its CPU priority: %s", err)
        lowered = False
    return lowered


def thread_io_priority(tid: int | None = None) -> tuple[int, int]:
    """The (class, level) I/O priority of a thread of this process (the caller by default)."""
    value = _syscall(1, _IOPRIO_WHO_PROCESS, tid or threading.get_native_id(), 0)
    return value >> _IOPRIO_CLASS_SHIFT, value & ((1 << _IOPRIO_CLASS_SHIFT) - 1)


def start_low_priority_thread(target: Callable[[], None], *, name: str) -> threading.Thread:
    """Start a daemon thread that lowers its own priority, then runs `target`."""

    def run() -> None:
        lower_thread_priority()
        target()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def _ioprio_set(tid: int, io_class: int, level: int) -> None:
    _syscall(0, _IOPRIO_WHO_PROCESS, tid, (io_class << _IOPRIO_CLASS_SHIFT) | level)


def _syscall(which: int, *args: int) -> int:
    """ioprio_set (which=0) or ioprio_get (which=1); OSError when absent or refused."""
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        raise OSError(f"no ioprio system call known for {platform.machine()}")
    libc = ctypes.CDLL(None, use_errno=True)
    result = int(libc.syscall(numbers[which], *(ctypes.c_int(arg) for arg in args)))
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"ioprio: {os.strerror(errno)}")
    return result
