"""A full-screen window takes the connected display's size from KMS."""

from __future__ import annotations

from pathlib import Path

from appliance.screens.kivy_env import connected_display_size


def connector(drm: Path, name: str, status: str, modes: str) -> None:
    folder = drm / name
    folder.mkdir(parents=True)
    (folder / "status").write_text(status + "\n")
    (folder / "modes").write_text(modes)


def test_the_first_connected_display_gives_its_preferred_mode(tmp_path: Path) -> None:
    connector(tmp_path, "card0-HDMI-A-1", "disconnected", "")
    connector(tmp_path, "card0-HDMI-A-2", "connected", "1024x600\n800x480\n")
    connector(tmp_path, "card1-DSI-1", "connected", "800x480\n")
    assert connected_display_size(tmp_path) == (1024, 600)


def test_an_interlaced_mode_counts_by_its_lines(tmp_path: Path) -> None:
    connector(tmp_path, "card0-HDMI-A-1", "connected", "1920x1080i\n")
    assert connected_display_size(tmp_path) == (1920, 1080)


def test_no_connected_display_or_no_modes_gives_none(tmp_path: Path) -> None:
    connector(tmp_path, "card0-HDMI-A-1", "disconnected", "1280x720\n")
    connector(tmp_path, "card0-Virtual-1", "connected", "")
    assert connected_display_size(tmp_path) is None
    assert connected_display_size(tmp_path / "absent") is None
