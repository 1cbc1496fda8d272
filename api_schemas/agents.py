"""Agent checkpoints (``PUT``/``GET /v1/experiments/{id}/agents/{agent_id}``).

An agent is an opaque blob of bytes (a student's weights: POET's paired agents, PAIRED's
protagonist and antagonist) stored per experiment under an ``agent_id``. A ``PUT`` of new
bytes replaces them and bumps the agent's ``version``; the same bytes again change nothing.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from api_schemas.limits import AGENT_ID_PATTERN, MAX_AGENT_ID
from api_schemas.wire import RESPONSE

# No ``/``, no spaces, never ``.`` or ``..``: an agent id is safe in a path.
_AGENT_ID_RE = re.compile(AGENT_ID_PATTERN)


def agent_id_problem(agent_id: str) -> str | None:
    """Why ``agent_id`` is not a valid agent id, or ``None`` when it is."""
    if not agent_id:
        return "agent id is empty"
    if len(agent_id) > MAX_AGENT_ID:
        return f"agent id is {len(agent_id)} characters long (at most {MAX_AGENT_ID})"
    if _AGENT_ID_RE.fullmatch(agent_id) is None:
        return (
            f"agent id {agent_id!r} must start with a letter or digit and contain only "
            "letters, digits, '_', '.' and '-'"
        )
    return None


class AgentInfo(BaseModel):
    """What is stored about an agent's checkpoint (everything but its bytes)."""

    model_config = RESPONSE

    agent_id: str = Field(pattern=AGENT_ID_PATTERN, description="The agent's id.")
    version: int = Field(ge=1, description="1 for the first upload, +1 for each later one.")
    size: int = Field(ge=0, description="Size of the checkpoint in bytes.")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the checkpoint, lowercase hex."
    )
    updated_at: float = Field(description="Server time (Unix seconds) of the latest upload.")


class AgentList(BaseModel):
    """``GET /v1/experiments/{id}/agents``: every agent of the experiment, by id."""

    model_config = RESPONSE

    data: list[AgentInfo]
    count: int
