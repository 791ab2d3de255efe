"""Texts people read, written in plain English where they arise and translated on screen.

`N_` marks such a text so `make messages` extracts it (pybabel's default keywords include
it); the screens translate it with `Translator.message`. Marking changes nothing at run time.
"""

from __future__ import annotations


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for the marker
    """Mark `message` for extraction; returns it unchanged."""
    return message
