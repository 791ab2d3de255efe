"""Remote approval at the hub: a staff device's HelpApproval becomes a signed kiosk command.

The worker that takes a HelpApproval checks it (the requester is a staff device of the
kiosk's store, the call is still open, the role may take the action, the kiosk is online),
then signs an `approve_help` command with the fleet key, records it as a job and holds it
(hub/device_answers.py, hub/command_hold.py) before publishing it, and answers the staff
device `sent` with the command's expiry. A refusal is answered at once with its reason.
The kiosk answers the command like any other (CommandUpdate); the worker that records
that answer tells the staff device what became of it (`on_update`). The command names
the staff device and the request in its args, so any worker can do that.

The command lives APPROVAL_SECONDS: a kiosk that cannot get it in time answers TIMED_OUT
or nothing at all, and the staff device, which knows the expiry, tells staff to walk over.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from peewee import Database

from appliance.core.clock import Clock, SystemClock
from appliance.core.remote_approval import APPROVAL_SECONDS, refusal
from appliance.errors import DecodeError
from appliance.mqtt import topics
from appliance.mqtt.payloads import (
    ApprovalState,
    CommandName,
    CommandUpdate,
    HelpApproval,
    HelpApprovalAnswer,
    decode,
    encode,
)
from hub.command_hold import mark_sent
from hub.device_answers import REPLAYED, DeviceAnswers
from hub.fleet_keys import new_command
from hub.help_board import is_staff_device
from hub.help_calls import HelpCallRow
from hub.models import CommandJob, Device
from hub.stores import store_of

log = logging.getLogger(__name__)

COMMAND: CommandName = "approve_help"
# A kiosk's final answers, as the staff device hears them.
OUTCOMES: dict[str, ApprovalState] = {
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "REJECTED": "failed",
    "TIMED_OUT": "timed_out",
}

Publish = Callable[[str, bytes], None]  # (topic, payload), QoS 1, not retained


class HelpApprovals:
    """The worker's handler of up/help-approval, and of the kiosk's answers to its commands.

    Runs on the hub worker thread; `publish` must be thread-safe (HubServer.publish is).
    Without a fleet key every request is refused: nothing could sign the command.
    """

    def __init__(
        self,
        db: Database,
        publish: Publish,
        fleet_key: Ed25519PrivateKey | None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._publish = publish
        self._key = fleet_key
        self._clock = clock or SystemClock()

    def on_request(self, device: str, data: bytes) -> None:
        """A staff device's approval: refused with the reason, or sent to the kiosk."""
        request = decode(data, HelpApproval)
        if request.device != device:
            raise DecodeError(f"an approval on {device}'s topic names {request.device!r}")
        if not request.id or len(request.id) > 64:
            raise DecodeError(f"an approval from {device} has no usable id")
        earlier = self._sent_before(request)
        if earlier is not None:
            # A repeat (QoS 1 again, or a worker's retry after a dropped connection): the
            # command already went; the staff device hears so again, and nothing more is sent.
            self._answer(
                device,
                HelpApprovalAnswer(
                    id=request.id, state="sent", command=earlier.id, expires_at=earlier.expires_at
                ),
            )
            return
        problem = self._refusal(request)
        if problem:
            log.warning(
                "approval %s from %s (%s, %s) for %s refused: %s",
                *(request.id, device, request.staff_id, request.role, request.kiosk, problem),
            )
            self._answer(device, HelpApprovalAnswer(id=request.id, state="refused", reason=problem))
            return
        assert self._key is not None  # _refusal says so otherwise
        command = new_command(
            self._key,
            request.kiosk,
            COMMAND,
            {
                "call": request.call,
                "reason": request.reason,
                "action": request.action,
                "staff_id": request.staff_id,
                "staff_name": request.staff_name,
                "role": request.role,
                "via": device,
                "request": request.id,
            },
            expires_in=timedelta(seconds=APPROVAL_SECONDS),
            now=self._clock.now(),
        )
        payload = encode(command)
        # A job, held until answered, before it goes: the kiosk's answer finds it.
        DeviceAnswers(self._db, clock=self._clock).command_sent(request.kiosk, payload)
        self._publish(topics.command(request.kiosk), payload)
        mark_sent(self._db, [command.id])
        log.info(
            "approval %s: %s of call %s at %s by %s (%s) from %s sent as command %s",
            *(request.id, request.action, request.call, request.kiosk, request.staff_id),
            *(request.role, device, command.id),
        )
        self._answer(
            device,
            HelpApprovalAnswer(
                id=request.id, state="sent", command=command.id, expires_at=command.expires_at
            ),
        )

    def _sent_before(self, request: HelpApproval) -> CommandJob | None:
        """The unexpired command this staff device's request already became, if any."""
        now = self._clock.now().astimezone(UTC).isoformat()
        jobs = CommandJob.select(CommandJob.id, CommandJob.args, CommandJob.expires_at).where(
            (CommandJob.device == request.kiosk)
            & (CommandJob.name == COMMAND)
            & (CommandJob.expires_at > now)
        )
        for job in jobs.execute(self._db):
            args = json.loads(str(job.args))
            if args.get("request") == request.id and args.get("via") == request.device:
                return cast(CommandJob, job)
        return None

    def on_update(self, device: str, data: bytes) -> None:
        """After a kiosk's CommandUpdate is recorded: a final answer to an approval goes on."""
        update = decode(data, CommandUpdate)
        outcome = OUTCOMES.get(update.state)
        if outcome is None or (update.state == "REJECTED" and update.reason == REPLAYED):
            return  # under way, or a held command the kiosk had already: not an outcome
        job = (
            CommandJob.select(CommandJob.args)
            .where(
                (CommandJob.id == update.id)
                & (CommandJob.device == device)
                & (CommandJob.name == COMMAND)
            )
            .first(self._db)
        )
        if job is None:
            return
        args = json.loads(str(job.args))
        via, request = str(args.get("via", "")), str(args.get("request", ""))
        if not via or not request:
            return
        log.info("approval %s at %s: %s %s", request, device, update.state, update.reason)
        self._answer(
            via,
            HelpApprovalAnswer(id=request, state=outcome, reason=update.reason, command=update.id),
        )

    def _refusal(self, request: HelpApproval) -> str:
        """Why the request cannot go to the kiosk, in staff's words; "" when it can."""
        if self._key is None:
            return "this hub signs no commands: walk over to the kiosk"
        db, kiosk = self._db, request.kiosk
        if not is_staff_device(db, request.device):
            return f"{request.device} is not a staff till or tablet"
        store = store_of(db, request.device)
        if store is None or store_of(db, kiosk) != store or kiosk == request.device:
            return f"{kiosk} is not a kiosk of this store"
        call = (
            HelpCallRow.select(HelpCallRow.reason, HelpCallRow.state)
            .where((HelpCallRow.id == request.call) & (HelpCallRow.device == kiosk))
            .first(db)
        )
        if call is None or call.state == "cleared":
            return "the call is no longer open"
        if call.reason != request.reason:
            return f"the call is for {call.reason}, not {request.reason}"
        if problem := refusal(request.reason, request.action, request.role):
            return problem
        online = Device.select(Device.online).where(Device.id == kiosk).scalar(db)
        if not online:
            return f"{kiosk} is offline: walk over to it"
        return ""

    def _answer(self, device: str, answer: HelpApprovalAnswer) -> None:
        self._publish(topics.help_approval_answer(device), encode(answer))
