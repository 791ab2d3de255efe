"""ScanFilter: what makes a line a code, and debouncing with an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.drivers.scan_filter import Accepted, Rejected, Repeated, ScanFilter


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_code_is_accepted() -> None:
    """A printable ASCII line is a code, as text."""
    assert ScanFilter().check(b"4006381333931") == Accepted("4006381333931")


def test_text_input_is_accepted_like_bytes() -> None:
    """The HID scanner hands in text; it goes through the same rules."""
    assert ScanFilter().check("ABC-123") == Accepted("ABC-123")


def test_prefix_and_suffix_are_stripped() -> None:
    """The configured prefix and suffix are not part of the code."""
    assert ScanFilter(prefix="]E0", suffix="#").check(b"]E04006381333931#") == Accepted(
        "4006381333931"
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty line"),
        (b"\xff\xfe\x00", "not ASCII"),
        (b"12\x0034", "not printable ASCII (character 2)"),
        (b"12\t34", "not printable ASCII"),
        ("12ß34", "not printable ASCII"),
        (b"x" * 129, "longer than 128"),
    ],
)
def test_bad_lines_are_rejected_with_a_reason(raw: bytes | str, reason: str) -> None:
    """Garbage, control characters, non-ASCII, over-long and empty lines are not codes."""
    verdict = ScanFilter(max_length=128).check(raw)
    assert isinstance(verdict, Rejected)
    assert reason in verdict.reason


def test_missing_prefix_is_rejected() -> None:
    """A line from a scanner that was not set up with our prefix is refused, naming it."""
    verdict = ScanFilter(prefix="S:").check(b"12345")
    assert isinstance(verdict, Rejected)
    assert "missing prefix 'S:'" in verdict.reason


def test_missing_suffix_is_rejected() -> None:
    """A line without the configured suffix was cut short: refused."""
    verdict = ScanFilter(suffix="#").check(b"12345")
    assert isinstance(verdict, Rejected)
    assert "missing suffix '#'" in verdict.reason


def test_prefix_and_suffix_overlapping_is_not_a_code() -> None:
    """With prefix "AB" and suffix "BC", "ABC" holds no code (the two would overlap)."""
    verdict = ScanFilter(prefix="AB", suffix="BC").check(b"ABC")
    assert isinstance(verdict, Rejected)


def test_only_prefix_and_suffix_is_rejected() -> None:
    """A frame with nothing inside is not a code."""
    verdict = ScanFilter(prefix="[", suffix="]").check(b"[]")
    assert isinstance(verdict, Rejected)
    assert "no code" in verdict.reason


def test_long_garbage_is_quoted_short() -> None:
    """The reason quotes the start of a bad line, not all of it."""
    verdict = ScanFilter(max_length=4096).check(b"\x01" * 2000)
    assert isinstance(verdict, Rejected)
    assert len(verdict.reason) < 200
    assert "2000 long" in verdict.reason


def test_same_code_within_window_is_repeated() -> None:
    """The same code again inside debounce_ms is dropped."""
    clock = Clock()
    scan_filter = ScanFilter(debounce_ms=800, clock=clock)
    assert scan_filter.check(b"111") == Accepted("111")
    clock.now += 0.5
    assert scan_filter.check(b"111") == Repeated("111")


def test_same_code_after_window_is_accepted() -> None:
    """Scanning the same item again after the window counts twice."""
    clock = Clock()
    scan_filter = ScanFilter(debounce_ms=800, clock=clock)
    assert scan_filter.check(b"111") == Accepted("111")
    clock.now += 0.801
    assert scan_filter.check(b"111") == Accepted("111")


def test_window_runs_from_the_last_sighting() -> None:
    """A code held under a presentation scanner (re-read every 0.5 s) stays one scan."""
    clock = Clock()
    scan_filter = ScanFilter(debounce_ms=800, clock=clock)
    verdicts = []
    for _ in range(6):
        verdicts.append(scan_filter.check(b"111"))
        clock.now += 0.5
    assert verdicts == [Accepted("111")] + [Repeated("111")] * 5


def test_different_codes_are_never_debounced() -> None:
    """Two different items scanned quickly are both counted."""
    scan_filter = ScanFilter(debounce_ms=800, clock=Clock())
    assert scan_filter.check(b"111") == Accepted("111")
    assert scan_filter.check(b"222") == Accepted("222")
    assert scan_filter.check(b"111") == Accepted("111")


def test_rejected_lines_do_not_touch_debounce() -> None:
    """Garbage between two scans of the same code does not make the second one count."""
    scan_filter = ScanFilter(debounce_ms=800, clock=Clock())
    scan_filter.check(b"111")
    assert isinstance(scan_filter.check(b"\xff"), Rejected)
    assert scan_filter.check(b"111") == Repeated("111")


def test_zero_window_disables_debounce() -> None:
    """debounce_ms = 0 counts every scan."""
    scan_filter = ScanFilter(debounce_ms=0, clock=Clock())
    assert scan_filter.check(b"111") == Accepted("111")
    assert scan_filter.check(b"111") == Accepted("111")


@given(st.binary(max_size=200))
def test_any_bytes_give_a_verdict_and_never_raise(raw: bytes) -> None:
    """Whatever a broken scanner sends, the filter answers; accepted codes are clean."""
    verdict = ScanFilter(prefix="P", max_length=128, debounce_ms=0).check(raw)
    if isinstance(verdict, Accepted):
        assert raw == b"P" + verdict.code.encode("ascii")
        assert verdict.code.isprintable() and verdict.code.isascii()
        assert len(raw) <= 128
    else:
        assert isinstance(verdict, Rejected) and verdict.reason


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1))
def test_printable_ascii_codes_round_trip(code: str) -> None:
    """Every printable ASCII code within max_length is accepted unchanged."""
    verdict = ScanFilter(max_length=4096, debounce_ms=0).check(code.encode("ascii"))
    assert verdict == Accepted(code)
