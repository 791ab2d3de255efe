"""Remote approval: what staff at a tablet may do about a kiosk's call for help, and who may.

A staffed till or tablet of the store sees the open calls of its store's kiosks (through
the hub) and may answer two of them from where it stands: an age check (approve) and a
bagging alert (clear, skip the item, skip the rest of the sale). Every other call needs
someone at the kiosk: a payment in doubt is decided on the kiosk's payment screen, paper
is loaded by hand, a customer asking for help wants a person.

Roles. At the kiosk any member of staff may approve an age check or clear the bagging
area, and the same goes from a tablet, with one exception: skipping the bagging check for
the rest of a sale turns the check off for a customer nobody at the tablet can see, so
from a distance only a supervisor may do it. The tablet, the hub and the kiosk all apply
this one table, so a refusal is the same wherever it is made.
"""

from __future__ import annotations

from typing import Literal

from appliance.core.help_calls import HelpReason
from appliance.core.staff import ROLES, Role

RemoteAction = Literal["approve", "clear", "skip_item", "skip_sale"]
REMOTE_ACTIONS: tuple[RemoteAction, ...] = ("approve", "clear", "skip_item", "skip_sale")

# The actions a tablet offers for each reason; a reason not here is walked over to.
ACTIONS_FOR: dict[HelpReason, tuple[RemoteAction, ...]] = {
    "age_check": ("approve",),
    "bagging": ("clear", "skip_item", "skip_sale"),
}
# Who may take each action from a tablet (see the module docstring).
ROLES_FOR: dict[RemoteAction, frozenset[Role]] = {
    "approve": frozenset(ROLES),
    "clear": frozenset(ROLES),
    "skip_item": frozenset(ROLES),
    "skip_sale": frozenset({"supervisor"}),
}
# How long the kiosk may take to get the approval: past this it is walked over to.
APPROVAL_SECONDS = 60


def actions_for(reason: str) -> tuple[RemoteAction, ...]:
    """The actions a tablet may take on a call for `reason` (none: staff walk over)."""
    return next((actions for known, actions in ACTIONS_FOR.items() if known == reason), ())


def refusal(reason: str, action: str, role: str) -> str:
    """Why `role` may not take `action` on a call for `reason` from a tablet; "" when it may."""
    if action not in actions_for(reason):
        return f"a {reason} call cannot be answered with {action} from a distance"
    allowed = next(roles for known, roles in ROLES_FOR.items() if known == action)
    if role not in allowed:
        return f"only a {' or '.join(sorted(allowed))} may {action.replace('_', ' ')} remotely"
    return ""


def approval_note(name: str, staff_id: str, role: str, via: str = "") -> str:
    """How a staff approval is recorded on the sale and the call: who, role, from where
    (`via`: the staff device of a remote one; "" at the kiosk itself)."""
    return f"{name} ({staff_id}, {role})" + (f" from {via}" if via else "")
