"""scripts/ensure-system-packages: installs as root, otherwise prints the exact apt line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ensure-system-packages"


def _fake_tools(bin_dir: Path, *, uid: int, installed: set[str]) -> dict[str, str]:
    """A PATH where `id` and `dpkg-query` answer as a machine with `installed` would."""
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    cases = "".join(f'  {name}) echo "install ok installed";;\n' for name in sorted(installed))
    (bin_dir / "dpkg-query").write_text(
        '#!/bin/sh\nfor last; do :; done\ncase "$last" in\n' + cases + "  *) exit 1;;\nesac\n"
    )
    (bin_dir / "apt-get").write_text('#!/bin/sh\necho "apt-get $*" >> "$APT_LOG"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_a_normal_user_is_told_the_exact_apt_line_and_nothing_is_installed(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin", uid=1000, installed={"gcc"})
    env["APT_LOG"] = str(tmp_path / "apt.log")
    done = subprocess.run(
        [str(SCRIPT), "gcc", "libsystemd-dev", "pkg-config"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "sudo apt-get install -y --no-install-recommends libsystemd-dev pkg-config" in (
        done.stderr
    )
    assert not (tmp_path / "apt.log").exists()


def test_root_installs_only_what_is_missing(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin", uid=0, installed={"gcc"})
    env["APT_LOG"] = str(tmp_path / "apt.log")
    done = subprocess.run(
        [str(SCRIPT), "gcc", "libsystemd-dev"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "apt.log").read_text().splitlines()
    assert calls == [
        "apt-get update -qq",
        "apt-get install -y --no-install-recommends libsystemd-dev",
    ]


def test_nothing_happens_when_everything_is_installed(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin", uid=1000, installed={"gcc", "libsystemd-dev"})
    env["APT_LOG"] = str(tmp_path / "apt.log")
    done = subprocess.run(
        [str(SCRIPT), "gcc", "libsystemd-dev"], env=env, capture_output=True, check=False
    )
    assert done.returncode == 0
    assert not (tmp_path / "apt.log").exists()
