"""A process's resident memory from /proc, importing nothing a measured child would not."""

from __future__ import annotations

from pathlib import Path

MEMORY_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def resident_kib(pid: int) -> dict[str, int]:
    """VmRSS, its peak (VmHWM) and its parts (anonymous, file, shmem) in KiB, from /proc."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        if key in MEMORY_KEYS:
            found[key] = int(value.split()[0])
    return found
