"""/api/v1 routes: sales."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
