"""After systemd stops restarting the appliance: one reboot an hour at most, else a notice."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from appliance.cli.after_failure import after_failure
from appliance.service.failure_policy import MARK_NAME, decide, remember_reboot

HOUR = 3600.0


def test_the_first_failure_reboots_and_a_second_within_the_hour_does_not(tmp_path: Path) -> None:
    assert decide(tmp_path, "1", now=10 * HOUR, min_hours=1).reboot
    assert remember_reboot(tmp_path, now=10 * HOUR)
    again = decide(tmp_path, "1", now=10 * HOUR + 1800, min_hours=1)
    assert not again.reboot and "30 min ago did not help" in again.reason
    assert decide(tmp_path, "1", now=11 * HOUR + 1, min_hours=1).reboot  # a new hour: once more


def test_a_bad_configuration_never_reboots(tmp_path: Path) -> None:
    verdict = decide(tmp_path, "78", now=10 * HOUR, min_hours=1)
    assert not verdict.reboot and "configuration" in verdict.reason


def test_without_a_record_of_the_last_reboot_none_follows(tmp_path: Path) -> None:
    (tmp_path / MARK_NAME).write_text("not a time\n")
    assert not decide(tmp_path, "1", now=10 * HOUR, min_hours=1).reboot
    assert not remember_reboot(tmp_path / "missing-folder")  # the caller must not reboot then


def test_the_command_reboots_once_then_shows_the_notice(tmp_path: Path) -> None:
    state, notice, log = tmp_path / "state", tmp_path / "run" / "notice.txt", tmp_path / "did"
    state.mkdir()
    args = [
        *("--state-dir", str(state), "--notice", str(notice)),
        *("--reboot-command", f"sh -c 'echo reboot >> {log}'"),
        *("--show-command", f"sh -c 'echo show >> {log}'"),
    ]
    env = {"MONITOR_EXIT_STATUS": "1", "MONITOR_SERVICE_RESULT": "exit-code"}
    runner = CliRunner()

    first = runner.invoke(after_failure, args, env=env)
    assert first.exit_code == 0, first.output
    assert log.read_text().split() == ["reboot"] and (state / MARK_NAME).exists()
    assert not notice.exists()

    second = runner.invoke(after_failure, args, env=env)
    assert second.exit_code == 0, second.output
    assert log.read_text().split() == ["reboot", "show"]
    text = notice.read_text()
    assert text.startswith("This checkout is out of order\n")
    assert "exit-code" in text and "did not help" in text

    dry = runner.invoke(after_failure, [*args, "--dry-run"], env={"MONITOR_EXIT_STATUS": "78"})
    assert dry.output.startswith("notice: the configuration is wrong")
    assert log.read_text().split() == ["reboot", "show"]
