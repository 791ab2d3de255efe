"""ScanFilter: what makes a line a code, and telling a held code from a new item."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.drivers.scan_filter import Accepted, Rejected, Repeated, ScanFilter
from tests.drivers.presentations import Script, ScriptedClock, the_issue_script


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


def test_a_held_code_read_at_20_hz_for_2_s_counts_once() -> None:
    """A presentation scanner re-reading a held item every 50 ms: one scan, 40 re-reads."""
    script = Script()
    script.hold("111", seconds=2.0, rate_hz=20)
    scan_filter = ScanFilter(clock=ScriptedClock(script.instants))
    verdicts = [scan_filter.check(code) for code in script.codes]
    assert verdicts == [Accepted("111")] + [Repeated("111")] * 40


@pytest.mark.parametrize("every", [0.35, 0.6, 0.2])
def test_the_same_item_presented_at_a_rhythm_counts_every_time(every: float) -> None:
    """Six yoghurts put down one after another count six, down to the hold gap itself."""
    script = Script()
    script.present("111", times=6, every=every)
    scan_filter = ScanFilter(clock=ScriptedClock(script.instants))
    assert [scan_filter.check(code) for code in script.codes] == [Accepted("111")] * 6


def test_the_default_hold_gap_is_200_ms() -> None:
    """Just under 200 ms after the previous read is still held; 200 ms is a new item."""
    clock = Clock()
    scan_filter = ScanFilter(clock=clock)
    assert scan_filter.check(b"111") == Accepted("111")
    clock.now += 0.199
    assert scan_filter.check(b"111") == Repeated("111")
    clock.now += 0.2
    assert scan_filter.check(b"111") == Accepted("111")


def test_the_gap_runs_from_the_previous_read_of_the_code() -> None:
    """A held code keeps re-reading well past the gap and stays one scan (a missed frame too)."""
    clock = Clock()
    scan_filter = ScanFilter(hold_gap_ms=200, clock=clock)
    verdicts = []
    for gap in [0.0, 0.1, 0.15, 0.1, 0.19, 0.1]:  # 0.64 s in the field, no gap of 0.2 s
        clock.now += gap
        verdicts.append(scan_filter.check(b"111"))
    assert verdicts == [Accepted("111")] + [Repeated("111")] * 5


def test_the_issue_script_counts_once_per_presentation() -> None:
    """0.35 s and 0.6 s rhythms count every item; a held code once; held again, once more."""
    script = the_issue_script()
    scan_filter = ScanFilter(clock=ScriptedClock(script.instants))
    verdicts = [scan_filter.check(code) for code in script.codes]
    assert [v.code for v in verdicts if isinstance(v, Accepted)] == script.expected


def test_two_codes_held_in_the_field_together_count_once_each() -> None:
    """A multipack's two labels read in turn at the frame rate: two scans, not one a frame."""
    clock = Clock()
    scan_filter = ScanFilter(clock=clock)
    verdicts = []
    for _ in range(10):
        verdicts.append(scan_filter.check(b"111"))
        clock.now += 0.05
        verdicts.append(scan_filter.check(b"222"))
        clock.now += 0.05
    assert [v for v in verdicts if isinstance(v, Accepted)] == [Accepted("111"), Accepted("222")]


def test_different_codes_are_never_repeats() -> None:
    """Two different items scanned quickly are both counted."""
    scan_filter = ScanFilter(clock=Clock())
    assert scan_filter.check(b"111") == Accepted("111")
    assert scan_filter.check(b"222") == Accepted("222")


def test_rejected_lines_do_not_end_a_hold() -> None:
    """Garbage between two reads of a held code does not make the second one count."""
    scan_filter = ScanFilter(clock=Clock())
    scan_filter.check(b"111")
    assert isinstance(scan_filter.check(b"\xff"), Rejected)
    assert scan_filter.check(b"111") == Repeated("111")


def test_zero_gap_counts_every_read() -> None:
    """hold_gap_ms = 0 counts every read."""
    scan_filter = ScanFilter(hold_gap_ms=0, clock=Clock())
    assert scan_filter.check(b"111") == Accepted("111")
    assert scan_filter.check(b"111") == Accepted("111")


@given(st.lists(st.integers(min_value=0, max_value=1000), max_size=60))
def test_a_code_counts_once_plus_once_per_gap_of_at_least_the_hold_gap(gaps: list[int]) -> None:
    """For any read timing of one code, the scans are the first read and each read after a
    gap of at least the hold gap (milliseconds here, so no rounding decides)."""
    clock = Clock()
    scan_filter = ScanFilter(hold_gap_ms=200, clock=lambda: clock.now / 1000)
    clock.now = 0
    counted = [scan_filter.check(b"111")]
    for gap in gaps:
        clock.now += gap
        counted.append(scan_filter.check(b"111"))
    accepted = sum(isinstance(v, Accepted) for v in counted)
    assert accepted == 1 + sum(gap >= 200 for gap in gaps)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_verdict_and_never_raise(raw: bytes) -> None:
    """Whatever a broken scanner sends, the filter answers; accepted codes are clean."""
    verdict = ScanFilter(prefix="P", max_length=128, hold_gap_ms=0).check(raw)
    if isinstance(verdict, Accepted):
        assert raw == b"P" + verdict.code.encode("ascii")
        assert verdict.code.isprintable() and verdict.code.isascii()
        assert len(raw) <= 128
    else:
        assert isinstance(verdict, Rejected) and verdict.reason


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1))
def test_printable_ascii_codes_round_trip(code: str) -> None:
    """Every printable ASCII code within max_length is accepted unchanged."""
    verdict = ScanFilter(max_length=4096, hold_gap_ms=0).check(code.encode("ascii"))
    assert verdict == Accepted(code)
