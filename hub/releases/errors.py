"""The release side's errors, under the update branch of the one exception tree."""

from __future__ import annotations

from appliance.errors import UpdateError


class ReleaseError(UpdateError):
    """A release cannot be added, found or signed (another bundle has its version, no key)."""


class RolloutError(UpdateError):
    """A rollout cannot start or change (no such release, no devices, no such rollout)."""
