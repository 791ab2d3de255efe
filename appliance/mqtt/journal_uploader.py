"""JournalUploader: the fiscal journal to the hub as a second stream, effectively once.

The same state machine as the sales (mqtt/uploader.py), over another outbox: entries go
out in number order, the hub stores each once on (device, number), verifies the chain
and acknowledges the highest contiguous number after its commit. The device keeps every
entry and only remembers that number (store/journal_outbox.py), so a restart resumes
right after it.
"""

from __future__ import annotations

import base64
from typing import Unpack

from appliance.core.journal import JournalEntry
from appliance.mqtt import topics
from appliance.mqtt.link import HubLink
from appliance.mqtt.payloads import JournalAck, JournalBatch, JournalEntryPayload, encode
from appliance.mqtt.upload_stream import Chunk, UploaderOptions
from appliance.mqtt.uploader import Uploader
from appliance.store.journal_outbox import JournalOutbox


def entry_payload(entry: JournalEntry) -> JournalEntryPayload:
    """One entry as it travels: every field verbatim, the body in base64."""
    return JournalEntryPayload(
        number=entry.number,
        kind=entry.kind,
        at=entry.at,
        body=base64.b64encode(entry.body).decode("ascii"),
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )


class JournalStream:
    """The journal as an UploadStream: acknowledgement moves a number, deletes nothing."""

    name = "journal"
    keeps_acknowledged = True  # the fiscal record stays on the device for good

    def __init__(self, outbox: JournalOutbox, device: str) -> None:
        self._outbox = outbox
        self._device = device

    def up_topic(self, device: str) -> str:
        """topics.journal_up."""
        return topics.journal_up(device)

    def ack_topic(self, device: str) -> str:
        """topics.journal_ack."""
        return topics.journal_ack(device)

    def ack_number(self, ack: JournalAck) -> int:
        """The acknowledged entry number."""
        return ack.upto_number

    def acked_upto(self) -> int:
        """The number the hub confirmed before this start (kept in the meta table)."""
        return self._outbox.acked_upto()

    def next_chunk(self, after: int, limit: int) -> Chunk | None:
        """The next entries as a JournalBatch."""
        entries = self._outbox.pending(after, limit)
        if not entries:
            return None
        batch = JournalBatch(device=self._device, entries=[entry_payload(e) for e in entries])
        return Chunk(encode(batch), len(entries), entries[-1].number)

    def acknowledge(self, upto: int, ack: JournalAck) -> int:
        """Remember the hub's number durably (the ack says nothing more)."""
        return self._outbox.acknowledge(upto)


class JournalUploader(Uploader):
    """The fiscal journal's uploader; a context manager like SalesUploader."""

    def __init__(
        self, outbox: JournalOutbox, link: HubLink, **options: Unpack[UploaderOptions]
    ) -> None:
        super().__init__(JournalStream(outbox, link.device_id), link, **options)
