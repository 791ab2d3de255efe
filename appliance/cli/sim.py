"""`appliance sim ...`: drive the simulators of a running `appliance run --simulate`.

Each command sends one request to the control socket beside the appliance's database
and prints the answer. Scans, taps and paper-outs arrive over the real transports, so
the running appliance sees exactly what real hardware would make it see.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from appliance.cli.options import config_options, settings_for
from appliance.core.card_payment import PAY_TIMEOUT_SECONDS, SETTLEMENTS
from appliance.core.remote_approval import REMOTE_ACTIONS
from appliance.errors import DeviceError

# The lab's own names (appliance.drivers.sim.lab.TERMINAL_STEPS); a test keeps them equal.
TERMINAL_OUTCOMES = (
    "approve",
    "decline",
    "pin-wrong",
    "cancel",
    "timeout",
    "hang",
    "offline",
    "drop",
    "drop-early",
    "drop-after-ack",
)
# The control socket's scale actions (appliance.drivers.sim.control.SCALE_ACTIONS); a test
# keeps them equal.
SCALE_ACTIONS = ("motion", "underload", "overload", "clear", "zero")
# A card payment waits for the customer at the terminal; the till answers after that.
PAY_ANSWER_SECONDS = PAY_TIMEOUT_SECONDS + 60.0


def _send(config_path: str | None, request: dict[str, Any], timeout: float | None = None) -> None:
    """Send `request` to the simulated appliance the configuration points at; echo its answer."""
    from appliance.drivers.sim.control import CLIENT_TIMEOUT_SECONDS, control_socket_path, send

    # These commands only make sense against a simulated appliance, so they resolve the
    # configuration as `--simulate` does whether or not the flag is given.
    settings = settings_for(config_path, simulate=True)
    path = control_socket_path(settings.database.path)
    answer = send(path, request, timeout=timeout or CLIENT_TIMEOUT_SECONDS)
    if not answer.get("ok"):
        raise DeviceError(f"{request['cmd']}: {answer.get('error', 'refused')}")
    click.echo(json.dumps(answer, sort_keys=True))


def _command(name: str, help_text: str) -> Callable[[Callable[..., Any]], click.Command]:
    """A `sim` subcommand taking --config/--simulate like every other command."""

    def decorate(function: Callable[..., Any]) -> click.Command:
        return sim.command(name, help=help_text)(config_options(function))

    return decorate


@click.group()
def sim() -> None:
    """Drive the simulators of a running simulated appliance (`appliance run --simulate`)."""


@_command("scan", "Scan CODE on the simulated barcode scanner.")
@click.argument("code")
def scan(code: str, simulate: bool, config_path: str | None) -> None:
    """Scan a code."""
    _send(config_path, {"cmd": "scan", "code": code})


@_command("tap", "Tap a card with UID (hex) on the simulated NFC reader.")
@click.argument("uid")
@click.option("--text", default=None, help="An NDEF text record on the card.")
def tap(uid: str, text: str | None, simulate: bool, config_path: str | None) -> None:
    """Tap a card."""
    _send(config_path, {"cmd": "tap", "uid": uid, "text": text})


@_command("paper-out", "The simulated printer runs out of paper.")
def paper_out(simulate: bool, config_path: str | None) -> None:
    """Paper out."""
    _send(config_path, {"cmd": "paper-out"})


@_command("paper-in", "Paper is loaded into the simulated printer again.")
def paper_in(simulate: bool, config_path: str | None) -> None:
    """Paper in."""
    _send(config_path, {"cmd": "paper-in"})


@_command("drawer", "Pull the simulated cash drawer open or push it shut.")
@click.argument("action", type=click.Choice(["open", "close"]))
def drawer(action: str, simulate: bool, config_path: str | None) -> None:
    """Open or close the drawer by hand."""
    _send(config_path, {"cmd": f"drawer-{action}"})


@_command("pay", "Pay for the cart: cash, or card through the simulated terminal.")
@click.argument("method", type=click.Choice(["cash", "card"]))
def pay(method: str, simulate: bool, config_path: str | None) -> None:
    """Pay for the cart (card asks the simulated terminal); prints the receipt number."""
    _send(config_path, {"cmd": "pay", "method": method}, timeout=PAY_ANSWER_SECONDS)


@_command(
    "settle",
    "Settle a card payment in doubt as staff would at the till: paid commits the sale, "
    "not-paid keeps the cart. Without --reference: the only payment in doubt.",
)
@click.argument("settlement", type=click.Choice(SETTLEMENTS))
@click.option("--reference", default="", help="The payment's reference (`appliance status`).")
def settle(settlement: str, reference: str, simulate: bool, config_path: str | None) -> None:
    """Settle an unknown card outcome; prints the receipt number when paid."""
    request = {"cmd": "settle", "settlement": settlement, "reference": reference}
    _send(config_path, request, timeout=PAY_ANSWER_SECONDS)


@_command("cancel-payment", "The till asks the terminal to abort the card payment in progress.")
def cancel_payment(simulate: bool, config_path: str | None) -> None:
    """Abort a card payment; a silent terminal makes its outcome unknown (see `sim settle`)."""
    _send(config_path, {"cmd": "cancel-payment"})


@_command("end-of-day", "Close the card terminal's day (refused while a payment is unresolved).")
def end_of_day(simulate: bool, config_path: str | None) -> None:
    """Close the terminal's day; prints its count and amount."""
    _send(config_path, {"cmd": "end-of-day"})


@_command("terminal", "What the simulated payment terminal answers next.")
@click.argument("outcome", type=click.Choice(TERMINAL_OUTCOMES))
def terminal(outcome: str, simulate: bool, config_path: str | None) -> None:
    """Script the terminal."""
    _send(config_path, {"cmd": "terminal", "outcome": outcome})


@_command("weigh", "Put a stable load of GRAMS on the simulated scale (0 empties it).")
@click.argument("grams", type=click.IntRange(min=0))
def weigh(grams: int, simulate: bool, config_path: str | None) -> None:
    """Load the scale; prints what it shows."""
    _send(config_path, {"cmd": "weigh", "grams": grams})


@_command(
    "scale",
    "The simulated scale's platter moves, reads below zero or over capacity until clear; "
    "zero presses its zero key.",
)
@click.argument("action", type=click.Choice(SCALE_ACTIONS))
def scale(action: str, simulate: bool, config_path: str | None) -> None:
    """Play a scale condition; prints what it shows."""
    _send(config_path, {"cmd": "scale", "action": action})


@_command("unplug", "Unplug the simulated scanner's cable.")
def unplug(simulate: bool, config_path: str | None) -> None:
    """Unplug the scanner."""
    _send(config_path, {"cmd": "unplug", "device": "scanner"})


@_command("replug", "Plug the simulated scanner back in.")
def replug(simulate: bool, config_path: str | None) -> None:
    """Plug the scanner back in."""
    _send(config_path, {"cmd": "replug", "device": "scanner"})


@_command(
    "help-calls",
    "A staff till's view of its store's calls for help (through the hub), as JSON: each "
    "call, the actions it allows from here and where an approval asked from here stands.",
)
def help_calls(simulate: bool, config_path: str | None) -> None:
    """List the calls for help a staff device sees."""
    _send(config_path, {"cmd": "help-calls"})


@_command(
    "approve-help",
    "Answer a kiosk's call for help from this staff till, as the member of staff with the "
    "PIN (the role decides what is allowed); prints the approval's first step. Follow it "
    "with `appliance sim help-calls`.",
)
@click.argument("call")
@click.argument("action", type=click.Choice(REMOTE_ACTIONS))
@click.option(
    "--staff-pin",
    prompt="Staff PIN",
    hide_input=True,
    help="The PIN of the member of staff who approves (asked for when not given).",
)
def approve_help(
    call: str, action: str, staff_pin: str, simulate: bool, config_path: str | None
) -> None:
    """Ask the hub to approve a call as a member of staff."""
    request = {"cmd": "approve-help", "call": call, "action": action, "staff_pin": staff_pin}
    _send(config_path, request)
