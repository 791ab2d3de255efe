"""How `fleet show` and `fleet jobs` print a job's command: long arguments shortened."""

from __future__ import annotations

import json

from hub.cli_fleet import ARG_LIMIT, _command_text
from hub.device_answers import JobView


def job(name: str, args: dict[str, object]) -> JobView:
    """A job as the hub lists it."""
    return JobView("job-1", "kiosk-1", name, args, "", "", "SENT", "", "", [])


def test_an_update_commands_manifest_is_shortened_and_says_how_long_it_was() -> None:
    manifest = json.dumps({"version": "2026.12.2", "image_manifest": "x" * 5000})
    text = _command_text(job("update", {"manifest": manifest, "version": "2026.12.2"}))
    shown, version = text.split(" version=")
    assert version == '"2026.12.2"'  # short arguments whole
    assert len(shown) < ARG_LIMIT + 60
    assert f"({len(json.dumps(manifest))} characters)" in shown


def test_short_arguments_are_shown_whole() -> None:
    assert _command_text(job("collect_logs", {"lines": 200})) == "collect_logs lines=200"
