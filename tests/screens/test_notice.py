"""The notice a kiosk shows instead of the checkout when it cannot sell yet."""

from __future__ import annotations

from pathlib import Path

from appliance.screens.notice import UNREADABLE, NoticeApp, notice_text


def test_first_line_is_the_title_and_the_rest_the_body(tmp_path: Path) -> None:
    path = tmp_path / "notice.txt"
    path.write_text("Provisioning refused\nhub.port: must be 1 to 65535\nwifi.psk: too short\n")
    assert notice_text(path) == (
        "Provisioning refused",
        "hub.port: must be 1 to 65535\nwifi.psk: too short",
    )


def test_a_missing_file_still_says_something(tmp_path: Path) -> None:
    assert notice_text(tmp_path / "absent.txt") == (UNREADABLE, "")


def test_the_screen_follows_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notice.txt"
    path.write_text("Not provisioned\nPut provisioning.toml on the boot partition.")
    app = NoticeApp(path)
    app.build()
    assert (app.heading.text, app.body.text) == (
        "Not provisioned",
        "Put provisioning.toml on the boot partition.",
    )
    path.write_text("Provisioning refused\ndevice.id: missing")
    app.reload()
    assert (app.heading.text, app.body.text) == ("Provisioning refused", "device.id: missing")
