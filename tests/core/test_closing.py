"""The context-manager mixins: `with` closes (and, for OpenClosing, opens) exactly once."""

from __future__ import annotations

import pytest

from appliance.core.closing import Closing, OpenClosing


class _Port(OpenClosing):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def open(self) -> None:
        self.calls.append("open")

    def close(self) -> None:
        self.calls.append("close")


class _Held(Closing):
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_with_gives_the_object_back_and_closes_it_at_the_end() -> None:
    held = _Held()
    with held as entered:
        assert entered is held
        assert held.closed == 0
    assert held.closed == 1


def test_an_error_in_the_block_still_closes_and_is_not_swallowed() -> None:
    held = _Held()
    with pytest.raises(RuntimeError, match="boom"), held:
        raise RuntimeError("boom")
    assert held.closed == 1


def test_open_closing_opens_on_entry_and_closes_on_exit() -> None:
    port = _Port()
    with port as entered:
        assert entered is port
        assert port.calls == ["open"]
    assert port.calls == ["open", "close"]


def test_a_subclass_that_forgets_close_fails_loudly() -> None:
    with pytest.raises(NotImplementedError), Closing():
        pass
