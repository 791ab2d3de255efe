"""The README's "Driving the simulators" walk, line by line, with the checkout window open.

The command lines are read from README.md and run as they are written (`appliance sim ...`
as a separate process, over the control socket); after each, the test asserts what the
line's comment promises, on the real window. A README line this test has no step for
fails it, so the README and the product cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.core.card_payment import PAY_TIMEOUT_SECONDS
from appliance.settings import DEFAULT_CONFIG_PATH, simulated_settings
from tests import real_parts
from tests.screens.customer_steps import shown
from tests.screens.harness import Kiosk, open_kiosk

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "### Driving the simulators"
COMMAND_SECONDS = 60.0  # a cold `appliance` process on a busy machine
PAY_SECONDS = PAY_TIMEOUT_SECONDS + 60.0  # as `appliance sim pay` itself waits
STEP_SECONDS = 30.0


@dataclass(frozen=True)
class Line:
    """One README command: its `appliance sim` arguments and the comment's promise."""

    args: tuple[str, ...]
    comment: str

    @property
    def quoted(self) -> list[str]:
        """The words the comment quotes: what the screen (or the answer) says or shows."""
        return re.findall(r'"([^"]+)"', self.comment)


def readme_walk() -> list[Line]:
    """The commands of the section's first shell block, in order."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no {SECTION!r} section"
    section = text.split(SECTION, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, f"no shell block under {SECTION!r}"
    lines = []
    for raw in block.group(1).splitlines():
        command, _, comment = raw.partition("#")
        words = shlex.split(command)
        assert words[:2] == [".venv/bin/appliance", "sim"], f"not an `appliance sim` line: {raw}"
        lines.append(Line(tuple(words[2:]), comment.strip()))
    return lines


@dataclass
class Answer:
    """How one `appliance sim` process ended."""

    code: int
    out: str
    err: str


@dataclass
class Running:
    """An `appliance` process started in the background, and where its output goes."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path
    name: str


class Walk:
    """The kiosk on the real window and the `appliance sim` command beside it."""

    def __init__(self, kiosk: Kiosk, tmp_path: Path) -> None:
        self.kiosk = kiosk
        self.tmp_path = tmp_path
        self.runs = 0

    def sim(self, *args: str, timeout: float = COMMAND_SECONDS) -> Answer:
        """Run `appliance sim ARGS` while the window keeps drawing; its exit and output."""
        return self.run("sim", *args, timeout=timeout)

    def run(self, *args: str, timeout: float = COMMAND_SECONDS) -> Answer:
        """Run `appliance ARGS` as a shell would, pumping the window until it exits."""
        return self.finish(self.start(*args), timeout)

    def start(self, *args: str) -> Running:
        """Start `appliance ARGS` in the background (`&` in a shell)."""
        self.runs += 1
        out = self.tmp_path / f"run-{self.runs}.out"
        err = self.tmp_path / f"run-{self.runs}.err"
        script = Path(sys.executable).with_name("appliance")
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [str(script), *args], stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL
            )
        return Running(process, out, err, " ".join(args))

    def finish(self, running: Running, timeout: float = COMMAND_SECONDS) -> Answer:
        """Pump the window until the command exits; how it ended."""
        process = running.process
        try:
            self.kiosk.wait_for(lambda: process.poll() is not None, timeout, running.name)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return Answer(process.returncode, running.out.read_text(), running.err.read_text())

    def ok(self, *args: str, timeout: float = COMMAND_SECONDS) -> dict[str, object]:
        """Run `appliance sim ARGS`, which must succeed; its JSON answer."""
        answer = self.sim(*args, timeout=timeout)
        assert answer.code == 0, f"sim {' '.join(args)} failed: {answer.err}"
        parsed: dict[str, object] = json.loads(answer.out)
        return parsed

    def refused(self, *args: str, timeout: float = COMMAND_SECONDS) -> str:
        """Run `appliance sim ARGS`, which must be refused; what it said."""
        answer = self.sim(*args, timeout=timeout)
        assert answer.code != 0, f"sim {' '.join(args)} was not refused: {answer.out}"
        return answer.err

    def rows(self) -> list[str]:
        """The names on the cart's rows."""
        return [row["name"] for row in self.kiosk.app.cart.rows]

    def wait_for_row(self, name: str) -> None:
        """Until the cart shows a line named `name`."""
        self.kiosk.wait_for(lambda: name in self.rows(), STEP_SECONDS, f"the line {name!r}")
        self.kiosk.find_text(name)

    def next_customer(self) -> None:
        """From the receipt choice back to the welcome screen, by touch."""
        self.kiosk.wait_for_screen("receipt")
        self.kiosk.tap_text("No receipt")
        self.kiosk.wait_for_screen("thanks")
        self.kiosk.tap_text("Touch the screen to finish.")
        self.kiosk.wait_for_screen("welcome")

    def shows(self, text: str) -> None:
        """`text` is visible on the window, in a label, button or the message banner."""
        self.kiosk.wait_for(
            lambda: any(text in getattr(w, "text", "") for w in shown(self.kiosk, object)),
            STEP_SECONDS,
            f"{text!r} on the window",
        )


# -- what each README line promises ------------------------------------------------------

COFFEE, WATER, WINE = "Ground coffee 250 g", "Still water 0.5 l", "Red wine 0.75 l"


def scan_coffee(walk: Walk, line: Line) -> None:
    """The README: its line appears at once."""
    walk.ok(*line.args)
    walk.kiosk.wait_for_screen("shop")
    walk.wait_for_row(COFFEE)


def scan_water(walk: Walk, line: Line) -> None:
    """Still water: its line appears."""
    walk.ok(*line.args)
    walk.wait_for_row(WATER)


def scan_wine(walk: Walk, line: Line) -> None:
    """The README: paying waits for a staff check; Pay asks for it and nothing is charged."""
    walk.ok(*line.args)
    walk.wait_for_row(WINE)
    assert walk.kiosk.app.cart.needs_age_check
    said = walk.refused("pay", "card", timeout=PAY_SECONDS)
    assert "age check needed for: Red wine 0.75 l" in said, said
    walk.kiosk.wait_for_screen("age_check")
    walk.shows("Staff: tap your badge on the card reader, or type your PIN.")
    assert not walk.kiosk.services.app.stores.payments.open_attempts(), "a card was asked"
    walk.kiosk.tap_text("Back to basket")  # the README's next lines are on the basket
    walk.kiosk.wait_for_screen("shop")


def scan_unknown(walk: Walk, line: Line) -> None:
    """The README: the customer is told so."""
    walk.ok(*line.args)
    walk.shows("We could not find this item. Please try again or ask for help.")
    assert walk.rows() == [COFFEE, WATER, WINE]


def tap_cashier_badge(walk: Walk, line: Line) -> None:
    """The README: the cashier's badge approves the age check, tapped on the basket."""
    assert walk.kiosk.screen == "shop"
    walk.ok(*line.args)
    walk.kiosk.wait_for(
        lambda: not walk.kiosk.app.cart.needs_age_check, STEP_SECONDS, "the age check approved"
    )
    walk.shows("Approved by Alex.")
    assert walk.kiosk.screen == "shop"


def terminal_decline(walk: Walk, line: Line) -> None:
    """The README: the next card payment is declined, and "Try again" is offered."""
    assert walk.ok(*line.args) == {"ok": True, "terminal": "decline"}
    said = walk.refused("pay", "card", timeout=PAY_SECONDS)
    assert "card payment declined" in said, said
    walk.kiosk.wait_for_screen("payment")
    assert walk.kiosk.app.payment.state == "declined"
    walk.shows("Card declined")
    for quoted in line.quoted:
        walk.kiosk.find_text(quoted)  # the button that offers it again


def terminal_pin_wrong(walk: Walk, line: Line) -> None:
    """The README: declined with the terminal's reason, in its words."""
    assert walk.ok(*line.args) == {"ok": True, "terminal": "pin-wrong"}
    said = walk.refused("pay", "card", timeout=PAY_SECONDS)
    assert line.quoted == ["The PIN was wrong."], line.comment
    assert "The PIN was wrong." in said, said
    assert walk.kiosk.app.payment.state == "declined"
    walk.shows("The PIN was wrong.")


def terminal_offline(walk: Walk, line: Line) -> None:
    """The README: approved offline, counted against the [payments] limits."""
    assert walk.ok(*line.args) == {"ok": True, "terminal": "offline"}
    paid = walk.ok("pay", "card", timeout=PAY_SECONDS)
    walk.kiosk.wait_for_screen("receipt")
    walk.shows(f"Receipt {paid['receipt']}")
    status = walk.run("status", "--simulate", "--json")
    assert status.code == 0, status.err
    offline = json.loads(status.out)["payments"]["offline"]
    assert offline["count"] == 1, offline
    assert offline["amount_minor"] == paid["total"], offline


def terminal_drop(walk: Walk, line: Line) -> None:
    """The README: the link drops at the answer, and recovery asks the terminal."""
    walk.next_customer()
    walk.ok("scan", "5000112548129")
    walk.wait_for_row(WATER)
    assert walk.ok(*line.args) == {"ok": True, "terminal": "drop"}
    said = walk.refused("pay", "card", timeout=PAY_SECONDS)
    assert "unknown: recovery asks the terminal" in said, said
    journal = walk.kiosk.services.app.stores.payments
    # The terminal booked the approval before the link dropped: recovery completes the sale.
    walk.kiosk.wait_for(
        lambda: walk.kiosk.screen == "receipt" and not journal.open_attempts(),
        STEP_SECONDS,
        "recovery to complete the sale the terminal approved",
    )
    assert walk.kiosk.app.receipt.receipt_number


def tap_stored_value(walk: Walk, line: Line) -> None:
    """The README: a stored-value card, tapped after "Store card", pays the cart."""
    walk.next_customer()
    walk.ok("scan", "4006381333931")
    walk.wait_for_row(COFFEE)
    walk.kiosk.tap_text("Pay")
    walk.kiosk.wait_for_screen("payment")
    assert line.quoted == ["Store card"], line.comment
    walk.kiosk.tap_text("Store card")
    walk.kiosk.wait_for(lambda: walk.kiosk.app.payment.state == "tap_card", STEP_SECONDS)
    walk.ok(*line.args)
    walk.kiosk.wait_for_screen("receipt")
    sale = walk.kiosk.services.app.ledger.get(walk.kiosk.app.session.last_sale_id)
    assert sale is not None and [t.kind for t in sale.tenders] == ["stored_value"]


def paper_out(walk: Walk, line: Line) -> None:
    """The README: the receipt screen on show offers the QR code instead."""
    receipt = walk.kiosk.app.receipt
    assert walk.kiosk.screen == "receipt" and receipt.can_print
    walk.ok(*line.args)
    walk.kiosk.wait_for(lambda: not receipt.can_print, STEP_SECONDS, "printing withdrawn")
    walk.shows("The printer is out of paper. Take a QR receipt instead.")
    walk.kiosk.find_text("QR code")


def paper_in(walk: Walk, line: Line) -> None:
    """Paper back in: printing is offered again."""
    receipt = walk.kiosk.app.receipt
    walk.ok(*line.args)
    walk.kiosk.wait_for(lambda: receipt.can_print, STEP_SECONDS, "printing offered again")
    assert receipt.printer_notice == ""


def drawer_open(walk: Walk, line: Line) -> None:
    """The README: the drawer pulled open by hand, then shut; its sensor sees both."""
    drawer = walk.kiosk.services.devices["drawer"]
    assert drawer.is_open is False
    walk.ok(*line.args)
    walk.kiosk.wait_for(lambda: drawer.is_open is True, STEP_SECONDS, "the drawer open")
    assert "`close`" in line.comment
    walk.ok("drawer", "close")
    walk.kiosk.wait_for(lambda: drawer.is_open is False, STEP_SECONDS, "the drawer shut")


STEPS: dict[str, Callable[[Walk, Line], None]] = {
    "scan 4006381333931": scan_coffee,
    "scan 5000112548129": scan_water,
    "scan 8000320010149": scan_wine,
    "scan 4000000000006": scan_unknown,
    "tap 04C0FFEE000001": tap_cashier_badge,
    "terminal decline": terminal_decline,
    "terminal pin-wrong": terminal_pin_wrong,
    "terminal offline": terminal_offline,
    "terminal drop": terminal_drop,
    "tap 04CAFE00000001": tap_stored_value,
    "paper-out": paper_out,
    "paper-in": paper_in,
    "drawer open": drawer_open,
}


@pytest.fixture
def walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Walk]:
    """`appliance run --simulate` as the README starts it, with `appliance sim` pointed at it."""
    real_parts.absent(DEFAULT_CONFIG_PATH, "`appliance sim` without --config would read it")
    for name in ("APPLIANCE_CONFIG", "APPLIANCE_SIMULATE", "NOTIFY_SOCKET"):
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "state"
    monkeypatch.setenv("APPLIANCE_STATE_DIR", str(state))  # where `--simulate` keeps its store
    with open_kiosk(tmp_path, settings=simulated_settings(state)) as kiosk:
        # As a person would wait for the window: card offered, the NFC reader up.
        kiosk.wait_for(
            lambda: (
                kiosk.services.app.card_gate is not None
                and kiosk.services.app.card_gate.availability.offered
            ),
            STEP_SECONDS,
            "card to be offered",
        )
        kiosk.wait_for(
            lambda: (
                all(h.state == "ok" for h in kiosk.services.devices.health())
                and kiosk.lab.nfc_tag is not None
            ),
            STEP_SECONDS,
            "every simulated device",
        )
        yield Walk(kiosk, tmp_path)


def test_every_line_of_the_readme_walk_does_what_it_says_with_the_window_open(walk: Walk) -> None:
    lines = readme_walk()
    missing = [" ".join(line.args) for line in lines if " ".join(line.args) not in STEPS]
    assert not missing, f"README lines this walk does not check: {missing}"
    for line in lines:
        STEPS[" ".join(line.args)](walk, line)


def test_cancel_and_cash_from_the_shell_are_what_the_screen_does(walk: Walk) -> None:
    """`sim cancel-payment` is Cancel while the terminal waits; `sim pay cash` is staff taking
    the exact total: the screen stores that sale and offers its receipt."""
    kiosk = walk.kiosk
    walk.ok("scan", "4006381333931")
    walk.wait_for_row(COFFEE)
    assert walk.ok("terminal", "timeout") == {"ok": True, "terminal": "timeout"}
    paying = walk.start("sim", "pay", "card")
    kiosk.wait_for(lambda: kiosk.app.payment.state == "waiting", STEP_SECONDS, "the terminal")
    walk.shows("Follow the instructions on the card terminal.")

    assert walk.ok("cancel-payment") == {"ok": True}

    paid = walk.finish(paying, PAY_SECONDS)
    assert paid.code != 0 and "card payment cancelled" in paid.err, paid
    walk.shows("Payment cancelled")
    assert walk.rows() == [COFFEE] and kiosk.services.app.ledger.count() == 0

    cash = walk.ok("pay", "cash", timeout=PAY_SECONDS)

    kiosk.wait_for_screen("receipt")
    walk.shows(f"Receipt {cash['receipt']}")
    sale = kiosk.services.app.ledger.get(kiosk.app.session.last_sale_id)
    assert sale is not None and [(t.kind, t.amount) for t in sale.tenders] == [
        ("cash", cash["total"])
    ]
