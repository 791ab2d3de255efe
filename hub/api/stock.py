"""/api/v1 routes: stock."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
