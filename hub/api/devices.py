"""/api/v1 routes: devices."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
