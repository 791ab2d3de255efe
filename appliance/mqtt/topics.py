"""Every topic string of the hub protocol, and nothing else (see docs/protocol.md)."""

from __future__ import annotations

ROOT = "pos/v1"
HUB_STATE = f"{ROOT}/hub/state"  # retained; the hub's online flag gates flushing
SHARED_GROUP = "hub"  # hub workers share device traffic: $share/hub/...


def device_root(device: str) -> str:
    """The subtree of one device; broker ACLs grant each device only its own."""
    return f"{ROOT}/d/{device}"


def status(device: str) -> str:
    """Retained birth/will: online flag with the session counter (bdSeq)."""
    return f"{device_root(device)}/status"


def sales_up(device: str) -> str:
    """Device → hub: a batch of sales from the outbox, in sequence order."""
    return f"{device_root(device)}/up/sales"


def sales_ack(device: str) -> str:
    """Hub → device: the highest contiguous sequence the hub has committed."""
    return f"{device_root(device)}/down/sales-ack"


def journal_up(device: str) -> str:
    """Device → hub: a batch of fiscal journal entries, in number order."""
    return f"{device_root(device)}/up/journal"


def journal_ack(device: str) -> str:
    """Hub → device: the highest contiguous journal entry number the hub has committed."""
    return f"{device_root(device)}/down/journal-ack"


def health(device: str) -> str:
    """Device → hub: health telemetry on an interval."""
    return f"{device_root(device)}/up/health"


def catalog_down(device: str) -> str:
    """Hub → device: catalog deltas and snapshot chunks."""
    return f"{device_root(device)}/down/catalog"


def catalog_request(device: str) -> str:
    """Device → hub: ask for a snapshot (after a gap or a reconnect), or resume one."""
    return f"{device_root(device)}/up/catalog-request"


def command(device: str) -> str:
    """Hub → device: a signed command (job)."""
    return f"{device_root(device)}/down/command"


def command_update(device: str) -> str:
    """Device → hub: a command's lifecycle state."""
    return f"{device_root(device)}/up/command-update"


def config_desired(device: str) -> str:
    """Hub → device, retained: the configuration the fleet admin wants."""
    return f"{device_root(device)}/down/config-desired"


def config_reported(device: str) -> str:
    """Device → hub, retained: the configuration in force, or why the desired one was refused."""
    return f"{device_root(device)}/up/config-reported"


def logs_up(device: str) -> str:
    """Device → hub: journal lines collected on command."""
    return f"{device_root(device)}/up/logs"


def update_up(device: str) -> str:
    """Device → hub: an update job's state and download progress (UpdateReport)."""
    return f"{device_root(device)}/up/update"


def help_up(device: str) -> str:
    """Device → hub: a call for help opened, answered or cleared (HelpCall)."""
    return f"{device_root(device)}/up/help"


def help_board(device: str) -> str:
    """Hub → staff device: the open calls for help of its store's kiosks (HelpBoard)."""
    return f"{device_root(device)}/down/help-calls"


def help_approval_up(device: str) -> str:
    """Staff device → hub: answer a kiosk's call from here (HelpApproval)."""
    return f"{device_root(device)}/up/help-approval"


def help_approval_answer(device: str) -> str:
    """Hub → staff device: what became of its approval (HelpApprovalAnswer)."""
    return f"{device_root(device)}/down/help-approval"


def card_debit_up(device: str) -> str:
    """Device → hub: pay from a stored-value card, reconcile an offline debit, or void one."""
    return f"{device_root(device)}/up/card-debit"


def card_debit_answer(device: str) -> str:
    """Hub → device: what became of a card debit, with the card's balance and points."""
    return f"{device_root(device)}/down/card-debit"


def hub_subscriptions() -> tuple[str, ...]:
    """What every hub worker subscribes to.

    Shared, so workers split the load: device uploads, and the commands the fleet CLI
    sends (the hub records each as a job). Unshared, because retained messages are never
    sent to shared subscriptions (MQTT 5 §4.8.2) and a hub that (re)starts must learn
    them: statuses, desired and reported configurations. Those writes are idempotent (stale
    wills filtered, older config versions ignored), so every worker may record them; a
    live reported configuration reaches a worker through both its subscriptions.
    """
    return (
        f"$share/{SHARED_GROUP}/{ROOT}/d/+/up/#",
        f"$share/{SHARED_GROUP}/{ROOT}/d/+/down/command",
        f"{ROOT}/d/+/status",
        f"{ROOT}/d/+/down/config-desired",
        f"{ROOT}/d/+/up/config-reported",
    )


def device_subscriptions(device: str) -> tuple[str, ...]:
    """What a device subscribes to."""
    return (f"{device_root(device)}/down/#", HUB_STATE)


def device_of(topic: str) -> str | None:
    """The device id in a device topic, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) >= 4 and f"{parts[0]}/{parts[1]}" == ROOT and parts[2] == "d":
        return parts[3]
    return None
