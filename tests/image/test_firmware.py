"""The harness's bootloader: it must choose as the Pi firmware documents, or the boot tests
prove nothing. Runs in `make test` (no image needed)."""

from __future__ import annotations

import pytest

from appliance.update.slots import Autoboot, autoboot_bytes
from tests.image.firmware import (
    TRYBOOT_ASKED,
    TRYBOOT_RESTART,
    BootChoice,
    asked_for_tryboot,
    choose,
)

A_B = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"


@pytest.mark.parametrize(
    ("text", "tryboot", "partition"),
    [
        (A_B, False, 2),  # the default
        (A_B, True, 3),  # the one-shot try
        ("[all]\ntryboot_a_b=1\nboot_partition=3\n", True, 3),  # no [tryboot]: the default
        ("# a comment\n[all]\ntryboot_a_b=1 # on\nboot_partition=2\n", False, 2),
        ("", False, 1),  # no autoboot.txt settings: the first partition
        ("[all]\nboot_partition=2\n" + "\n" * 600 + "boot_partition=3\n", False, 2),  # 512 bytes
    ],
)
def test_the_partition_follows_autoboot_txt_and_the_flag(
    text: str, tryboot: bool, partition: int
) -> None:
    assert choose(text, tryboot=tryboot) == BootChoice(partition, tryboot)


def test_a_try_without_tryboot_a_b_is_refused() -> None:
    # The firmware would read tryboot.txt, which the card does not have.
    with pytest.raises(AssertionError, match="tryboot_a_b"):
        choose("[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n", tryboot=True)


def test_the_appliance_s_own_file_reads_the_same_here() -> None:
    text = autoboot_bytes(Autoboot(3, 2)).decode("ascii")
    assert choose(text, tryboot=False).partition == 3
    assert choose(text, tryboot=True).partition == 2


def test_only_a_tryboot_restart_the_module_passed_on_sets_the_flag() -> None:
    asked = f"[  9.0] {TRYBOOT_ASKED}, but no Raspberry Pi firmware is here\n"
    assert asked_for_tryboot(f"...\n{asked}[  9.1] {TRYBOOT_RESTART}\n")
    assert not asked_for_tryboot(f"...\n[  9.1] {TRYBOOT_RESTART}\n")
    assert not asked_for_tryboot(f"{asked}[  9.1] reboot: Restarting system\n")
    assert not asked_for_tryboot("[  9.1] reboot: Power down\n")
