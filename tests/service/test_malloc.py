"""The malloc arena cap: threads share two arenas instead of one each."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Eight threads allocate at once, then glibc's malloc_stats lists its arenas on stderr.
CHILD = textwrap.dedent(
    """
    import ctypes, ctypes.util, sys, threading
    from appliance.service.malloc import limit_malloc_arenas
    if sys.argv[1] == "cap":
        assert limit_malloc_arenas()
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    start = threading.Barrier(8)
    def allocate():
        start.wait()
        blocks = [libc.malloc(4096) for _ in range(200)]
        for block in blocks:
            libc.free(block)
    threads = [threading.Thread(target=allocate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    libc.malloc_stats()
    """
)


def arenas_used(mode: str) -> int:
    """How many arenas malloc_stats reports after eight threads allocated."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return sum(1 for line in done.stderr.splitlines() if line.startswith("Arena "))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_threads_share_two_arenas_once_capped() -> None:
    assert arenas_used("free") > 2  # the default: an arena per thread, up to 8 per core
    assert arenas_used("cap") <= 2
