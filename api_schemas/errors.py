"""The one error body of the API: every 4xx and 5xx answer is an ``ErrorResponse``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    """One invalid part of a request (``422`` answers list them in ``errors``)."""

    loc: list[str | int] = Field(
        description='Where: ["body", "reports", 0, "length"], ["query", "limit"], ...'
    )
    msg: str = Field(description="What is wrong with it.")
    type: str = Field(description="A machine-readable kind, e.g. 'less_than_equal'.")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: ``detail`` says what went wrong in one human-readable line;
    ``errors`` lists each invalid field of a ``422`` answer (absent or null otherwise)."""

    detail: str = Field(description="What went wrong, in one human-readable line.")
    errors: list[FieldError] | None = Field(
        default=None, description="Each invalid field (422 validation errors only)."
    )
