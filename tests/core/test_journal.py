"""The fiscal journal's hash chain: how entries link, and that any change shows."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.journal import (
    GENESIS,
    JournalEntry,
    canonical,
    entry_hash,
    next_entry,
    verify_chain,
)

AT = "2026-12-06T10:00:00+00:00"


def _chain(count: int) -> list[JournalEntry]:
    entries: list[JournalEntry] = []
    for n in range(count):
        previous = entries[-1] if entries else None
        entries.append(
            next_entry(previous, "cash_in", AT, canonical({"amount": n, "why": "float"}))
        )
    return entries


def test_the_first_entry_links_to_genesis_and_each_next_to_the_one_before() -> None:
    entries = _chain(3)
    assert [e.number for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS
    assert entries[1].prev_hash == entries[0].hash
    assert entries[2].prev_hash == entries[1].hash
    assert len({e.hash for e in entries}) == 3
    assert verify_chain(entries) is None


def test_canonical_bytes_do_not_depend_on_key_order_and_keep_unicode() -> None:
    one = canonical({"b": 1, "a": {"y": "Müsli", "x": [2, 1]}})
    two = canonical({"a": {"x": [2, 1], "y": "Müsli"}, "b": 1})
    assert one == two == '{"a":{"x":[2,1],"y":"Müsli"},"b":1}'.encode()


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown journal entry kind"):
        next_entry(None, "coffee", AT, b"{}")


def test_an_edited_body_is_found_at_that_entry() -> None:
    entries = _chain(4)
    entries[2] = dataclasses.replace(entries[2], body=canonical({"amount": 999, "why": "float"}))
    found = verify_chain(entries)
    assert found is not None and found.number == 3
    assert "does not match its hash" in found.reason


def test_an_edited_entry_with_its_hash_recomputed_breaks_the_next_link() -> None:
    entries = _chain(4)
    body = canonical({"amount": 999, "why": "float"})
    forged = entry_hash(3, "cash_in", AT, body, entries[1].hash)
    entries[2] = dataclasses.replace(entries[2], body=body, hash=forged)
    found = verify_chain(entries)
    assert found is not None and found.number == 4
    assert "does not link to entry 3" in found.reason


def test_a_missing_entry_is_named() -> None:
    entries = _chain(5)
    del entries[1]
    found = verify_chain(entries)
    assert found is not None and (found.number, found.reason) == (2, "entry 2 is missing")


def test_swapped_entries_are_found() -> None:
    entries = _chain(4)
    a, b = entries[1], entries[2]
    entries[1] = dataclasses.replace(b, number=2)
    entries[2] = dataclasses.replace(a, number=3)
    found = verify_chain(entries)
    assert found is not None and found.number == 2


def test_a_run_continues_from_a_known_entry() -> None:
    entries = _chain(6)
    assert verify_chain(entries[3:], after=entries[2]) is None
    found = verify_chain(entries[4:], after=entries[2])
    assert found is not None and found.number == 4


@given(
    events=st.lists(
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=4),
        min_size=1,
        max_size=12,
    ),
    victim=st.integers(min_value=0),
    field=st.sampled_from(["kind", "at", "body", "prev_hash", "number"]),
)
def test_any_single_change_of_any_entry_is_detected(
    events: list[dict[str, object]], victim: int, field: str
) -> None:
    entries: list[JournalEntry] = []
    for event in events:
        entries.append(next_entry(entries[-1] if entries else None, "drawer", AT, canonical(event)))
    index = victim % len(entries)
    entry = entries[index]
    changed = {
        "kind": "shift_open",
        "at": "2026-12-06T10:00:01+00:00",
        "body": entry.body + b" ",
        "prev_hash": "f" * 64,
        "number": entry.number + 100,
    }[field]
    entries[index] = dataclasses.replace(entry, **{field: changed})
    found = verify_chain(entries)
    assert found is not None and found.number == index + 1
