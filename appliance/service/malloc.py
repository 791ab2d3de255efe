"""The C allocator, tuned for a long-running appliance with many threads."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # malloc.h
ARENAS = 1


@cache  # find_library runs ldconfig: once per process, not on every quiet moment's trim
def _glibc() -> ctypes.CDLL | None:
    """The C library, if it is glibc (the one with mallopt and malloc_trim)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018  (musl and others have none)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas; True when the C library took it.

    glibc gives each thread that allocates its own arena, and the appliance runs a dozen
    (devices, hub link, workers) beside the GL driver's: the arenas' half-empty pages were
    some 15 MB of the kiosk's resident memory. With two, the second still held some 3 MB more
    than one shared heap; the threads mostly wait on I/O and the GL driver's rasterizer
    threads allocate little while drawing, so one lock is not a queue. Call before the
    threads start; elsewhere than glibc it does nothing.
    """
    libc = _glibc()
    if libc is None:
        return False
    taken = bool(libc.mallopt(M_ARENA_MAX, arenas))
    log.debug("malloc arenas capped at %d: %s", arenas, taken)
    return taken


def give_back_free_memory() -> bool:
    """Return the C heap's free pages to the system; True when some were.

    Starting the window compiles the GL driver's shaders and lays out every screen: tens of
    megabytes malloc'd and freed again, which glibc keeps in the heap unless asked.
    """
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
