"""Error bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: a human-readable ``detail`` and, for 422, the field ``errors``."""

    detail: str
    errors: list[dict[str, Any]] | None = None
