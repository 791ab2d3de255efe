"""The update state file: written whole and durably, read back the same, damage read as idle."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.update.state import StateFile, UpdateRecord


def test_a_saved_record_reads_back_and_changes_keep_the_other_fields(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "update" / "state.json")
    assert state.load() == UpdateRecord()
    state.save(UpdateRecord(job="j1", version="2026.12.1", phase="offered", refused=("2026.1.2",)))
    changed = state.change(phase="downloading", chunks_done=3)
    assert changed == state.load()
    assert (changed.job, changed.phase, changed.chunks_done) == ("j1", "downloading", 3)
    assert changed.refused == ("2026.1.2",)
    assert not (tmp_path / "update" / "state.json.new").exists()


def test_a_file_left_by_a_torn_temp_write_does_not_replace_the_state(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    state.save(UpdateRecord(job="j1", phase="trying"))
    (tmp_path / "state.json.new").write_bytes(b'{"job": "j2", "pha')  # cut mid-write
    assert state.load().phase == "trying"


@pytest.mark.parametrize("damage", [b"{not json", b'{"phase": "dancing"}'])
def test_a_damaged_state_file_reads_as_no_job(tmp_path: Path, damage: bytes) -> None:
    (tmp_path / "state.json").write_bytes(damage)
    assert StateFile(tmp_path / "state.json").load() == UpdateRecord()


def test_a_damaged_state_file_reads_from_its_copy(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    state.save(UpdateRecord(job="j1", phase="gate_failed", snapshot="s.db", refused=("2026.1.2",)))
    (tmp_path / "state.json").write_bytes(b"{not json")  # a card that lost the sector
    assert state.load() == UpdateRecord(
        job="j1", phase="gate_failed", snapshot="s.db", refused=("2026.1.2",)
    )
    (tmp_path / "state.json").unlink()
    assert state.load().phase == "gate_failed"
