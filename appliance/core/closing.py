"""Context-manager mixins for objects that own something and release it in `close()`."""

from __future__ import annotations

from typing import Self


class Closing:
    """`with obj:` gives `obj` back and calls `obj.close()` at the end, however it ends.

    Subclasses must override `close()` and keep it safe to call twice: the block may end
    after an explicit close. No `__del__`: what is never closed is a bug to find, not to hide.
    """

    def close(self) -> None:
        """Release what the object holds; a second call does nothing."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class OpenClosing(Closing):
    """Like Closing, and `with obj:` calls `obj.open()` first; subclasses override both."""

    def open(self) -> None:
        """Acquire what the object needs (start threads, connect); a second call does nothing."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self
