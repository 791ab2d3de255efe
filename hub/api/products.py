"""/api/v1 routes: products."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
